"""Server mode: a plugin as a network service, for clients that balance over several of them.

``RPCPLUGIN_LISTEN=host:port`` makes :func:`rpcplugin.serve` listen there instead of doing the
go-plugin start-up: no magic cookie, no handshake line, no parent watch, and only the health
service next to the plugin's own (no ``GRPCController``: nobody on the network may stop it;
no stdio capture; no broker, whose listeners are local). TLS comes from files the operator
provides (``RPCPLUGIN_TLS_CERT``/``RPCPLUGIN_TLS_KEY``, and ``RPCPLUGIN_TLS_CLIENT_CA`` to
require client certificates), made for instance with ``rpcplugin-certs``; serving beyond a
loopback address without them is refused. The app protocol version is the highest the plugin
serves, or the highest of ``PLUGIN_PROTOCOL_VERSIONS`` when that is set.

SIGTERM or SIGINT drains: ``grpc.health.v1`` turns NOT_SERVING for every service, clients that
watch it (``rpcplugin.connect_balanced``) take the server out of rotation, and after
``RPCPLUGIN_DRAIN`` seconds the server stops, letting calls in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import grpc

from .._wire.listeners import SERVER_OPTIONS
from ..config import PluginSettings
from ..errors import TransportError
from ..handshake import negotiate_version
from ..services import reflection
from ..services.health import NOT_SERVING, HealthService

if TYPE_CHECKING:
    from ..ops.metrics import Metrics
    from .running import RunningServer

log = logging.getLogger("rpcplugin.server")


async def serve(
    versions: Mapping[int, Sequence[grpc.GenericRpcHandler]],
    settings: PluginSettings,
    plugin_name: str,
    running: RunningServer,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    metrics: Metrics | None = None,
) -> int:
    """Serve on ``settings.listen`` until SIGTERM/SIGINT; returns the exit status."""
    from .running import EXIT_OK

    started = time.monotonic()
    assert settings.listen is not None
    version = negotiate_version(settings.protocol_versions or (max(versions),), versions.keys())
    running.version = version
    credentials = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        from ..ops.certs import server_credentials

        credentials = server_credentials(
            settings.tls_cert, settings.tls_key, settings.tls_client_ca
        )
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors) or None)
    running.server = server
    health = HealthService()
    reflection.add_handlers(
        server, (health.handler(), *versions[version]), reflection=settings.reflection
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, running.stop.set)
    try:
        if credentials is None:
            port = server.add_insecure_port(settings.listen)
        else:
            port = server.add_secure_port(settings.listen, credentials)
    except RuntimeError as exc:
        raise TransportError(f"cannot listen on {settings.listen}: {exc}") from None
    if port == 0:
        raise TransportError(f"cannot listen on {settings.listen} (in use, or not an address here)")
    address = f"{settings.listen.rpartition(':')[0]}:{port}"
    running.tls = "off" if credentials is None else "grpc"
    await server.start()
    log.info(
        "plugin %s serving app protocol version %d on %s (%s)",
        plugin_name,
        version,
        address,
        "plaintext"
        if credentials is None
        else ("mutual TLS" if settings.tls_client_ca else "TLS, no client certificates"),
        extra={"address": address, "version": version, "tls": running.tls},
    )
    if metrics is not None:
        metrics.plugin_started(plugin_name, time.monotonic() - started, side="server")
    await running.stop.wait()
    health.set_all(NOT_SERVING)
    log.info("plugin %s draining for %g s before it stops", plugin_name, settings.drain)
    await asyncio.sleep(settings.drain)
    return EXIT_OK
