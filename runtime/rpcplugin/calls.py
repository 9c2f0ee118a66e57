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
that exited mid-call, a ``PluginExitedDuringCall``, which is also an ``AioRpcError``. When the
source knows it was closed (its ``closed_error`` hook), a call after the close raises its
``ConnectionClosedError``, and a call cut by the close its ``ConnectionClosedDuringCall``
(also an ``AioRpcError``) instead of grpc.aio's bare ``asyncio.CancelledError``.

A channel source may also choose the channel per call (:class:`ChannelPicker`, the pool
``rpcplugin.launch_pool`` yields): the client then asks it once per call, and once per stream
(a stream stays on the channel it started on), and explains a failure with the picked target's
own ``explain_failure``.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import time
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
from typing import Any, Final, Generic, Protocol, Self, TypeAlias, TypeVar, cast, final

import grpc
import grpc.aio
from google.protobuf.message import Message

__all__ = [
    "UNSET",
    "BidiStream",
    "CallOptions",
    "Caller",
    "ChannelLike",
    "ChannelPicker",
    "ClientBase",
    "HasChannel",
    "Metadata",
    "Method",
    "RpcKind",
    "ServerStream",
    "Unset",
    "channel_of",
    "picker_of",
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


ClosedHook: TypeAlias = Callable[[bool], BaseException | None]
"""``closed_error`` of a channel source: once the host has closed it, the documented error for
a call made (``False``) or cut (``True``) by the close; None while it is open."""


def closed_hook_of(target: ChannelLike) -> ClosedHook | None:
    """The source's ``closed_error`` hook, if it has one."""
    hook = getattr(target, "closed_error", None)
    return hook if callable(hook) else None


def _cut_by_close(closed: ClosedHook | None) -> BaseException | None:
    """For a call that ended in ``asyncio.CancelledError``: the source's error if the host
    closed the connection under it, None if the caller's own task is being cancelled."""
    if closed is None:
        return None
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return None
    return closed(True)


async def _explained(explain: Explainer | None, error: grpc.aio.AioRpcError) -> BaseException:
    if explain is None:
        return error
    better = await explain(error)
    return error if better is None else better


class ChannelPicker(Protocol):
    """A channel source that chooses where each call goes, such as the pool
    ``rpcplugin.launch_pool`` yields. Generated clients call :meth:`pick_channel` once per
    call (once per stream) instead of using one fixed channel.

    The picked object's ``explain_failure`` explains that call's failure; if it has a callable
    ``track``, it is given each ``grpc.aio`` call made on it as soon as it starts (the pool
    counts the calls in flight on each member with ``call.add_done_callback``).
    """

    def pick_channel(self) -> ChannelLike:
        """The channel, or the object carrying it (and its ``explain_failure``), for one call.
        May raise a documented error (e.g. ``TransportError`` when nothing can take the call)."""
        ...


def picker_of(target: ChannelLike) -> ChannelPicker | None:
    """``target`` itself if it picks a channel per call (has a callable ``pick_channel``)."""
    pick = getattr(target, "pick_channel", None)
    return cast(ChannelPicker, target) if callable(pick) else None


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
        self, timeout: float | None, metadata: Metadata | None, deadline: float | None = None
    ) -> tuple[float | None, _GrpcMetadata | None]:
        """The effective timeout and metadata of one call.

        ``deadline`` is an absolute time in seconds since the epoch (as ``time.time()``); it
        replaces the default timeout and cannot be given with ``timeout`` (``TypeError``).
        """
        pairs = self.metadata + _pairs(metadata) if metadata else self.metadata
        if deadline is not None:
            if timeout is not None:
                raise TypeError("give a call timeout= or deadline=, not both")
            return deadline - time.time(), (pairs or None)  # grpc turns it back into deadline
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
    """Makes the four kinds of typed calls on one channel with default :class:`CallOptions`.

    Given a :class:`ChannelPicker`, it asks the picker for a target on every call instead.
    """

    __slots__ = ("_callables", "_channel", "_closed", "_explain", "_picker", "options")

    def __init__(self, channel: ChannelLike, options: CallOptions | None = None) -> None:
        self._picker = picker_of(channel)
        self._channel: grpc.aio.Channel | None = None if self._picker else channel_of(channel)
        self._explain = explainer_of(channel)
        self._closed = closed_hook_of(channel)
        self.options = options or CallOptions()
        # grpc multicallables are cheap but not free; one per method per channel.
        self._callables: dict[str, Any] = {}

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel calls go to (with a picker: the one it picks now)."""
        if self._channel is None:
            assert self._picker is not None
            return channel_of(self._picker.pick_channel())
        return self._channel

    def _describe(self) -> object:
        return self._picker if self._picker is not None else self._channel

    def with_options(
        self,
        *,
        timeout: float | Unset | None = UNSET,
        metadata: Metadata | Unset | None = UNSET,
    ) -> Caller:
        """A caller on the same channel with other defaults."""
        clone = Caller.__new__(Caller)
        clone._channel = self._channel
        clone._picker = self._picker
        clone._explain = self._explain
        clone._closed = self._closed
        clone._callables = self._callables
        clone.options = CallOptions(
            self.options.timeout if timeout is UNSET else timeout,
            self.options.metadata if metadata is UNSET else metadata,
        )
        return clone

    def _route(self, method: Method[Any, Any]) -> tuple[Any, Explainer | None, ClosedHook | None]:
        """The multicallable for one call of ``method``, who explains its failure and who
        knows whether the host closed the connection (a call after close raises that)."""
        if self._picker is None:
            if self._closed is not None and (closed := self._closed(False)) is not None:
                raise closed
            found = self._callables.get(method.path)
            if found is None:
                assert self._channel is not None
                found = self._callables[method.path] = _multicallable(self._channel, method)
            return found, self._explain, self._closed
        # a picked channel changes from call to call (and members come and go): making the
        # multicallable costs well under a microsecond, so none is kept
        target = self._picker.pick_channel()
        hook = closed_hook_of(target)
        if hook is not None and (closed := hook(False)) is not None:
            raise closed
        make = _multicallable(channel_of(target), method)
        track = getattr(target, "track", None)
        if callable(track):
            make = functools.partial(_tracked, make, track)
        return make, explainer_of(target), hook

    async def unary(
        self,
        method: Method[ReqT, RespT],
        request: ReqT | None,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        metadata: Metadata | None = None,
    ) -> RespT:
        """One request (``None``: the default message), one response."""
        timeout, pairs = self.options.merge(timeout, metadata, deadline)
        make, explain, closed = self._route(method)
        call: grpc.aio.UnaryUnaryCall[ReqT, RespT] = make(
            method.request_type() if request is None else request, timeout=timeout, metadata=pairs
        )
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise await _explained(explain, error) from None
        except asyncio.CancelledError:
            if (cut := _cut_by_close(closed)) is not None:
                raise cut from None
            raise

    def server_stream(
        self,
        method: Method[ReqT, RespT],
        request: ReqT | None,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        metadata: Metadata | None = None,
    ) -> ServerStream[RespT]:
        """One request (``None``: the default message), a stream of responses; starts at once."""
        timeout, pairs = self.options.merge(timeout, metadata, deadline)
        make, explain, closed = self._route(method)
        call: grpc.aio.UnaryStreamCall[ReqT, RespT] = make(
            method.request_type() if request is None else request, timeout=timeout, metadata=pairs
        )
        return ServerStream(call, explain, closed)

    async def client_stream(
        self,
        method: Method[ReqT, RespT],
        requests: AsyncIterable[ReqT] | Iterable[ReqT],
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        metadata: Metadata | None = None,
    ) -> RespT:
        """A stream of requests (a list or an async iterable), one response."""
        timeout, pairs = self.options.merge(timeout, metadata, deadline)
        make, explain, closed = self._route(method)
        call: grpc.aio.StreamUnaryCall[ReqT, RespT] = make(
            _sync_or_async(requests), timeout=timeout, metadata=pairs
        )
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise await _explained(explain, error) from None
        except asyncio.CancelledError:
            if (cut := _cut_by_close(closed)) is not None:
                raise cut from None
            raise

    def bidi_stream(
        self,
        method: Method[ReqT, RespT],
        requests: AsyncIterable[ReqT] | Iterable[ReqT] | None = None,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        metadata: Metadata | None = None,
    ) -> BidiStream[ReqT, RespT]:
        """Streams both ways. Without ``requests``, send with :meth:`BidiStream.send`."""
        timeout, pairs = self.options.merge(timeout, metadata, deadline)
        source = None if requests is None else _sync_or_async(requests)
        make, explain, closed = self._route(method)
        call: grpc.aio.StreamStreamCall[ReqT, RespT] = make(source, timeout=timeout, metadata=pairs)
        return BidiStream(call, explain, closed, interactive=requests is None)


def _tracked(make: Any, track: Callable[[Any], object], *args: Any, **kwargs: Any) -> Any:
    call = make(*args, **kwargs)
    track(call)
    return call


def _multicallable(channel: grpc.aio.Channel, method: Method[Any, Any]) -> Any:
    make = {
        RpcKind.UNARY: channel.unary_unary,
        RpcKind.SERVER_STREAM: channel.unary_stream,
        RpcKind.CLIENT_STREAM: channel.stream_unary,
        RpcKind.BIDI_STREAM: channel.stream_stream,
    }[method.kind]
    return make(
        method.path,
        request_serializer=method.request_type.SerializeToString,
        response_deserializer=method.response_type.FromString,
    )


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
        return f"{type(self).__name__}({self._caller._describe()!r})"


class _Stream(Generic[RespT]):
    """What both stream types share: reading, cancelling, metadata, ``async with``."""

    __slots__ = ("_call", "_cancelled", "_closed", "_explain")

    _call: grpc.aio.UnaryStreamCall[Any, RespT] | grpc.aio.StreamStreamCall[Any, RespT]

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall[Any, RespT] | grpc.aio.StreamStreamCall[Any, RespT],
        explain: Explainer | None = None,
        closed: ClosedHook | None = None,
    ) -> None:
        self._call = call
        self._cancelled = False
        self._explain = explain
        self._closed = closed

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
            if (cut := _cut_by_close(self._closed)) is not None:
                raise cut from None
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
        self,
        call: grpc.aio.UnaryStreamCall[Any, RespT],
        explain: Explainer | None = None,
        closed: ClosedHook | None = None,
    ) -> None:
        super().__init__(call, explain, closed)


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
        closed: ClosedHook | None = None,
        *,
        interactive: bool,
    ) -> None:
        super().__init__(call, explain, closed)
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
        except asyncio.CancelledError:
            if (cut := _cut_by_close(self._closed)) is not None:
                raise cut from None
            raise

    async def done_writing(self) -> None:
        """Tell the server no more requests are coming (half-close)."""
        if self._interactive:
            await self._writer.done_writing()
