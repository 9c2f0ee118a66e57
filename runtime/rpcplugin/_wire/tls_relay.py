"""The OpenSSL path: a TLS relay between a peer and a plaintext gRPC endpoint on a private socket.

PyPI grpcio's BoringSSL cannot verify the P-521 certificates go-plugin peers use under TLS 1.3
(docs/protocol.md §5.3). Python's :mod:`ssl` (OpenSSL) can. So for such peers the TLS connection is
terminated (plugin side) or originated (host side) here, in the same event loop, and the
plaintext bytes are pumped to or from gRPC over a unix socket inside a 0700 directory, which
only this process can reach. Verification is never weakened: the peer must present the one
certificate we trust, and the relay's own error text is kept for the caller.

So that a handler still learns who called (:func:`rpcplugin.current_peer`), the terminator
connects each relayed connection from a unix client socket bound to a name of its own, which
gRPC reports as the call's ``peer()``, and files the verified peer under that name in
:data:`rpcplugin.peer.RELAYED` while the connection lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from .._wire.transport import Endpoint, owner_only_umask, remove_socket
from ..errors import TransportError
from ..peer import RELAYED, Peer, address_of

log = logging.getLogger("rpcplugin.tls")

HANDSHAKE_TIMEOUT = 10.0
PEER_LINGER = 30.0
"""Seconds a closed relayed connection's peer stays known, for handlers still finishing."""


class _Pump(asyncio.Protocol):
    """One side of a relayed connection; forwards what it receives to its partner."""

    def __init__(self, on_made: Callable[[_Pump], None] | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.partner: _Pump | None = None
        self._pending: list[bytes] = []
        self._eof_pending = False
        self.received = 0
        self.error: Exception | None = None
        """Why the connection was lost, if it was an error (e.g. the peer's TLS alert)."""
        self._on_made = on_made
        self._close_asked = False
        self._tls = False
        self.peer: Peer | None = None
        """The verified TLS peer (the terminator's accepted side only)."""
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._close_asked:  # closed (the relay, or a failed dial) before it was made
            transport.close()
            return
        # asked now: a closed SSL transport's get_extra_info() raises AttributeError
        self._tls = transport.get_extra_info("sslcontext") is not None
        if self._tls:
            tls = transport.get_extra_info("ssl_object")
            der = tls.getpeercert(binary_form=True) if tls is not None else None
            address = address_of(transport.get_extra_info("peername"))
            self.peer = Peer(address, "tls", "openssl-relay", der or None)
        if self._on_made is not None:
            self._on_made(self)

    def attach(self, partner: _Pump) -> None:
        """Pair with the other side and flush anything that arrived before it existed."""
        self.partner = partner
        assert partner.transport is not None
        for chunk in self._pending:
            partner.transport.write(chunk)
        self._pending.clear()
        if self._eof_pending:
            self._forward_eof()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        partner = self.partner
        if partner is None or partner.transport is None:
            self._pending.append(data)
            return
        partner.transport.write(data)

    def eof_received(self) -> bool | None:
        if self.partner is None:
            self._eof_pending = True
        else:
            self._forward_eof()
        # keep our write side open until the partner is done too (SSL transports cannot)
        if self.transport is not None and not self._tls:
            return True
        return None

    def _forward_eof(self) -> None:
        partner = self.partner
        if partner is not None and partner.transport is not None:
            if partner.transport.can_write_eof():
                partner.transport.write_eof()
            else:
                partner.transport.close()

    # flow control: when the partner cannot keep up, stop reading from our side
    def pause_writing(self) -> None:
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc
        if not self.closed.done():
            self.closed.set_result(None)
        partner = self.partner
        if partner is not None and partner.transport is not None:
            partner.transport.close()

    def close(self) -> None:
        """Close the connection, now or, when asyncio has not made it yet, as it is made."""
        self._close_asked = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class _RelayState:
    server: asyncio.AbstractServer | None = None
    connections: set[_Pump] = field(default_factory=set)
    last_error: str | None = None
    socket_path: str | None = None


class TLSTerminator:
    """Plugin side: accept TLS on the public endpoint, relay plaintext to gRPC's private socket."""

    def __init__(self, context: ssl.SSLContext, upstream_path: str) -> None:
        self._context = context
        self._upstream = upstream_path
        self._state = _RelayState()
        self._names = itertools.count(1)

    async def listen_unix(self, path: str) -> Endpoint:
        """Listen on a new unix socket (created owner-only)."""
        loop = asyncio.get_running_loop()
        try:
            with owner_only_umask():
                self._state.server = await loop.create_unix_server(
                    self._accept,
                    path,
                    ssl=self._context,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                    backlog=128,
                )
        except OSError as exc:
            raise TransportError(f"cannot listen on unix:{path}: {exc.strerror}") from None
        self._state.socket_path = path
        return Endpoint("unix", path)

    async def listen_tcp(self, host: str, port: int) -> Endpoint:
        """Listen on ``host:port``."""
        loop = asyncio.get_running_loop()
        try:
            self._state.server = await loop.create_server(
                self._accept,
                host,
                port,
                ssl=self._context,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                backlog=128,
            )
        except OSError as exc:  # taken since it was found free: the caller's one-line error
            raise TransportError(f"cannot listen on tcp:{host}:{port}: {exc.strerror}") from None
        bound = self._state.server.sockets[0].getsockname()
        return Endpoint("tcp", f"{host}:{bound[1]}")

    def _accept(self) -> _Pump:
        # an SSL transport calls connection_made only once the TLS handshake (and so the
        # client certificate check) has succeeded: only then is gRPC's socket dialed
        return _Pump(on_made=self._handshake_done)

    def _handshake_done(self, downstream: _Pump) -> None:
        self._state.connections.add(downstream)
        task = asyncio.get_running_loop().create_task(self._connect_upstream(downstream))
        downstream.closed.add_done_callback(lambda _: self._state.connections.discard(downstream))
        task.add_done_callback(_log_task_failure)

    async def _connect_upstream(self, downstream: _Pump) -> None:
        loop = asyncio.get_running_loop()
        # a name of this connection's own, in gRPC's private directory: gRPC reports it as the
        # peer of every call on the connection, which is how a handler finds the TLS peer
        name = os.path.join(os.path.dirname(self._upstream), f"c{next(self._names):x}")
        key = f"unix:{name}"
        if downstream.peer is not None:
            RELAYED.add(key, downstream.peer)
        downstream.closed.add_done_callback(
            lambda _: loop.call_later(PEER_LINGER, RELAYED.discard, key)
        )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            with owner_only_umask():  # its file exists for a moment: owner-only even so
                sock.bind(name)
            try:
                await loop.sock_connect(sock, self._upstream)
            finally:
                remove_socket(name)  # the bound name outlives its file
            _, upstream = await loop.create_unix_connection(_Pump, sock=sock)
        except OSError as exc:
            sock.close()
            RELAYED.discard(key)
            log.error("TLS relay cannot reach the gRPC server at %s: %s", self._upstream, exc)
            downstream.close()
            return
        if downstream.closed.done():
            upstream.close()
            return
        _pair(downstream, upstream)

    async def close(self) -> None:
        """Stop accepting, drop every relayed connection and remove the socket file."""
        await _close(self._state)


class TLSOriginator:
    """Host side: accept gRPC's plaintext connections on a private socket and relay each over a
    new TLS connection to the peer, verifying it with ``context``."""

    def __init__(self, context: ssl.SSLContext, peer: Endpoint, server_name: str) -> None:
        self._context = context
        self._peer = peer
        self._server_name = server_name
        self._state = _RelayState()
        self._listener: socket.socket | None = None
        self._unowned: set[socket.socket] = set()
        self._adopting: set[asyncio.Task[None]] = set()
        self.on_error: Callable[[str], None] | None = None

    @property
    def last_error(self) -> str | None:
        """The last TLS or connect failure towards the peer, in OpenSSL's words."""
        return self._state.last_error

    async def listen(self, path: str) -> Endpoint:
        """Listen for gRPC's plaintext connections on ``path`` (inside a private directory)."""
        # Our own accepting rather than loop.create_unix_server(): Python 3.11's Server drops a
        # connection accepted just before close() (an AssertionError it swallows) and leaves its
        # socket to the cyclic garbage collector, which may take minutes in a host. Here every
        # accepted socket is ours (in _unowned) until a transport owns it.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with owner_only_umask():
                listener.bind(path)
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._on_connections)
        self._state.socket_path = path
        return Endpoint("unix", path)

    def _on_connections(self) -> None:
        if self._listener is None:  # pragma: no cover - the reader goes before the listener
            return
        loop = asyncio.get_running_loop()
        for _ in range(128):
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # pragma: no cover - out of descriptors, say
                log.debug("relay cannot accept: %s", exc)
                return
            conn.setblocking(False)
            self._unowned.add(conn)
            task = loop.create_task(self._adopt(conn))
            self._adopting.add(task)
            task.add_done_callback(self._adopting.discard)

    async def _adopt(self, conn: socket.socket) -> None:
        # connect_accepted_socket() makes the transport before its first await: from here on
        # the transport closes conn (or the except below does), also when this is cancelled
        self._unowned.discard(conn)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._accept, conn)
        except OSError as exc:  # pragma: no cover - the client went away at once
            conn.close()
            log.debug("relay could not take a connection: %s", exc)

    def _accept(self) -> _Pump:
        downstream = _Pump()
        self._state.connections.add(downstream)
        downstream.closed.add_done_callback(lambda _: self._state.connections.discard(downstream))
        task = asyncio.get_running_loop().create_task(self._connect_peer(downstream))
        task.add_done_callback(_log_task_failure)
        return downstream

    async def _connect_peer(self, downstream: _Pump) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self._peer.network == "unix":
                _, upstream = await loop.create_unix_connection(
                    _Pump,
                    self._peer.address,
                    ssl=self._context,
                    server_hostname=self._server_name,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                )
            else:
                host, _, port = self._peer.address.rpartition(":")
                _, upstream = await loop.create_connection(
                    _Pump,
                    host.strip("[]"),
                    int(port),
                    ssl=self._context,
                    server_hostname=self._server_name,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                )
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            message = f"TLS connection to {self._peer} failed: {exc}"
            self._state.last_error = message
            if self.on_error is not None:
                self.on_error(message)
            log.debug(message)
            downstream.close()
            return
        if downstream.closed.done():
            upstream.close()
            return
        _pair(downstream, upstream)
        upstream.closed.add_done_callback(lambda _: self._note_alert(upstream))

    def _note_alert(self, upstream: _Pump) -> None:
        # under TLS 1.3 a server refuses our certificate (or its absence) only after the
        # handshake: an alert on the first read, or just EOF before it sent anything (a gRPC
        # server always starts with its SETTINGS frame). Keep that for the caller.
        if isinstance(upstream.error, ssl.SSLError):
            reason = f"OpenSSL: {upstream.error}"
        elif upstream.received == 0:
            reason = "it closed the connection right after the handshake without sending a byte"
        else:
            return
        message = (
            f"TLS connection to {self._peer} was refused by the peer after the handshake, which "
            f"is how a TLS 1.3 server rejects the client certificate (ours, or its absence) "
            f"({reason})"
        )
        self._state.last_error = message
        if self.on_error is not None:
            self.on_error(message)
        log.debug(message)

    async def close(self) -> None:
        """Stop accepting, drop every relayed connection and remove the socket file."""
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        adopting = list(self._adopting)
        for task in adopting:
            task.cancel()
        await asyncio.gather(*adopting, return_exceptions=True)
        for conn in self._unowned:  # accepted, and the task that was to adopt it never ran
            conn.close()
        self._unowned.clear()
        await _close(self._state)


def _pair(a: _Pump, b: _Pump) -> None:
    a.attach(b)
    b.attach(a)


async def _close(state: _RelayState) -> None:
    if state.server is not None:
        state.server.close()
    for pump in list(state.connections):
        pump.close()
    if state.server is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(state.server.wait_closed(), 1.0)
    if state.socket_path is not None:
        remove_socket(state.socket_path)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(state.socket_path))


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("TLS relay task failed: %r", task.exception())
