"""go-plugin's log line format (hclog), both ways (docs/protocol.md §7.3).

Plugin side: :class:`HclogFormatter` renders :mod:`logging` records as hclog JSON objects whose
``@level``, ``@message`` and ``@timestamp`` are always strings (a non-string value crashes a Go
host) with a 6-digit RFC 3339 timestamp, or as ``[LEVEL] message`` text.

Host side: :func:`parse_line` turns one stderr line into a :class:`LogEntry` and never raises:
JSON objects become level/message/fields, ``[LEVEL]`` prefixes set the level, anything else is
DEBUG.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from .record import Record

TRACE = 5
"""hclog's trace level, below DEBUG."""
logging.addLevelName(TRACE, "TRACE")

_TO_HCLOG = {
    TRACE: "trace",
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}
_FROM_HCLOG = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_PREFIXES = (
    ("[TRACE]", TRACE),
    ("[DEBUG]", logging.DEBUG),
    ("[INFO]", logging.INFO),
    ("[WARN]", logging.WARNING),
    ("[ERROR]", logging.ERROR),
)
MAX_LINE = 64 * 1024 - 1
"""go-plugin hosts read stderr with a 64 KiB line buffer (P29)."""

# attributes every LogRecord has; anything else was passed through ``extra=``
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def level_name(levelno: int) -> str:
    """The hclog name of a :mod:`logging` level (rounded down to the nearest known level)."""
    for number in sorted(_TO_HCLOG, reverse=True):
        if levelno >= number:
            return _TO_HCLOG[number]
    return "trace"


def level_number(name: str) -> int:
    """The :mod:`logging` level of an hclog level name (``"warn"`` → WARNING)."""
    return _FROM_HCLOG[name.lower()]


def timestamp(when: float | None = None) -> str:
    """An hclog timestamp: RFC 3339 with exactly six fraction digits (Go's parse layout)."""
    moment = time.time() if when is None else when
    micros = round(moment * 1_000_000)
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"


class HclogFormatter(logging.Formatter):
    """Format records as one hclog JSON object per line (``json=True``) or ``[LEVEL] text``."""

    def __init__(self, *, json_lines: bool = True) -> None:
        super().__init__()
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if not self.json_lines:
            text = f"[{level_name(record.levelno).upper()}] {record.name}: {message}"
            return _clip(text.replace("\n", "\\n"), MAX_LINE)
        entry: dict[str, Any] = {
            "@level": level_name(record.levelno),
            "@message": message,
            "@module": record.name,
            "@timestamp": timestamp(record.created),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        import json  # on the first record, which normally comes after the handshake

        line = json.dumps(entry, ensure_ascii=False, default=str)
        if len(line.encode("utf-8", "backslashreplace")) > MAX_LINE:
            entry["@message"] = _clip(message, MAX_LINE // 2) + "... (truncated)"
            line = _clip(json.dumps(entry, ensure_ascii=False, default=str), MAX_LINE)
        return line


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8 (the host's line buffer counts bytes)."""
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


class LogEntry(Record):
    """One parsed plugin stderr line."""

    __slots__ = ("fields", "level", "message", "module", "timestamp")
    level: int
    message: str
    fields: dict[str, Any]
    timestamp: str | None
    module: str | None

    def __init__(
        self,
        level: int,
        message: str,
        fields: dict[str, Any] | None = None,
        timestamp: str | None = None,
        module: str | None = None,
    ) -> None:
        super().__init__(
            level=level,
            message=message,
            fields={} if fields is None else fields,
            timestamp=timestamp,
            module=module,
        )


def parse_line(line: str) -> LogEntry:
    """Parse one plugin stderr line the way go-plugin's host does. Never raises."""
    text = line.rstrip("\r\n")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            import json

            obj = json.loads(stripped)
            entry = _from_json(obj) if isinstance(obj, dict) else None
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json goes
            obj, entry = None, None
        if entry is not None:
            return entry
        if isinstance(obj, dict):
            return LogEntry(logging.DEBUG, text)
    for prefix, number in _PREFIXES:
        if stripped.startswith(prefix):
            return LogEntry(number, stripped[len(prefix) :].lstrip())
    return LogEntry(logging.DEBUG, text)


def _from_json(obj: dict[str, Any]) -> LogEntry | None:
    level = obj.get("@level")
    message = obj.get("@message")
    stamp = obj.get("@timestamp")
    if not isinstance(level, str) or level.lower() not in _FROM_HCLOG:
        return None
    fields = {
        k: v for k, v in obj.items() if k not in ("@level", "@message", "@timestamp", "@module")
    }
    module = obj.get("@module")
    return LogEntry(
        level=_FROM_HCLOG[level.lower()],
        message=message if isinstance(message, str) else _json_text(message),
        fields=fields,
        timestamp=stamp if isinstance(stamp, str) else None,
        module=module if isinstance(module, str) else None,
    )


class StderrHandler(logging.Handler):
    """Write formatted records straight to file descriptor 2, one ``write`` per line.

    It bypasses ``sys.stderr`` on purpose: after the handshake ``sys.stderr`` feeds the
    ``GRPCStdio`` stream, while structured logs belong on the real stderr the host parses.
    """

    def __init__(self, fd: int = 2, *, json_lines: bool = True) -> None:
        super().__init__()
        self.fd = fd
        self.setFormatter(HclogFormatter(json_lines=json_lines))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass  # the host is gone; nothing sensible left to do with a log line
        except Exception:
            self.handleError(record)


def _json_text(value: object) -> str:
    import json

    return json.dumps(value)
