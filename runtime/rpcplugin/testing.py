"""Test a servicer without a plugin process: serve it in this event loop over a real gRPC
channel, with the services every go-plugin host expects next to it (docs/testing.md).

:func:`serve` hands back the generated client of a binding::

    async with rpcplugin.testing.serve(KVPlugin, MyKV()) as kv:
        assert (await kv.get(GetRequest(key="a"))).value == ...

:func:`start` serves whole ``versions`` (what ``plugin.handlers(...)`` returns) and yields an
:class:`InProcessPlugin`, a real :class:`~rpcplugin.PluginConnection` for code that expects
one: ``channel``, ``version``, ``ping()``, ``broker``, ``close()``.

The plugin side is assembled from the same pieces ``rpcplugin.serve`` uses: health,
``GRPCController``, ``GRPCStdio``, ``GRPCBroker`` and server reflection are served, the
interceptors ``auth=``, ``rate_limit=`` and ``interceptors=`` build are installed,
``current_call()``, ``current_peer()`` and ``current_broker()`` work in handlers. What it leaves
out is the process: no handshake line, no stdout capture (``stdio`` is there for a test to write
to), no signals, no parent watch. With ``tls=``, both ends get fresh AutoMTLS certificates and each
verifies the other's exactly, through grpcio's TLS or the OpenSSL relay as asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar

import grpc

from ._wire import dial
from ._wire.tls_plan import ServerTLS
from .config import PluginSettings
from .errors import ConfigError
from .host import interceptors as client_interceptors
from .host.connection import PluginConnection
from .host.opening import Opening
from .plugin import interceptors as server_interceptors
from .plugin import server as plugin_server
from .plugin.running import RunningServer
from .services import broker as broker_mod
from .services.stdio import StdioBuffer

if TYPE_CHECKING:
    from ._wire.mtls import CertificateAndKey
    from ._wire.transport import Endpoint
    from .host.sinks import StdioSink
    from .ops.auth import Authenticator, MetadataPairs
    from .ops.rate_limit import RateLimit
    from .servicer import PluginBinding

__all__ = ["InProcessPlugin", "TLSChoice", "serve", "start"]

ImplT = TypeVar("ImplT")
ClientT = TypeVar("ClientT")

TLSChoice = bool | Literal["grpc", "openssl"]
"""``False``: plaintext; ``True``: mutual TLS, the backend chosen as for a launched plugin
(grpcio's, for the runtime's own P-256 certificates); ``"grpc"`` or ``"openssl"`` force one."""


class InProcessPlugin(PluginConnection):
    """A plugin served in this process, seen from the host: a :class:`PluginConnection` in
    ``direct`` mode whose ``close()`` also stops the server.

    Extra attributes for tests: :attr:`stdio` (write to it to make the plugin's output flow
    to the host's stdio stream), :attr:`plugin_broker` (the plugin side's broker),
    :attr:`host_certificate` and :attr:`plugin_certificate` (DER, with TLS) and
    :attr:`shutdown_requested`.
    """

    def __init__(
        self,
        *,
        running: RunningServer,
        stdio: StdioBuffer,
        directory: str,
        host_certificate: bytes | None,
        plugin_certificate: bytes | None,
        name: str,
        version: int,
        endpoint: Endpoint,
        dialed: dial.Dialed,
        broker: broker_mod.HostBroker,
    ) -> None:
        super().__init__(
            name=name,
            version=version,
            endpoint=endpoint,
            dialed=dialed,
            mode="direct",
            broker=broker,
        )
        self._running = running
        self._directory = directory
        self.stdio = stdio
        """The plugin side's stdio queue: ``stdio.write(1, b"...")`` is plugin stdout."""
        self.host_certificate = host_certificate
        """The certificate (DER) the host side presents, or None without TLS."""
        self.plugin_certificate = plugin_certificate
        """The certificate (DER) the plugin side presents, or None without TLS."""

    @property
    def plugin_broker(self) -> broker_mod.GRPCBroker:
        """The plugin side's broker (what ``current_broker()`` returns in its handlers)."""
        assert self._running.services is not None
        return self._running.services.broker_cell.get()

    @property
    def shutdown_requested(self) -> asyncio.Event:
        """Set once the host called ``GRPCController/Shutdown`` (the server keeps serving
        until :meth:`close`)."""
        return self._running.stop

    async def close(self) -> None:
        """Close the host side, then stop the server and remove its sockets."""
        try:
            await super().close()
        finally:
            await self._stop()

    async def abort(self) -> None:
        """The same as :meth:`close` (there is no process to kill)."""
        try:
            await super().abort()
        finally:
            await self._stop()

    async def detach(self) -> None:
        """The same as :meth:`close` (the server is ours)."""
        try:
            await super().detach()
        finally:
            await self._stop()

    async def _stop(self) -> None:
        await self._running.close()
        shutil.rmtree(self._directory, ignore_errors=True)


def start(
    versions: Mapping[int, Sequence[grpc.GenericRpcHandler]],
    *,
    version: int | None = None,
    tls: TLSChoice = False,
    name: str = "in-process",
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    auth: Authenticator | None = None,
    rate_limit: RateLimit | None = None,
    metadata: MetadataPairs | None = None,
    transport: Literal["unix", "tcp"] = "unix",
    stdout: StdioSink | None = None,
    stderr: StdioSink | None = None,
) -> Opening[InProcessPlugin]:
    """Serve ``versions`` in this event loop and connect to it; await it, or ``async with`` it.

    ``version`` picks the app protocol version (default: the highest). ``interceptors``,
    ``auth`` and ``rate_limit`` are the plugin side's, as for ``rpcplugin.serve``;
    ``metadata`` is sent with every call, as for ``rpcplugin.connect``. The server listens on a
    unix socket in a private temporary directory (or loopback TCP with ``transport="tcp"``).
    ``stdout``/``stderr`` receive what is written to :attr:`InProcessPlugin.stdio`, as for
    ``rpcplugin.launch`` (default: this process's own).
    """

    async def opener() -> InProcessPlugin:
        if not versions:
            raise ConfigError("versions", "{}", "at least one app protocol version")
        chosen = max(versions) if version is None else version
        if chosen not in versions:
            raise ConfigError("version", version, f"one of the served versions {sorted(versions)}")
        return await _open(
            versions[chosen],
            chosen,
            tls=tls,
            name=name,
            interceptors=interceptors,
            auth=auth,
            rate_limit=rate_limit,
            metadata=metadata,
            transport=transport,
            sinks=(stdout, stderr),
        )

    return Opening(opener)


@contextlib.asynccontextmanager
async def serve(
    binding: PluginBinding[ImplT, ClientT],
    impl: ImplT,
    *,
    tls: TLSChoice = False,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    auth: Authenticator | None = None,
    rate_limit: RateLimit | None = None,
    metadata: MetadataPairs | None = None,
) -> AsyncIterator[ClientT]:
    """Serve ``impl`` as ``binding`` (a generated ``XPlugin``) in this event loop and yield
    the generated client (``XClient``) connected to it; everything stops on exit.

    The options are :func:`start`'s.
    """
    async with start(
        binding.versions(impl),
        tls=tls,
        name=binding.service.name,
        interceptors=interceptors,
        auth=auth,
        rate_limit=rate_limit,
        metadata=metadata,
    ) as connection:
        yield binding.client(connection)


async def _open(
    handlers: Sequence[grpc.GenericRpcHandler],
    version: int,
    *,
    tls: TLSChoice,
    name: str,
    interceptors: Sequence[grpc.aio.ServerInterceptor],
    auth: Authenticator | None,
    rate_limit: RateLimit | None,
    metadata: MetadataPairs | None,
    transport: Literal["unix", "tcp"],
    sinks: tuple[StdioSink | None, StdioSink | None],
) -> InProcessPlugin:
    directory = tempfile.mkdtemp(prefix="rpcplugin-test-")
    host_identity = plugin_tls = None
    backend: Literal["auto", "grpc", "openssl"] = "auto" if tls is True else tls or "auto"
    settings = PluginSettings(unix_socket_dir=directory, transport=transport, tls_backend=backend)
    if tls:
        from ._wire import mtls
        from ._wire.tls_plan import choose_backend

        host_identity = mtls.generate_certificate()
        host_cert = mtls.load_der_certificate(host_identity.cert_der, source="test host")
        chosen = choose_backend(backend, host_cert, lambda key: ConfigError("tls", tls, key))
        plugin_tls = ServerTLS(chosen, mtls.generate_certificate(), host_identity.cert_pem)
    running = RunningServer()
    stdio = StdioBuffer(settings.stdio_buffer)
    try:
        served_chain, _ = server_interceptors.build(
            settings, plugin=name, interceptors=interceptors, rate_limit=rate_limit, auth=auth
        )
        server = plugin_server.build_server(
            handlers, settings, running, stdio, plugin_tls, served_chain
        )
        running.version = version
        endpoint = await plugin_server.start_server(server, settings, running, plugin_tls)
        chain = client_interceptors.build(name, metadata=metadata)
        if host_identity is None or plugin_tls is None:
            dialed = dial.plain(endpoint, chain)
            host_broker = broker_mod.HostBroker(settings=settings)
        else:
            plugin_der = plugin_tls.identity.cert_der
            dialed = await dial.automtls(endpoint, host_identity, plugin_der, backend, chain)
            broker_tls = broker_mod.BrokerTLS(host_identity, plugin_der, backend)
            host_broker = broker_mod.HostBroker(tls=broker_tls, settings=settings)
    except BaseException:
        await running.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    connection = InProcessPlugin(
        running=running,
        stdio=stdio,
        directory=directory,
        host_certificate=_der(host_identity),
        plugin_certificate=_der(plugin_tls.identity if plugin_tls else None),
        name=name,
        version=version,
        endpoint=endpoint,
        dialed=dialed,
        broker=host_broker,
    )
    try:
        connection.start_streams(*sinks)
        await connection.ping()
    except BaseException:
        await connection.close()
        raise
    return connection


def _der(identity: CertificateAndKey | None) -> bytes | None:
    return identity.cert_der if identity is not None else None
