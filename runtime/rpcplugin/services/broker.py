"""go-plugin's ``GRPCBroker``, non-multiplexed (docs/protocol.md §6.4; checklist P18, P23).

Either side of a plugin connection can serve more gRPC services to the other on extra
connections. The side that serves calls :meth:`GRPCBroker.accept` with an ID (from
:meth:`GRPCBroker.next_id`): a new listener opens under the same rules as the main one (P11–P13),
a new ``grpc.aio`` server runs there with the main connection's TLS material, and a ``ConnInfo``
announces it on the ``plugin.GRPCBroker/StartStream`` stream. The ID travels to the other side in
an ordinary RPC field; that side calls :meth:`GRPCBroker.dial` with it, which waits up to 5 s for
the ``ConnInfo`` and connects. Unclaimed ``ConnInfo`` is dropped 5 s after it arrived.

With AutoMTLS, a brokered server requires and verifies the peer's certificate (the one the main
connection trusts), and a dial presents our own certificate, trusts only the peer's and checks
the server name ``localhost``. Peers whose keys grpcio's TLS cannot verify (go-plugin's P-521)
go through the OpenSSL relay, exactly as the main connection does.

Where the broker is:

- plugin side: :func:`current_broker` inside any handler of a plugin served by
  :func:`rpcplugin.serve` (and of its brokered servers);
- host side: ``conn.broker`` of a :class:`rpcplugin.PluginConnection` (a :class:`HostBroker`).

Generated code wraps both in typed bindings for services a proto marks ``host_provided``
(:class:`Callback`): ``await XCallback.serve(conn.broker, impl)`` on the host,
``async with XCallback.dial(id) as client`` in the plugin.

The multiplexed broker (go-plugin ≥ 1.6, ``PLUGIN_MULTIPLEX_GRPC``) is not implemented: the
plugin answers ``false`` and such a host fails at start with a clear error.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final, Generic, TypeVar, final

import grpc

from .._wire.transport import Endpoint
from ..config import PluginSettings
from ..errors import PluginError
from ..lifecycle import AsyncClosable
from ..protos import grpc_broker_pb2 as pb
from ..record import Record
from .goplugin import CURRENT_BROKER, BrokerCell

if TYPE_CHECKING:
    from .._wire.dial import Dialed
    from .._wire.listeners import Listeners
    from .._wire.mtls import CertificateAndKey
    from .._wire.tls_plan import ServerTLS, TLSBackendChoice
    from ..calls import ChannelLike
    from ..servicer import Service

__all__ = [
    "DIAL_TIMEOUT",
    "UNCLAIMED_TTL",
    "BrokerConnection",
    "BrokerError",
    "BrokerTLS",
    "BrokeredServer",
    "Callback",
    "GRPCBroker",
    "HostBroker",
    "current_broker",
]

log = logging.getLogger("rpcplugin.broker")

SERVICE_NAME = "plugin.GRPCBroker"
DIAL_TIMEOUT: Final = 5.0
"""Seconds :meth:`GRPCBroker.dial` waits for the peer's ``ConnInfo`` (go-plugin's value)."""
BROKERED_GRACE: Final = 0.25
"""Seconds calls in flight on a brokered server get when it stops (as the plugin server's)."""
UNCLAIMED_TTL: Final = 5.0
"""Seconds a ``ConnInfo`` nobody dialled is kept (go-plugin's value)."""
MAX_ID: Final = 0xFFFFFFFF

ImplT = TypeVar("ImplT")
ClientT = TypeVar("ClientT")


class BrokerError(PluginError):
    """A brokered connection could not be served or dialled."""


class BrokerDialTimeout(BrokerError, TimeoutError):
    """The peer announced no listener for the ID within the dial timeout."""


def current_broker() -> GRPCBroker:
    """The broker of the plugin connection whose RPC the calling task is handling.

    Inside a servicer of a plugin served by :func:`rpcplugin.serve`, and inside the servicers of
    any brokered server (both sides). Raises ``LookupError`` elsewhere; a host uses
    ``conn.broker``.
    """
    try:
        cell = CURRENT_BROKER.get()
    except LookupError:
        raise LookupError(
            "current_broker() is only available while handling an RPC of a plugin served by "
            "rpcplugin.serve (or of a brokered server); a host uses conn.broker"
        ) from None
    return cell.get()


class BrokerTLS(Record):
    """The main connection's AutoMTLS material, reused for brokered connections: our own
    certificate and key, the peer's certificate (DER) and the TLS backend choice."""

    __slots__ = ("backend", "identity", "peer_der")
    identity: CertificateAndKey
    peer_der: bytes
    backend: TLSBackendChoice

    def __init__(
        self, identity: CertificateAndKey, peer_der: bytes, backend: TLSBackendChoice = "auto"
    ) -> None:
        super().__init__(identity=identity, peer_der=peer_der, backend=backend)

    @classmethod
    def from_pem(
        cls, identity: CertificateAndKey, peer_pem: bytes, backend: TLSBackendChoice = "auto"
    ) -> BrokerTLS:
        """The same, from the peer's certificate as PEM."""
        from .._wire import der

        return cls(identity, der.der_of_pem(peer_pem, source="the peer's certificate"), backend)


class _Pending:
    __slots__ = ("expiry", "info")

    def __init__(self, info: asyncio.Future[pb.ConnInfo]) -> None:
        self.info = info
        self.expiry: asyncio.TimerHandle | None = None


@final
class BrokeredServer(AsyncClosable):
    """A gRPC server :meth:`GRPCBroker.accept` started for one ID. ``close()`` (or leaving
    ``async with``) stops it and removes its listener; closing the broker closes it too."""

    def __init__(
        self,
        broker: GRPCBroker,
        id: int,
        endpoint: Endpoint,
        tls: str,
        server: grpc.aio.Server,
        listeners: Listeners,
    ) -> None:
        self.id: Final = id
        """The ID the peer dials."""
        self.endpoint: Final = endpoint
        """Where it listens (what the ``ConnInfo`` announced)."""
        self.tls: Final = tls
        """``"off"``, ``"grpc"`` or ``"openssl"`` (the relay, for peers with P-521 keys)."""
        self._broker = broker
        self._server = server
        self._listeners = listeners
        self._closed = False

    async def close(self) -> None:
        """Stop serving (in-flight calls get a short grace) and remove the listener."""
        if self._closed:
            return
        self._closed = True
        self._broker._servers.discard(self)
        await _stop(self._server, self._listeners)

    def __repr__(self) -> str:
        return f"<BrokeredServer id={self.id} {self.endpoint} tls={self.tls}>"


@final
class BrokerConnection(AsyncClosable):
    """A connection :meth:`GRPCBroker.dial` opened: generated clients take it like a plugin
    connection (``SecretsClient(conn)``). ``close()`` (or leaving ``async with``) closes it."""

    def __init__(self, broker: GRPCBroker, id: int, endpoint: Endpoint, dialed: Dialed) -> None:
        self.id: Final = id
        self.endpoint: Final = endpoint
        """Where the peer's brokered server listens."""
        self._broker = broker
        self._dialed = dialed
        self._closed = False

    @property
    def channel(self) -> grpc.aio.Channel:
        """The ``grpc.aio.Channel`` to the peer's brokered server."""
        return self._dialed.channel

    @property
    def tls(self) -> str:
        """``"off"``, ``"grpc"`` or ``"openssl"``."""
        return self._dialed.tls

    def tls_error(self) -> str | None:
        """The OpenSSL relay's last TLS failure, when that path is in use."""
        return self._dialed.tls_error()

    async def close(self) -> None:
        """Close the channel (and the relay, if any)."""
        if self._closed:
            return
        self._closed = True
        self._broker._connections.discard(self)
        await self._dialed.close()

    def __repr__(self) -> str:
        return f"<BrokerConnection id={self.id} {self.endpoint} tls={self.tls}>"


class GRPCBroker:
    """One side of a go-plugin ``GRPCBroker``: serve (:meth:`accept`) and reach
    (:meth:`dial`) extra gRPC connections by ID.

    IDs are ``uint32``. The accepting side picks the ID (usually from its own :meth:`next_id`)
    and passes it to the other side in an RPC field; each direction has its own namespace.

    ``tls`` is the main connection's AutoMTLS material (``None``: plaintext, as the main
    connection). ``settings`` decides where listeners go, as for the main listener: the socket
    directory and group, or loopback TCP and its port range. ``unavailable``, when set, is why
    this connection has no broker (every call raises :class:`BrokerError` with it).
    """

    def __init__(
        self,
        *,
        tls: BrokerTLS | None = None,
        settings: PluginSettings | None = None,
        unavailable: str | None = None,
        unclaimed_ttl: float = UNCLAIMED_TTL,
    ) -> None:
        self._tls = tls
        self._settings = settings or PluginSettings()
        self._unavailable = unavailable
        self._ttl = unclaimed_ttl
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        self._known: dict[int, pb.ConnInfo] = {}
        """``ConnInfo`` already claimed by a dial: later dials of the same ID reuse it."""
        self._outgoing: asyncio.Queue[pb.ConnInfo] = asyncio.Queue()
        self._servers: set[BrokeredServer] = set()
        self._connections: set[BrokerConnection] = set()
        self._closed = False
        self.stream_error: str | None = None
        """Why the broker stream ended or never opened, if it did (e.g. the peer has no broker)."""

    # -- IDs -----------------------------------------------------------------------------
    def next_id(self) -> int:
        """A fresh ID for :meth:`accept`: 1, 2, 3, ... (per side, wrapping at 2^32 like Go's)."""
        self._next_id = (self._next_id + 1) & MAX_ID
        if self._next_id == 0:
            self._next_id = 1
        return self._next_id

    # -- serving -------------------------------------------------------------------------
    async def accept(
        self,
        id: int,
        *handlers: grpc.GenericRpcHandler,
        interceptors: tuple[grpc.aio.ServerInterceptor, ...] = (),
    ) -> BrokeredServer:
        """Serve ``handlers`` on a new listener announced as ``id`` (go-plugin's
        ``AcceptAndServe``). Returns once the server accepts connections and the ``ConnInfo``
        is queued for the peer; the server runs until closed, or until the broker closes."""
        self._check_usable()
        _check_id(id)
        if any(s.id == id for s in self._servers):
            raise BrokerError(f"broker id {id} is already being served on this side")
        from .._wire.listeners import SERVER_OPTIONS, Listeners

        server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors) or None)
        server.add_generic_rpc_handlers(handlers)
        listeners = Listeners()
        try:
            endpoint = await listeners.listen(server, self._settings, self._server_plan())
            context = contextvars.copy_context()
            context.run(CURRENT_BROKER.set, BrokerCell(self))  # current_broker() in handlers
            await asyncio.get_running_loop().create_task(server.start(), context=context)
        except BaseException:
            await _stop(server, listeners)
            raise
        tls = "off" if self._tls is None else listeners.backend
        served = BrokeredServer(self, id, endpoint, tls, server, listeners)
        self._servers.add(served)
        self._outgoing.put_nowait(
            pb.ConnInfo(service_id=id, network=endpoint.network, address=endpoint.address)
        )
        log.debug("brokered server %d listening on %s (tls %s)", id, endpoint, tls)
        return served

    def _server_plan(self) -> ServerTLS | None:
        if self._tls is None:
            return None
        from .._wire import mtls
        from .._wire.tls_plan import ServerTLS, choose_backend

        peer = mtls.load_der_certificate(self._tls.peer_der, source="the peer's certificate")
        backend = choose_backend(
            self._tls.backend,
            peer,
            lambda key: BrokerError(
                f"grpcio's TLS cannot verify the peer's {key} key; use the 'auto' or 'openssl' "
                "TLS backend"
            ),
        )
        return ServerTLS(backend, self._tls.identity, mtls.pem_of(peer))

    # -- dialling ------------------------------------------------------------------------
    async def dial(self, id: int, *, timeout: float = DIAL_TIMEOUT) -> BrokerConnection:
        """Connect to the peer's brokered server ``id``: wait up to ``timeout`` seconds for its
        ``ConnInfo``, then open a channel (mutual TLS with the main connection's material:
        present our certificate, trust only the peer's, server name ``localhost``).

        Dialling an ID again reuses the address its ``ConnInfo`` gave (unless a newer one has
        arrived), so one brokered server can serve many calls; go-plugin's ``Dial`` would wait
        for a fresh announcement instead."""
        self._check_usable()
        _check_id(id)
        loop = asyncio.get_running_loop()
        entry = self._pending.get(id)
        known = self._known.get(id)
        if known is not None and (entry is None or not entry.info.done()):
            info = known
        else:
            if entry is None:
                entry = _Pending(loop.create_future())
                self._pending[id] = entry
            try:
                info = await asyncio.wait_for(asyncio.shield(entry.info), timeout)
            except TimeoutError:
                raise BrokerDialTimeout(
                    f"the peer announced no brokered connection with id {id} within "
                    f"{timeout:g} s"
                    + (f" (broker stream: {self.stream_error})" if self.stream_error else "")
                ) from None
            finally:
                if self._pending.get(id) is entry:
                    del self._pending[id]
                    if entry.expiry is not None:
                        entry.expiry.cancel()
            self._known[id] = info
        if info.network not in ("unix", "tcp") or not info.address:
            raise BrokerError(
                f"the peer announced brokered connection {id} at an unusable address "
                f"{info.network!r} {info.address!r}"
            )
        endpoint = Endpoint(info.network, info.address)
        from .._wire import dial as dialing

        if self._tls is None:
            dialed = dialing.plain(endpoint)
        else:
            dialed = await dialing.automtls(
                endpoint,
                self._tls.identity,
                self._tls.peer_der,
                self._tls.backend,
                relay_parent=self._settings.unix_socket_dir,
            )
        connection = BrokerConnection(self, id, endpoint, dialed)
        self._connections.add(connection)
        return connection

    # -- the stream ----------------------------------------------------------------------
    def _received(self, info: pb.ConnInfo) -> None:
        """A ``ConnInfo`` arrived from the peer."""
        if info.HasField("knock") and info.knock.knock:
            log.debug("ignoring a multiplexed-broker knock for id %d", info.service_id)
            return
        loop = asyncio.get_running_loop()
        entry = self._pending.get(info.service_id)
        if entry is None or entry.info.done():
            if entry is not None and entry.expiry is not None:
                entry.expiry.cancel()
            entry = _Pending(loop.create_future())
            self._pending[info.service_id] = entry
        entry.info.set_result(info)
        entry.expiry = loop.call_later(self._ttl, self._expire, info.service_id, entry)

    def _expire(self, id: int, entry: _Pending) -> None:
        if self._pending.get(id) is entry:
            del self._pending[id]
            log.debug("dropped unclaimed brokered connection info for id %d", id)

    async def _next_outgoing(self) -> pb.ConnInfo:
        return await self._outgoing.get()

    def _check_usable(self) -> None:
        if self._unavailable is not None:
            raise BrokerError(self._unavailable)
        if self._closed:
            raise BrokerError("the broker is closed (its plugin connection has ended)")

    # -- the end -------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop every brokered server and close every brokered connection of this side."""
        self._closed = True
        for entry in self._pending.values():
            if entry.expiry is not None:
                entry.expiry.cancel()
            if not entry.info.done():
                entry.info.cancel()
        self._pending.clear()
        self._known.clear()
        closing = [s.close() for s in list(self._servers)]
        closing += [c.close() for c in list(self._connections)]
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} tls={'off' if self._tls is None else 'on'} "
            f"servers={sorted(s.id for s in self._servers)} "
            f"connections={sorted(c.id for c in self._connections)}>"
        )


def _check_id(id: int) -> None:
    if not isinstance(id, int) or isinstance(id, bool) or not 0 <= id <= MAX_ID:
        raise BrokerError(f"broker ids are uint32 (0 to {MAX_ID}), got {id!r}")


class BrokerService:
    """Plugin side: the ``plugin.GRPCBroker/StartStream`` servicer. The host opens the stream
    right after connecting and keeps it; ``ConnInfo`` flows both ways through ``broker``."""

    def __init__(self, broker: GRPCBroker | None = None) -> None:
        self.broker = broker if broker is not None else GRPCBroker()
        self._closed = asyncio.Event()

    def close(self) -> None:
        """End the stream now (at shutdown), rather than holding the server's grace period."""
        self._closed.set()

    async def start_stream(
        self,
        requests: AsyncIterator[pb.ConnInfo],
        context: grpc.aio.ServicerContext[pb.ConnInfo, pb.ConnInfo],
    ) -> AsyncIterator[pb.ConnInfo]:
        reader = asyncio.ensure_future(self._read(requests))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while not reader.done() and not closed.done():
                getter = asyncio.ensure_future(self.broker._next_outgoing())
                done, _ = await asyncio.wait(
                    {getter, reader, closed}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    yield getter.result()
                elif not getter.cancel() and not getter.cancelled():
                    self.broker._outgoing.put_nowait(getter.result())  # not lost: next stream
        finally:
            reader.cancel()
            closed.cancel()

    async def _read(self, requests: AsyncIterator[pb.ConnInfo]) -> None:
        async for info in requests:
            self.broker._received(info)

    def methods(self) -> dict[str, grpc.RpcMethodHandler[pb.ConnInfo, pb.ConnInfo]]:
        """Its method handlers by method name."""
        return {
            "StartStream": grpc.stream_stream_rpc_method_handler(
                self.start_stream,
                request_deserializer=pb.ConnInfo.FromString,
                response_serializer=pb.ConnInfo.SerializeToString,
            )
        }


class HostBroker(GRPCBroker):
    """Host side: ``conn.broker``. Opens the broker stream right after connecting (H05) and
    keeps it for the session; a plugin without a broker is fine until the broker is used (the
    stream's error is ignored, as go-plugin does, and kept in :attr:`stream_error`)."""

    def __init__(
        self,
        *,
        tls: BrokerTLS | None = None,
        settings: PluginSettings | None = None,
        unavailable: str | None = None,
        unclaimed_ttl: float = UNCLAIMED_TTL,
    ) -> None:
        super().__init__(
            tls=tls, settings=settings, unavailable=unavailable, unclaimed_ttl=unclaimed_ttl
        )
        self._call: grpc.aio.StreamStreamCall[pb.ConnInfo, pb.ConnInfo] | None = None

    async def run(self, channel: grpc.aio.Channel) -> None:
        """Carry the stream until the channel closes or :meth:`stop` is called."""
        method: grpc.aio.StreamStreamMultiCallable[pb.ConnInfo, pb.ConnInfo]
        method = channel.stream_stream(
            f"/{SERVICE_NAME}/StartStream",
            request_serializer=pb.ConnInfo.SerializeToString,
            response_deserializer=pb.ConnInfo.FromString,
        )
        self._call = call = method()
        writer = asyncio.ensure_future(self._write(call))
        try:
            while True:
                info = await call.read()
                if info is grpc.aio.EOF:
                    self.stream_error = "the plugin ended the broker stream"
                    return
                assert isinstance(info, pb.ConnInfo)
                self._received(info)
        except grpc.aio.AioRpcError as exc:
            self.stream_error = f"{exc.code().name}: {exc.details()}"
        except asyncio.CancelledError:
            return
        finally:
            writer.cancel()

    async def _write(self, call: grpc.aio.StreamStreamCall[pb.ConnInfo, pb.ConnInfo]) -> None:
        while True:
            info = await self._outgoing.get()
            try:
                await call.write(info)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
                log.debug(
                    "broker stream closed before ConnInfo %d was sent: %s", info.service_id, exc
                )
                return

    def stop(self) -> None:
        """End the stream."""
        if self._call is not None:
            self._call.cancel()


@final
class Callback(Generic[ImplT, ClientT]):
    """A service one side serves to the other through the broker, typically the host to its
    plugin (a proto service marked ``host_provided``). Generated as ``XCallback``.

    Serving side (the host)::

        server = await SecretsCallback.serve(conn.broker, MySecrets())
        await client.deploy(DeployRequest(secrets_id=server.id))   # the ID travels in a field

    Calling side (the plugin, inside a handler)::

        async with SecretsCallback.dial(request.secrets_id) as secrets:
            reply = await secrets.get(GetSecretRequest(name="db"))
    """

    __slots__ = ("_client", "service")

    def __init__(
        self, service: Service[ImplT], *, client: Callable[[ChannelLike], ClientT]
    ) -> None:
        self.service: Final = service
        self._client = client

    def handler(self, impl: ImplT) -> grpc.GenericRpcHandler:
        """The gRPC handler serving ``impl``."""
        return self.service.handler(impl)

    async def serve(
        self, broker: GRPCBroker | None, impl: ImplT, *, id: int | None = None
    ) -> BrokeredServer:
        """Serve ``impl`` through ``broker`` (``None``: :func:`current_broker`) under ``id``
        (default: the broker's :meth:`~GRPCBroker.next_id`); the server's ``id`` is what the
        other side dials."""
        broker = broker if broker is not None else current_broker()
        return await broker.accept(broker.next_id() if id is None else id, self.handler(impl))

    def dial(
        self, id: int, broker: GRPCBroker | None = None, *, timeout: float = DIAL_TIMEOUT
    ) -> CallbackClient[ClientT]:
        """``async with`` a typed client of the other side's server ``id`` (through ``broker``,
        default :func:`current_broker`); the connection closes when the block ends."""
        return CallbackClient(
            broker if broker is not None else current_broker(), id, self._client, timeout
        )

    def __repr__(self) -> str:
        return f"Callback({self.service.name!r})"


@final
class CallbackClient(Generic[ClientT]):
    """What :meth:`Callback.dial` returns: ``async with`` it for the typed client."""

    __slots__ = ("_broker", "_connection", "_id", "_make", "_timeout")

    def __init__(
        self,
        broker: GRPCBroker,
        id: int,
        make: Callable[[ChannelLike], ClientT],
        timeout: float,
    ) -> None:
        self._broker = broker
        self._id = id
        self._make = make
        self._timeout = timeout
        self._connection: BrokerConnection | None = None

    async def __aenter__(self) -> ClientT:
        self._connection = await self._broker.dial(self._id, timeout=self._timeout)
        return self._make(self._connection)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


async def _stop(server: grpc.aio.Server, listeners: Listeners) -> None:
    """Stop a brokered server (a short grace for calls in flight), then remove its listener."""
    from .._wire.listeners import quiet_cancelled_calls

    quiet_cancelled_calls()
    await asyncio.gather(server.stop(BROKERED_GRACE), return_exceptions=True)
    await listeners.close()
