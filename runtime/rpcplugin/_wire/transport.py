"""Where a plugin listens: unix sockets and loopback TCP by go-plugin's rules (docs/protocol.md §4).

Unix sockets are named ``plugin<random>`` in ``PLUGIN_UNIX_SOCKET_DIR`` or the temp dir, are
created under a 077 umask so no moment exists where they are wider than owner-only, and are
chowned to ``PLUGIN_UNIX_SOCKET_GROUP`` and made 0660 when that is set. TCP binds 127.0.0.1 on
the first free port of ``[PLUGIN_MIN_PORT, PLUGIN_MAX_PORT]``, ascending, or an OS-chosen port.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator

from ..errors import ConfigError, TransportError
from ..record import Record

MAX_UNIX_PATH = 103
"""macOS allows 104 bytes including the NUL, Linux 108: keep every socket path under this."""


class Endpoint(Record):
    """A listening address as the handshake line carries it."""

    __slots__ = ("address", "network")
    network: str  # "unix" or "tcp"
    address: str  # a socket path, or "127.0.0.1:PORT"

    def __init__(self, network: str, address: str) -> None:
        super().__init__(network=network, address=address)

    @property
    def grpc_target(self) -> str:
        """The address in gRPC's target syntax (``unix:/path`` or ``host:port``)."""
        return f"unix:{self.address}" if self.network == "unix" else self.address

    def __str__(self) -> str:
        return f"{self.network}:{self.address}"


PORT_RANGE = "1-65535"
"""The TCP ports an address may name (0 means "any port" only where a listener is made)."""


def tcp_port(address: str) -> int | None:
    """The port of ``host:port`` (``[v6]:port``) when it is a decimal in 1-65535; None when the
    form is wrong (no host, no port, not digits) or the port is out of range."""
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdecimal() and port.isascii() and len(port) <= 5):
        return None
    number = int(port)
    return number if 1 <= number <= 65535 else None


def socket_dir(configured: str | None) -> str:
    """The directory for unix sockets: ``PLUGIN_UNIX_SOCKET_DIR`` when set, else the temp dir.

    Checks that it exists and is writable, so the failure is one clear sentence rather than a
    bind error from deep inside gRPC.
    """
    if configured is None:
        import tempfile

        configured = tempfile.gettempdir()
    directory = configured
    if not os.path.isdir(directory):
        if os.path.lexists(directory):
            raise TransportError(f"unix socket directory {directory!r} is not a directory")
        raise TransportError(f"unix socket directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TransportError(
            f"unix socket directory {directory!r} is not writable by uid {os.getuid()}; "
            "set PLUGIN_UNIX_SOCKET_DIR (or TMPDIR) to a directory this process can write"
        )
    return directory


def new_unix_socket_path(directory: str, prefix: str = "plugin") -> str:
    """A fresh, unused socket path ``<directory>/<prefix><random>`` (nothing is created)."""
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{int.from_bytes(os.urandom(5)) % 10**10:010d}")
        if not os.path.lexists(path):
            if len(path.encode()) > MAX_UNIX_PATH:
                raise TransportError(
                    f"unix socket path {path!r} is {len(path.encode())} bytes, over the "
                    f"{MAX_UNIX_PATH}-byte limit; use a shorter PLUGIN_UNIX_SOCKET_DIR or TMPDIR"
                )
            return path
    raise TransportError(f"could not find an unused socket name in {directory!r}")


@contextlib.contextmanager
def owner_only_umask() -> Iterator[None]:
    """Create files (and sockets) owner-only for the duration: umask 077."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def resolve_group(group: str) -> int:
    """A group name or numeric gid, as ``PLUGIN_UNIX_SOCKET_GROUP`` gives it, to a gid."""
    if group.isdigit():
        return int(group)
    try:
        import grp

        return grp.getgrnam(group).gr_gid
    except (KeyError, ImportError):
        raise ConfigError(
            "PLUGIN_UNIX_SOCKET_GROUP", group, "the name or number of an existing group"
        ) from None


def share_with_group(path: str, gid: int) -> None:
    """Give ``gid`` connect access to a socket: chown to the group, then chmod 0660."""
    try:
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
    except OSError as exc:
        raise TransportError(f"cannot hand socket {path} to group {gid}: {exc.strerror}") from None


def remove_socket(path: str) -> None:
    """Remove a socket file if it is still there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def free_tcp_port(min_port: int | None, max_port: int | None, host: str = "127.0.0.1") -> int:
    """The first port in ``[min_port, max_port]`` that binds on ``host``, ascending.

    With no range, port 0 is bound and the OS's choice is returned. The port is released again:
    the caller (gRPC or the TLS relay) binds it right away.
    """
    if min_port is None or max_port is None:
        candidates: range = range(0, 1)
    else:
        candidates = range(min_port, max_port + 1)
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if os.name == "posix":
                # as the real listener (gRPC's, asyncio's, go-plugin's) binds: a port whose
                # only users are TIME_WAIT connections of a plugin that died is free for it
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise TransportError(f"cannot bind {host}:{port}: {exc.strerror}") from None
            return int(probe.getsockname()[1])
    raise TransportError(
        f"no free TCP port on {host} between PLUGIN_MIN_PORT={min_port} and "
        f"PLUGIN_MAX_PORT={max_port}"
    )


def private_dir(parent: str | None = None) -> str:
    """A fresh 0700 directory, for sockets only this process may reach (the TLS relay's
    plaintext side)."""
    import tempfile

    try:
        with owner_only_umask():
            return tempfile.mkdtemp(prefix="rpcplugin-", dir=parent)
    except OSError as exc:
        where = parent or tempfile.gettempdir()
        raise TransportError(f"cannot create a directory in {where!r}: {exc.strerror}") from None
