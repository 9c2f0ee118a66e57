"""Exit statuses of the ``rpcplugin`` command, one per class of failure (docs/cli.md), and the
one-line message of every error."""

from __future__ import annotations

import re

import grpc

from ..errors import (
    ConfigError,
    HandshakeError,
    PluginError,
    PluginExitedError,
    SecurityError,
    StartTimeoutError,
    TransportError,
    VersionMismatchError,
)

EXIT_OK = 0
EXIT_FAILED = 1
"""Any other failure (a plugin that is not healthy, a ``certs`` problem...)."""
EXIT_USAGE = 2
"""Bad command line: an unknown option, a missing argument, a bad value."""
EXIT_NO_EXECUTABLE = 3
"""The plugin command does not exist or cannot be run."""
EXIT_HANDSHAKE = 4
"""The plugin exited, timed out or printed a bad line before its handshake was done."""
EXIT_COOKIE = 5
"""The plugin refused the magic cookie (it says it is a plugin not to be run by hand)."""
EXIT_VERSION = 6
"""Host and plugin share no app protocol version."""
EXIT_TLS = 7
"""A TLS problem: a certificate that cannot be verified, bad TLS files."""
EXIT_UNREACHABLE = 8
"""The plugin (a reattach config's, a direct address) cannot be reached."""
EXIT_UNKNOWN_METHOD = 9
"""No such service or method in the plugin's schema."""
EXIT_BAD_JSON = 10
"""The JSON request is malformed or does not fit the request message."""
EXIT_PROTOS = 11
"""No schema: the plugin serves no reflection and no usable ``--proto`` was given."""
EXIT_PLUGIN_EXITED = 12
"""The plugin exited while it was being used."""
EXIT_RPC_BASE = 64
"""A call failed with a gRPC status: the exit status is 64 + the code (UNIMPLEMENTED: 76)."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C) before the command finished."""

_COOKIE_REFUSAL = re.compile(
    r"This binary is a plugin|is a plugin that its application starts|magic cookie", re.I
)
"""What go-plugin's and our plugins write to stderr when the cookie is missing or wrong."""


class CLIError(Exception):
    """A failure the CLI reports as one line with its exit status."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def one_line(text: str, *, tail: bool = True) -> str:
    """A multi-line runtime message as one line: the stderr tail shrinks to its last line (the
    message of an hclog JSON line), or goes (``tail=False``)."""
    head, sep, rest = text.partition("; last stderr lines:\n")
    head = head.strip().replace("\n", "; ")
    lines = [line.strip() for line in rest.splitlines() if line.strip()]
    if sep and lines and tail:
        head += f"; its last stderr line: {_message_of(lines[-1])}"
    return head


def _message_of(line: str) -> str:
    from ..hclog import parse_line

    entry = parse_line(line)
    return entry.message if line.startswith("{") and entry.message else line


def _cookie_refusal(stderr: str) -> str | None:
    for line in stderr.splitlines():
        if _COOKIE_REFUSAL.search(line):
            return _message_of(line.strip())
    return None


def classify(error: BaseException) -> CLIError:
    """The exit status and one-line message of any error a command can meet."""
    if isinstance(error, CLIError):
        return error
    if isinstance(error, grpc.aio.AioRpcError) and not isinstance(error, PluginExitedError):
        code = error.code()
        return CLIError(
            EXIT_RPC_BASE + code.value[0],
            f"the call failed: {code.name} (code {code.value[0]}): "
            + one_line(error.details() or ""),
        )
    if isinstance(error, PluginExitedError):
        text = str(error)
        reworded = "refused the magic cookie" in text  # the host's own diagnosis, when it has one
        before_handshake = reworded or "before printing its handshake line" in text
        refusal = _cookie_refusal(error.stderr_tail or "")
        if before_handshake and refusal is not None:
            message = one_line(text, tail=False)
            if not reworded:
                message = (
                    "the plugin refused the magic cookie (check --host or --cookie-key/"
                    f"--cookie-value): {message}"
                )
            return CLIError(EXIT_COOKIE, f"{message}; it says: {refusal}")
        if before_handshake:
            return CLIError(EXIT_HANDSHAKE, one_line(text))
        return CLIError(EXIT_PLUGIN_EXITED, one_line(text))
    if isinstance(error, VersionMismatchError):
        return CLIError(EXIT_VERSION, one_line(str(error), tail=False))
    if isinstance(error, HandshakeError | StartTimeoutError):
        return CLIError(EXIT_HANDSHAKE, one_line(str(error)))
    if isinstance(error, ConfigError) and error.setting == "plugin command":
        return CLIError(
            EXIT_NO_EXECUTABLE, f"cannot run the plugin {error.value!r}: {error.allowed}"
        )
    if isinstance(error, ConfigError):
        return CLIError(EXIT_USAGE, one_line(str(error)))
    if isinstance(error, SecurityError):
        return CLIError(EXIT_TLS, one_line(str(error)))
    if isinstance(error, TransportError):
        return CLIError(EXIT_UNREACHABLE, one_line(str(error)))
    if isinstance(error, PluginError):
        message = one_line(str(error))
        if message.startswith("reattachment process not found"):
            return CLIError(EXIT_UNREACHABLE, message)
        return CLIError(EXIT_FAILED, message)
    if isinstance(error, OSError):
        return CLIError(EXIT_FAILED, one_line(f"{error.strerror or error}: {error.filename or ''}"))
    return CLIError(EXIT_FAILED, one_line(f"{type(error).__name__}: {error}"))
