"""How the CLI writes: aligned ``key: value`` reports, JSON, colour and progress only on a TTY.

Colour follows ``NO_COLOR`` (any non-empty value turns it off, https://no-color.org) and is
used only when the stream is a terminal; so is the progress line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

import click

_COLOURS = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36, "dim": 2}


def colour_on(stream: IO[str]) -> bool:
    """Whether to colour what goes to ``stream``."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, stream: IO[str] | None = None) -> str:
    """``text`` in ``colour`` when ``stream`` (default stdout) is a colour terminal."""
    if not colour_on(stream or sys.stdout):
        return text
    return f"\x1b[{_COLOURS[colour]}m{text}\x1b[0m"


def report(rows: Sequence[tuple[str, str]], stream: IO[str] | None = None) -> None:
    """``key:   value`` lines with the values aligned."""
    out = stream or sys.stdout
    width = max((len(key) for key, _ in rows), default=0) + 2
    for key, value in rows:
        label = (f"{key}:" if key else "").ljust(width)
        click.echo(paint(label, "cyan", out) + value, file=out)


def emit_json(value: Any, *, indent: int | None = 2) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(value, indent=indent))


class Progress:
    """A one-line status on stderr while something slow happens; nothing when not a TTY."""

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool = True) -> None:
        self._stream = stream or sys.stderr
        isatty = getattr(self._stream, "isatty", None)
        self._on = enabled and bool(isatty and isatty())
        self._shown = False

    def show(self, text: str) -> None:
        """Replace the status line with ``text``."""
        if self._on:
            self._stream.write("\r\x1b[K" + paint(text, "dim", self._stream))
            self._stream.flush()
            self._shown = True

    def clear(self) -> None:
        """Remove the status line."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False


def error_line(message: str) -> None:
    """The one line every failure prints on stderr."""
    click.echo(paint("rpcplugin: error: ", "red", sys.stderr) + message, file=sys.stderr)
