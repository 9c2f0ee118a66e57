"""The client side of generated code: typed calls over a ``grpc.aio.Channel``.

A generated ``XClient`` is a thin subclass of :class:`ClientBase` whose methods are one line each:
they pass a module-level :class:`Method` (path, message classes, call kind) to the matching
:class:`Caller` method. All typing lives here, in generics, so the generated code stays small and
still type-checks under ``mypy --strict`` (the grpclib approach).

Streaming calls return runtime-owned types, never ``grpc.aio`` call objects:

- :class:`ServerStream` — an ``AsyncIterator`` of responses with :meth:`~ServerStream.cancel` and
  the call's metadata;
- :class:`BidiStream` — the same plus :meth:`~BidiStream.send` and
  :meth:`~BidiStream.done_writing`.

Failed calls raise ``grpc.aio.AioRpcError`` (a ``grpc.RpcError`` with ``code()`` and
``details()``). When the channel's source can explain a failure (a launched plugin's
connection knows when its process died), the explanation is raised instead: for a plugin
that exited mid-call, a ``PluginExitedDuringCall``, which is also an ``AioRpcError``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, Final, Generic, Protocol, Self, TypeAlias, TypeVar, final

import grpc
import grpc.aio
from google.protobuf.message import Message

__all__ = [
    "UNSET",
    "BidiStream",
    "CallOptions",
    "Caller",
    "ChannelLike",
    "ClientBase",
    "HasChannel",
    "Metadata",
    "Method",
    "RpcKind",
    "ServerStream",
    "Unset",
    "channel_of",
]

ReqT = TypeVar("ReqT", bound=Message)
RespT = TypeVar("RespT", bound=Message)
T_co = TypeVar("T_co", covariant=True)

Metadata: TypeAlias = Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]]
"""Call metadata: a mapping, or a sequence of pairs when a key repeats. ``-bin`` keys take bytes."""

_GrpcMetadata: TypeAlias = Sequence[tuple[str, str | bytes]]


class HasChannel(Protocol):
    """Anything that carries a channel, such as the connection ``rpcplugin.launch`` yields."""

    @property
    def channel(self) -> grpc.aio.Channel: ...


ChannelLike: TypeAlias = grpc.aio.Channel | HasChannel
"""What a generated client accepts: a ``grpc.aio.Channel`` or an object with a ``.channel``."""

Explainer: TypeAlias = Callable[[grpc.aio.AioRpcError], Awaitable[BaseException | None]]
"""``explain_failure`` of a channel source: a better exception for a failed call, or None."""


def explainer_of(target: ChannelLike) -> Explainer | None:
    """The source's ``explain_failure`` hook, if it has one (only consulted when a call fails)."""
    explain = getattr(target, "explain_failure", None)
    return explain if callable(explain) else None


async def _explained(explain: Explainer | None, error: grpc.aio.AioRpcError) -> BaseException:
    if explain is None:
        return error
    better = await explain(error)
    return error if better is None else better


def channel_of(target: ChannelLike) -> grpc.aio.Channel:
    """The ``grpc.aio.Channel`` behind ``target``."""
    if isinstance(target, grpc.aio.Channel):
        return target
    channel = getattr(target, "channel", None)
    if not isinstance(channel, grpc.aio.Channel):
        raise TypeError(
            f"expected a grpc.aio.Channel or an object with a .channel, got {type(target).__name__}"
        )
    return channel


class RpcKind(enum.Enum):
    """The four gRPC call kinds, named by what streams."""

    UNARY = "unary"
    SERVER_STREAM = "server_stream"
    CLIENT_STREAM = "client_stream"
    BIDI_STREAM = "bidi_stream"


@final
class Method(Generic[ReqT, RespT]):
    """One RPC: its path, its message classes and its kind.

    Generated modules hold one per RPC, shared by the client (:class:`Caller`) and the server
    adapter (``rpcplugin.servicer``).
    """

    __slots__ = ("kind", "name", "path", "request_type", "response_type")

    def __init__(
        self,
        path: str,
        kind: RpcKind,
        request_type: type[ReqT],
        response_type: type[RespT],
    ) -> None:
        if not path.startswith("/") or path.count("/") != 2:
            raise ValueError(f"a method path looks like /package.Service/Method, got {path!r}")
        self.path: Final = path
        self.name: Final = path.rsplit("/", 1)[1]
        self.kind: Final = kind
        self.request_type: Final = request_type
        self.response_type: Final = response_type

    def __repr__(self) -> str:
        return f"Method({self.path!r}, {self.kind})"


@final
class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET
"""``with_options`` default: keep the current value (``None`` means "no default")."""


@final
class CallOptions:
    """Defaults applied to every call a client makes; per-call arguments override them."""

    __slots__ = ("metadata", "timeout")

    def __init__(self, timeout: float | None = None, metadata: Metadata | None = None) -> None:
        self.timeout: Final = timeout
        self.metadata: Final[tuple[tuple[str, str | bytes], ...]] = _pairs(metadata)

    def merge(
        self, timeout: float | None, metadata: Metadata | None
    ) -> tuple[float | None, _GrpcMetadata | None]:
        """The effective timeout and metadata of one call."""
        pairs = self.metadata + _pairs(metadata) if metadata else self.metadata
        return (self.timeout if timeout is None else timeout), (pairs or None)


def _pairs(metadata: Metadata | None) -> tuple[tuple[str, str | bytes], ...]:
    if not metadata:
        return ()
    if isinstance(metadata, Mapping):
        return tuple(metadata.items())
    return tuple(metadata)


def _sync_or_async(
    requests: AsyncIterable[ReqT] | Iterable[ReqT],
) -> AsyncIterator[ReqT] | Iterator[ReqT]:
    if isinstance(requests, AsyncIterable):
        return aiter(requests)
    return iter(requests)


@final
class Caller:
    """Makes the four kinds of typed calls on one channel with default :class:`CallOptions`."""

    __slots__ = ("_callables", "_channel", "_explain", "options")

    def __init__(self, channel: ChannelLike, options: CallOptions | None = None) -> None:
        self._channel = channel_of(channel)
        self._explain = explainer_of(channel)
        self.options = options or CallOptions()
        # grpc multicallables are cheap but not free; one per method per channel.
        self._callables: dict[str, Any] = {}

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    def with_options(
        self,
        *,
        timeout: float | Unset | None = UNSET,
        metadata: Metadata | Unset | None = UNSET,
    ) -> Caller:
        """A caller on the same channel with other defaults."""
        clone = Caller.__new__(Caller)
        clone._channel = self._channel
        clone._explain = self._explain
        clone._callables = self._callables
        clone.options = CallOptions(
            self.options.timeout if timeout is UNSET else timeout,
            self.options.metadata if metadata is UNSET else metadata,
        )
        return clone

    def _callable(self, method: Method[Any, Any]) -> Any:
        found = self._callables.get(method.path)
        if found is None:
            make = {
                RpcKind.UNARY: self._channel.unary_unary,
                RpcKind.SERVER_STREAM: self._channel.unary_stream,
                RpcKind.CLIENT_STREAM: self._channel.stream_unary,
                RpcKind.BIDI_STREAM: self._channel.stream_stream,
            }[method.kind]
            found = make(
                method.path,
                request_serializer=method.request_type.SerializeToString,
                response_deserializer=method.response_type.FromString,
            )
            self._callables[method.path] = found
        return found

    async def unary(
        self,
        method: Method[ReqT, RespT],
        request: ReqT | None,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> RespT:
        """One request (``None``: the default message), one response."""
        timeout, pairs = self.options.merge(timeout, metadata)
        call: grpc.aio.UnaryUnaryCall[ReqT, RespT] = self._callable(method)(
            method.request_type() if request is None else request, timeout=timeout, metadata=pairs
        )
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise await _explained(self._explain, error) from None

    def server_stream(
        self,
        method: Method[ReqT, RespT],
        request: ReqT | None,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> ServerStream[RespT]:
        """One request (``None``: the default message), a stream of responses; starts at once."""
        timeout, pairs = self.options.merge(timeout, metadata)
        call: grpc.aio.UnaryStreamCall[ReqT, RespT] = self._callable(method)(
            method.request_type() if request is None else request, timeout=timeout, metadata=pairs
        )
        return ServerStream(call, self._explain)

    async def client_stream(
        self,
        method: Method[ReqT, RespT],
        requests: AsyncIterable[ReqT] | Iterable[ReqT],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> RespT:
        """A stream of requests (a list or an async iterable), one response."""
        timeout, pairs = self.options.merge(timeout, metadata)
        call: grpc.aio.StreamUnaryCall[ReqT, RespT] = self._callable(method)(
            _sync_or_async(requests), timeout=timeout, metadata=pairs
        )
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise await _explained(self._explain, error) from None

    def bidi_stream(
        self,
        method: Method[ReqT, RespT],
        requests: AsyncIterable[ReqT] | Iterable[ReqT] | None = None,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> BidiStream[ReqT, RespT]:
        """Streams both ways. Without ``requests``, send with :meth:`BidiStream.send`."""
        timeout, pairs = self.options.merge(timeout, metadata)
        source = None if requests is None else _sync_or_async(requests)
        call: grpc.aio.StreamStreamCall[ReqT, RespT] = self._callable(method)(
            source, timeout=timeout, metadata=pairs
        )
        return BidiStream(call, self._explain, interactive=requests is None)


class ClientBase:
    """The base of every generated client: holds a :class:`Caller`, adds ``with_options``.

    Its only public name is :meth:`with_options` (the generator renames an RPC that would clash),
    so generated clients are composition in all but name; lifecycle belongs to the connection.
    """

    __slots__ = ("_caller",)

    def __init__(
        self,
        channel: ChannelLike,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> None:
        self._caller = Caller(channel, CallOptions(timeout, metadata))

    def with_options(
        self,
        *,
        timeout: float | Unset | None = UNSET,
        metadata: Metadata | Unset | None = UNSET,
    ) -> Self:
        """A copy of this client on the same channel with other default call options.

        ``timeout=None`` removes the default timeout; metadata given here replaces the default.
        """
        clone = object.__new__(type(self))
        clone._caller = self._caller.with_options(timeout=timeout, metadata=metadata)
        return clone

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._caller.channel!r})"


class _Stream(Generic[RespT]):
    """What both stream types share: reading, cancelling, metadata, ``async with``."""

    __slots__ = ("_call", "_cancelled", "_explain")

    _call: grpc.aio.UnaryStreamCall[Any, RespT] | grpc.aio.StreamStreamCall[Any, RespT]

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall[Any, RespT] | grpc.aio.StreamStreamCall[Any, RespT],
        explain: Explainer | None = None,
    ) -> None:
        self._call = call
        self._cancelled = False
        self._explain = explain

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> RespT:
        if self._cancelled:
            raise StopAsyncIteration
        try:
            message = await self._call.read()
        except asyncio.CancelledError:
            if self._cancelled:  # our own cancel(), not the task's
                raise StopAsyncIteration from None
            raise
        except grpc.aio.AioRpcError as error:
            raise await _explained(self._explain, error) from None
        if message is grpc.aio.EOF:
            raise StopAsyncIteration
        return message  # type: ignore[return-value]  # grpc types read() as object | RespT

    def cancel(self) -> bool:
        """Cancel the call. Iteration then stops; returns False if the call already ended."""
        self._cancelled = True
        return self._call.cancel()

    async def initial_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """The server's initial metadata (waits for it)."""
        return tuple(await self._call.initial_metadata())

    async def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """The server's trailing metadata (waits for the call to end)."""
        return tuple(await self._call.trailing_metadata())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leaving ``async with`` cancels the call if it is still running."""
        if not self._call.done():
            self.cancel()


@final
class ServerStream(_Stream[RespT], AsyncIterator[RespT]):
    """The responses of a server-streaming call: ``async for reply in client.list(req)``.

    Not awaitable, not buffered. Use ``async with`` (or :meth:`cancel`) to stop early.
    """

    __slots__ = ()

    def __init__(
        self, call: grpc.aio.UnaryStreamCall[Any, RespT], explain: Explainer | None = None
    ) -> None:
        super().__init__(call, explain)


@final
class BidiStream(_Stream[RespT], AsyncIterator[RespT], Generic[ReqT, RespT]):
    """A bidirectional call: :meth:`send` requests, iterate for responses.

    Created without a request iterable it is interactive: ``await s.send(m)`` then
    ``await s.done_writing()``. Created from an iterable, the runtime sends it and
    :meth:`send` raises ``grpc.aio.UsageError``.
    """

    __slots__ = ("_interactive", "_writer")

    def __init__(
        self,
        call: grpc.aio.StreamStreamCall[ReqT, RespT],
        explain: Explainer | None = None,
        *,
        interactive: bool,
    ) -> None:
        super().__init__(call, explain)
        self._writer = call
        self._interactive = interactive

    async def send(self, request: ReqT) -> None:
        """Send one request."""
        if not self._interactive:
            raise grpc.aio.UsageError("this stream sends the iterable it was created with")
        try:
            await self._writer.write(request)
        except grpc.aio.AioRpcError as error:
            raise await _explained(self._explain, error) from None

    async def done_writing(self) -> None:
        """Tell the server no more requests are coming (half-close)."""
        if self._interactive:
            await self._writer.done_writing()
