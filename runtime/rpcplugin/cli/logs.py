"""``rpcplugin logs``: launch a plugin and stream its stderr (hclog parsed) and its GRPCStdio
output until interrupted (or ``--for`` seconds, or the plugin exits); then close it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import signal
import sys
from typing import Any

import click

from .app import cli, gather_first, run
from .output import paint
from .target import make_target, opened, target_options

LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING}
_LEVEL_COLOURS = {"TRACE": "dim", "DEBUG": "dim", "INFO": "green", "WARN": "yellow"}


def level_name(levelno: int) -> str:
    """hclog's names: TRACE DEBUG INFO WARN ERROR."""
    if levelno < logging.DEBUG:
        return "TRACE"
    if levelno < logging.INFO:
        return "DEBUG"
    if levelno < logging.WARNING:
        return "INFO"
    return "WARN" if levelno < logging.ERROR else "ERROR"


def _value(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


class LineFormatter(logging.Formatter):
    """``TIME LEVEL module: message key=value ...``; coloured on a colour terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        level = level_name(record.levelno)
        module = getattr(record, "plugin_module", "")
        fields = getattr(record, "plugin_fields", {}) or {}
        text = record.getMessage()
        if module:
            text = f"{module}: {text}"
        pairs = " ".join(f"{k}={_value(v)}" for k, v in fields.items())
        coloured = paint(f"{level:<5}", _LEVEL_COLOURS.get(level, "red"))
        return f"{stamp:%H:%M:%S.%f}"[:-3] + f" {coloured} {text}" + (f" {pairs}" if pairs else "")


class StdioLines:
    """GRPCStdio chunks of one channel as ``[stdout] line`` output: chunks need not end at line
    ends (``print`` writes the text and the newline apart), so a partial line waits for the
    rest, or for :meth:`flush`."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._partial = ""

    def __call__(self, data: bytes) -> None:
        text = self._partial + data.decode("utf-8", "replace")
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        """Write a last line that never got its newline."""
        if self._partial:
            self._emit(self._partial)
            self._partial = ""

    def _emit(self, line: str) -> None:
        click.echo(paint(f"[{self.channel}]", "magenta") + f" {line.rstrip(chr(13))}")


@cli.command("logs")
@target_options
@click.option(
    "--level",
    type=click.Choice(sorted(LEVELS, key=LEVELS.__getitem__)),
    default="trace",
    show_default=True,
    help="Leave out stderr log lines below this level.",
)
@click.option("--for", "duration", type=float, help="Stop after this many seconds.")
def logs_command(level: str, duration: float | None, **options: Any) -> None:
    """Launch a plugin and stream its stderr (hclog lines parsed; colour on a terminal) and its
    GRPCStdio output until Ctrl-C, then close it cleanly.

    \b
    rpcplugin logs --host vault -- ./vault-plugin-secrets-kv
    """
    target = make_target(options)
    logger = logging.getLogger(f"rpcplugin.cli.logs.{target.name}")
    logger.propagate = False
    logger.setLevel(LEVELS[level])
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LineFormatter())
    logger.addHandler(handler)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        click.echo(
            paint(f"# {target.name}: its stderr and stdio until Ctrl-C", "dim", sys.stderr),
            err=True,
        )
        stdout, stderr = StdioLines("stdout"), StdioLines("stderr")
        try:
            async with opened(
                target, stdout=stdout, stderr=stderr, logger=logger, show_progress=False
            ) as result:
                waits: list[Any] = [stop.wait()]
                if result.conn.mode == "launched":
                    waits.append(result.conn.wait_exit())
                if duration is not None:
                    waits.append(asyncio.sleep(duration))
                await gather_first(*waits)
                exited = result.conn.exit_error
            stdout.flush()
            stderr.flush()
            status = result.exit_status
            closed = f"# closed in {(result.close_seconds or 0) * 1000:.1f} ms"
            if status is not None:
                closed += f", exit status {status}"
            click.echo(paint(closed, "dim", sys.stderr), err=True)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        if exited is not None:
            raise exited
        return 0

    run(main)
