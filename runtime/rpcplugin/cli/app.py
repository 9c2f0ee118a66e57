"""The ``rpcplugin`` click group and how every subcommand runs: in one event loop, every error
turned into one line and its exit status (:mod:`.status`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn

import click

from .output import error_line
from .status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CLIError, classify


def _version() -> str:
    from importlib import metadata

    for distribution in ("rpcplugin", "rpcplugin-gen"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(version=_version(), message="%(prog)s %(version)s", prog_name="rpcplugin")
def cli() -> None:
    """Launch, inspect and call go-plugin plugins (Go or Python) from the shell.

    The plugin is a command after -- (launched with its host's magic cookie), a running
    plugin (--reattach), or a plugin server (--address). docs/cli.md has examples and the
    exit statuses.
    """


def run(coroutine: Callable[[], Coroutine[Any, Any, int | None]]) -> NoReturn:
    """Run a subcommand's coroutine; exit with its status, or one error line and the status of
    the error's class."""
    _quiet_logging()
    try:
        status = asyncio.run(coroutine())
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.Exit:
        raise
    except BrokenPipeError:  # `rpcplugin call ... | head -1`: the reader has all it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    except Exception as exc:
        failure = classify(exc)
        error_line(str(failure))
        sys.exit(failure.status)
    sys.exit(status or 0)


def usage(message: str) -> NoReturn:
    """Fail with a usage error (exit 2)."""
    raise CLIError(EXIT_USAGE, message)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.split("\n", 1)[0]


class _NotReportedTwice(logging.Filter):
    """The host logs a plugin's unexpected exit as an error; the command reports it itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "rpcplugin.host" and record.levelno >= logging.ERROR)


def _quiet_logging() -> None:
    """Runtime warnings as one ``rpcplugin: warning:`` line each on stderr; nothing else."""
    root = logging.getLogger("rpcplugin")
    if getattr(root, "_rpcplugin_cli", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("rpcplugin: %(levelname)s: %(message)s"))
    handler.addFilter(_NotReportedTwice())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    root.propagate = False
    root._rpcplugin_cli = True  # type: ignore[attr-defined]


async def gather_first(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of ``awaitables`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
