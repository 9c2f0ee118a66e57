"""What a running plugin server holds, and the exit statuses ``serve()`` ends with; shared by
the go-plugin start-up (:mod:`.server`) and network mode (:mod:`.network_mode`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from .._wire.listeners import Listeners, quiet_cancelled_calls

if TYPE_CHECKING:
    from .._wire.transport import Endpoint
    from ..services.broker import GRPCBroker
    from ..services.goplugin import GoPluginServices

EXIT_OK = 0
EXIT_COOKIE = 1
"""Not launched by a host with the right magic cookie (P01), or a plugin without a cookie."""
EXIT_CONFIG = 2
"""A setting was invalid; the message names it."""
EXIT_TLS = 3
"""``PLUGIN_CLIENT_CERT`` could not be used (P19)."""
EXIT_TRANSPORT = 4
"""No listener could be created (no free port, unwritable socket directory, ...)."""

SHUTDOWN_GRACE = 0.25
"""Seconds in-flight calls get after ``Shutdown`` before they are cancelled."""


class RunningServer:
    """What a running plugin server has open, so that every exit path can close it (the plugin
    server and network mode share it). Filled in as the server starts."""

    def __init__(self) -> None:
        self.server: grpc.aio.Server | None = None
        self.listeners = Listeners()
        self.stop = asyncio.Event()
        self.own_streams: list[Callable[[], None]] = []
        """Closers of the runtime's own long-lived streams (stdio, broker), ended before the
        stop."""
        self.services: GoPluginServices | None = None
        """go-plugin's services on the server (built after the handshake line)."""
        self.endpoint: Endpoint | None = None
        self.version = 0
        self.tls = "off"

    @property
    def broker(self) -> GRPCBroker | None:
        """The server's broker, once its services are built; its brokered servers and
        connections are closed together with the server."""
        return self.services.broker_cell.broker if self.services is not None else None

    async def close(self) -> None:
        """End the runtime's own streams, stop the server (a short grace for calls in flight)
        and the broker, then remove every listener."""
        if self.server is not None:
            quiet_cancelled_calls()
            for close in self.own_streams:  # told to end now, they finish within the grace
                close()
            stopping = [self.server.stop(SHUTDOWN_GRACE)]
            if self.broker is not None:
                stopping.append(self.broker.close())
            await asyncio.gather(*stopping, return_exceptions=True)
        await self.listeners.close()
