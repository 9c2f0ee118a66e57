"""The exceptions the runtime raises: one hierarchy, each message specific enough to act on.

Everything derives from :class:`PluginError`, so a host can catch that one class. The
subclasses say *what* went wrong (configuration, handshake, version, TLS, process exit,
time-out, integrity); their messages say *what to do about it*.
"""

from __future__ import annotations


class PluginError(Exception):
    """Base class of every error the runtime raises on purpose."""


class ConfigError(PluginError):
    """A setting (a ``PLUGIN_*`` variable, an ``RPCPLUGIN_*`` variable or an argument) is invalid.

    The message names the setting, the value it had and what is allowed.
    """

    def __init__(self, setting: str, value: object, allowed: str) -> None:
        self.setting = setting
        self.value = value
        self.allowed = allowed
        super().__init__(f"{setting}={value!r} is invalid: {allowed}")


class HandshakeError(PluginError):
    """The plugin's handshake line was missing or malformed.

    ``line`` is what the host actually read (possibly empty).
    """

    def __init__(self, message: str, line: str = "") -> None:
        self.line = line
        super().__init__(message)


class VersionMismatchError(HandshakeError):
    """Host and plugin share no application protocol version (or the core version differs)."""


class SecurityError(PluginError):
    """A TLS or integrity problem: bad certificates, a peer that cannot be verified, a bad
    checksum. The runtime never falls back to an unverified connection."""


class ChecksumError(SecurityError):
    """The plugin executable's SHA-256 does not match the configured checksum."""


class TransportError(PluginError):
    """A listener could not be created or an address could not be reached."""


class PluginExitedError(PluginError):
    """The plugin process exited when it should not have.

    Carries the exit status (negative: killed by that signal) and the last lines of its stderr.
    """

    def __init__(self, message: str, *, returncode: int | None, stderr_tail: str) -> None:
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        detail = f"{message} (exit status {describe_returncode(returncode)})"
        if stderr_tail:
            detail += "; last stderr lines:\n" + stderr_tail
        else:
            detail += "; it wrote nothing to stderr"
        super().__init__(detail)


class ConnectionClosedError(PluginError):
    """The host closed the connection: a call made after ``close()``, or one still in flight
    when ``close()`` began (then the error is a ``ConnectionClosedDuringCall``, which is also a
    ``grpc.aio.AioRpcError`` with code CANCELLED)."""


class StartTimeoutError(PluginError):
    """The plugin did not print its handshake line within the start timeout."""


def describe_returncode(returncode: int | None) -> str:
    """A subprocess return code as a person reads it: ``-9`` → ``killed by SIGKILL``."""
    if returncode is None:
        return "unknown"
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return str(returncode)
