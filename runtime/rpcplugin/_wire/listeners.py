"""Where our gRPC servers listen: unix sockets or loopback TCP in the host's port range (P11–P14),
optionally behind the OpenSSL relay, and everything a listener leaves to remove. Used by the
plugin server, network mode's neighbours and brokered servers alike."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from ..errors import TransportError
from .transport import (
    Endpoint,
    free_tcp_port,
    new_unix_socket_path,
    owner_only_umask,
    private_dir,
    remove_socket,
    resolve_group,
    share_with_group,
    socket_dir,
)

if TYPE_CHECKING:
    from ..config import PluginSettings
    from .tls_plan import ServerTLS
    from .tls_relay import TLSTerminator

SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.so_reuseport", 0),
)
"""Options of every server we run: message limits as large as go-plugin hosts' (2^31-1; -1 is
unlimited) (P25), and no port sharing."""


class Listeners:
    """What a server listens on: its sockets, its private directories and the OpenSSL relay in
    front of it. :meth:`close` removes them all, whatever state the server got to."""

    def __init__(self) -> None:
        self.relay: TLSTerminator | None = None
        self.sockets: list[str] = []
        self.dirs: list[str] = []

    @property
    def backend(self) -> str:
        """``"openssl"`` when the relay terminates TLS, else ``"grpc"`` (or plaintext)."""
        return "openssl" if self.relay is not None else "grpc"

    async def listen(
        self, server: grpc.aio.Server, settings: PluginSettings, tls: ServerTLS | None
    ) -> Endpoint:
        """Open the listener a handshake or ``ConnInfo`` announces; for the OpenSSL backend
        gRPC itself listens on a private socket behind the TLS relay."""
        gid = resolve_group(settings.unix_socket_group) if settings.unix_socket_group else None
        if tls is not None and tls.backend == "openssl":
            return await self._listen_relayed(server, settings, tls, gid)
        credentials = None
        if tls is not None:
            credentials = grpc.ssl_server_credentials(
                [(tls.identity.key_pem, tls.identity.cert_pem)],
                root_certificates=tls.peer_pem,
                require_client_auth=True,
            )
        if settings.transport == "tcp":

            async def bind(port: int) -> Endpoint:
                endpoint = Endpoint("tcp", f"127.0.0.1:{port}")
                add_port(server, endpoint, credentials)
                return endpoint

            return await bind_tcp(settings, bind)
        path = new_unix_socket_path(socket_dir(settings.unix_socket_dir))
        endpoint = Endpoint("unix", path)
        add_port(server, endpoint, credentials)
        self.sockets.append(path)
        if gid is not None:
            share_with_group(path, gid)
        return endpoint

    async def _listen_relayed(
        self, server: grpc.aio.Server, settings: PluginSettings, tls: ServerTLS, gid: int | None
    ) -> Endpoint:
        from . import mtls
        from .tls_relay import TLSTerminator

        # checked first, so that a missing or unusable directory gets its one-line message
        inner_dir = private_dir(socket_dir(settings.unix_socket_dir))
        self.dirs.append(inner_dir)
        inner = os.path.join(inner_dir, "grpc.sock")
        add_port(server, Endpoint("unix", inner), None)
        self.sockets.append(inner)
        relay = TLSTerminator(mtls.server_ssl_context(tls.identity, tls.peer_pem), inner)
        self.relay = relay
        if settings.transport == "tcp":
            return await bind_tcp(settings, lambda port: relay.listen_tcp("127.0.0.1", port))
        path = new_unix_socket_path(socket_dir(settings.unix_socket_dir))
        self.sockets.append(path)
        endpoint = await relay.listen_unix(path)
        if gid is not None:
            share_with_group(path, gid)
        return endpoint

    async def close(self) -> None:
        """Stop the relay, remove the sockets and the private directories."""
        if self.relay is not None:
            await self.relay.close()
        for path in self.sockets:
            remove_socket(path)
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                os.rmdir(directory)


async def bind_tcp(
    settings: PluginSettings, bind: Callable[[int], Awaitable[Endpoint]]
) -> Endpoint:
    """Listen on the first port of the host's range that really binds, ascending (P13).

    A port is probed free, then bound; when another process takes it in between (plugins
    launched together race for the same first free port), the search goes on from the next
    port instead of failing. Without a range the OS picks a port, retried a few times.
    """
    low, high = settings.min_port, settings.max_port
    lost = "no port could be bound"
    for _ in range(5 if low is None else (high or 0) - low + 1):
        port = free_tcp_port(low, high)
        try:
            return await bind(port)
        except TransportError as exc:
            lost = str(exc)
            if low is not None:
                low = port + 1
                if high is not None and low > high:
                    break
    raise TransportError(
        f"{lost}; no other free TCP port between PLUGIN_MIN_PORT={settings.min_port} and "
        f"PLUGIN_MAX_PORT={settings.max_port}"
    )


def add_port(
    server: grpc.aio.Server, endpoint: Endpoint, credentials: grpc.ServerCredentials | None
) -> None:
    """Add a listening port, owner-only, or raise a :class:`TransportError` naming it."""
    try:
        with owner_only_umask():
            if credentials is None:
                bound = server.add_insecure_port(endpoint.grpc_target)
            else:
                bound = server.add_secure_port(endpoint.grpc_target, credentials)
    except RuntimeError as exc:
        raise TransportError(f"cannot listen on {endpoint}: {exc}") from None
    if bound == 0:
        raise TransportError(f"cannot listen on {endpoint}")


class _QuietCancelledCalls(logging.Filter):
    """Drop grpcio's report of each in-flight call it cancels when the server stops.

    grpcio logs those at ERROR with a ``CancelledError`` traceback ("Exception not handled by
    _handle_exceptions in servicer method ..."); after ``Shutdown`` that is the expected end of
    every open call (the host's StreamStdio and StartStream streams at least), not an error.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Exception not handled by _handle_exceptions"):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(exc, asyncio.CancelledError) or message.rstrip().endswith("CancelledError")
        )


_QUIET = _QuietCancelledCalls()


def quiet_cancelled_calls() -> None:
    """From now on, grpcio's ERROR record per call cancelled by a server stop is dropped."""
    logging.getLogger("grpc._cython.cygrpc").addFilter(_QUIET)
