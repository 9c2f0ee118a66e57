"""The server side of generated code: servicer objects become gRPC handlers.

A servicer is any object with one method per RPC, in the shape of the generated ``typing.Protocol``.
Each method may be ``async def`` (run on the event loop) or a plain ``def`` (run on a worker
thread of a bounded pool, ``RPCPLUGIN_HANDLER_THREADS``):

- unary: ``async def get(self, request, /) -> Reply`` or ``def get(...)``
- server stream: an async generator ``async def list(self, request, /)`` with ``yield``, or a
  plain generator ``def list(...)`` with ``yield`` (pulled on a worker thread)
- client stream: ``async def upload(self, requests, /) -> Reply`` (``async for`` over
  ``requests``) or ``def upload(...)`` (plain ``for``, blocking the worker until each request)
- bidi: ``async def chat(self, requests, /)`` or ``def chat(...)``, with ``yield``

The requests of a stream are a :class:`RequestStream`, both an async and a plain iterator.
A plain ``def`` streaming method that is not a generator is called on the loop and must return
an iterator or async iterator at once; the generated base class's ``UNIMPLEMENTED`` stubs are
recognised (:func:`is_unimplemented_stub`) and answered on the loop too. See docs/serving.md.

There is no ``context`` parameter: :func:`current_call` returns the ``grpc.aio.ServicerContext``
of the call being handled (metadata, peer, deadline), in ``async def`` and ``def`` methods alike.

Errors a handler raises become gRPC statuses (docs/errors.md): :class:`rpcplugin.Abort` ends the
call with its code, message and typed details; ``context.abort()`` passes through;
:class:`Unimplemented` becomes ``UNIMPLEMENTED``; anything else is logged with its traceback and
becomes ``UNKNOWN`` with the exception's message, cut to a bounded size.

:class:`Service` turns a servicer into a ``grpc.GenericRpcHandler`` (what ``rpcplugin.serve``
takes per version); :class:`PluginBinding` adds what a plugin process and its host must agree on:
the magic cookie and the app protocol version.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Generic, NoReturn, Protocol, TypeVar, cast, final

import grpc
import grpc.aio

from .calls import ChannelLike, Method, RpcKind
from .handshake import Handshake

if TYPE_CHECKING:
    from .peer import Peer
    from .services.broker import Callback
    from .status import Abort
    from .workers import Requests

__all__ = [
    "Abort",
    "Callback",
    "PluginBinding",
    "RequestStream",
    "Service",
    "Unimplemented",
    "current_call",
    "current_peer",
    "not_implemented",
]

_log = logging.getLogger("rpcplugin.servicer")


def __getattr__(name: str) -> Any:
    # Callback (the binding of a host-provided service) lives with the broker; it is imported
    # only by generated modules that have such a service, so plugins without one never load it.
    # Abort lives in rpcplugin.status, loaded when a handler fails or names it.
    if name == "Callback":
        from .services.broker import Callback

        return Callback
    if name == "Abort":
        from .status import Abort

        return Abort
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ImplT = TypeVar("ImplT")
T_co = TypeVar("T_co", covariant=True)
ClientT = TypeVar("ClientT")

ServicerContext = grpc.aio.ServicerContext[Any, Any]

_current: contextvars.ContextVar[ServicerContext] = contextvars.ContextVar("rpcplugin_current_call")


class RequestStream(Protocol[T_co]):
    """The requests of a client-streaming or bidi RPC, as a handler receives them.

    Both an async iterator (``async for`` in an ``async def`` handler) and a plain iterator
    (``for`` in a ``def`` handler, which runs on a worker thread and blocks there until the next
    request arrives). A handler may annotate its parameter as either ``AsyncIterator[Req]`` or
    ``Iterator[Req]``: both are supertypes of ``RequestStream[Req]``.
    """

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    def __anext__(self) -> Awaitable[T_co]: ...

    def __iter__(self) -> Iterator[T_co]: ...

    def __next__(self) -> T_co: ...


class Unimplemented(Exception):
    """Raise to answer ``UNIMPLEMENTED``; generated servicer bases raise it for every RPC."""

    def __init__(self, method: str = "") -> None:
        super().__init__(f"method {method} is not implemented" if method else "not implemented")
        self.method = method


_ClassT = TypeVar("_ClassT", bound=type)


def not_implemented(*rpcs: str) -> Callable[[_ClassT], _ClassT]:
    """Class decorator: these RPCs are left to the base's ``UNIMPLEMENTED`` on purpose.

    ``rpcplugin-gen --check`` then does not report them as missing, and ``--add-stubs`` adds no
    stub for them. Each must be an RPC method of the class that the class does not define itself
    (``TypeError`` otherwise, when the class is created)::

        @not_implemented("delete", "watch")
        class Store(kv_rpc.KVServicer): ...
    """

    def mark(cls: _ClassT) -> _ClassT:
        for name in rpcs:
            if not callable(getattr(cls, name, None)):
                raise TypeError(f"@not_implemented: {cls.__name__} has no RPC method {name}()")
            if name in vars(cls):
                raise TypeError(
                    f"@not_implemented: {cls.__name__} defines {name}() itself; "
                    f"remove the method or its name from the decorator"
                )
        return cls

    return mark


def current_call() -> ServicerContext:
    """The ``grpc.aio.ServicerContext`` of the RPC being handled by the calling task.

    Raises ``LookupError`` outside a handler.
    """
    try:
        return _current.get()
    except LookupError:
        raise LookupError("current_call() is only available while handling an RPC") from None


def current_peer() -> Peer:
    """Who made the RPC being handled: its address, the transport's security and the
    certificate it presented and the TLS handshake verified, whether grpcio's TLS or the OpenSSL
    relay carried the call (docs/security.md). Raises ``LookupError`` outside a handler."""
    from .peer import peer_of

    return peer_of(current_call())


async def _fail(context: ServicerContext, method: Method[Any, Any], exc: Exception) -> NoReturn:
    """Turn an exception out of a handler into a status (always raises)."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    from .status import Abort, abort_trailer, bounded_message

    if isinstance(exc, Abort):
        message, trailer = abort_trailer(exc, method.path)
        _log.debug("%s aborted: %s %s", method.path, exc.code.name, message)
        if trailer:
            trailer = tuple(context.trailing_metadata() or ()) + trailer
        await context.abort(exc.code, message, trailer)
    if isinstance(exc, Unimplemented):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
    _log.error("%s failed", method.path, exc_info=exc)
    text = str(exc) or type(exc).__name__
    await context.abort(grpc.StatusCode.UNKNOWN, bounded_message(text))


def _check(method: Method[Any, Any], attr: str, reply: object) -> object:
    if not isinstance(reply, method.response_type):
        raise TypeError(
            f"{attr}() returned {type(reply).__name__}, "
            f"expected {method.response_type.DESCRIPTOR.full_name}"
        )
    return reply


class Flavour(enum.Enum):
    """How a servicer method runs, decided once per method when the handler is made."""

    ASYNC = "async def"
    ASYNC_GENERATOR = "async generator"
    SYNC = "def"
    SYNC_GENERATOR = "generator"


def flavour_of(fn: Callable[..., Any]) -> Flavour:
    """Whether ``fn`` (a function, bound method, ``functools.partial`` or callable object) is an
    ``async def``, an async generator, a plain generator or a plain ``def``."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if not inspect.isroutine(target) and callable(target):
        target = type(target).__call__  # a callable object: its __call__ says
    if inspect.isasyncgenfunction(target):
        return Flavour.ASYNC_GENERATOR
    if inspect.iscoroutinefunction(target):
        return Flavour.ASYNC
    if inspect.isgeneratorfunction(target):
        return Flavour.SYNC_GENERATOR
    return Flavour.SYNC


_RUNNING: Final[dict[asyncio.Task[Any], str]] = {}
"""The method each task serving an RPC is running, for the stall detector (while it runs)."""
_workers: ModuleType | None = None
_threads: int | None = None
_stall: float | None = None
_watched: asyncio.AbstractEventLoop | None = None


def configure(*, handler_threads: int | None = None, stall_warning: float | None = None) -> None:
    """Apply the serving settings (``RPCPLUGIN_HANDLER_THREADS``, ``RPCPLUGIN_STALL_WARNING``);
    ``rpcplugin.serve`` calls it. What is not configured is read from the environment when first
    needed. The pool's size counts only before the first plain ``def`` call makes the pool; a
    new stall threshold counts for event loops that start serving later."""
    global _threads, _stall
    if handler_threads is not None:
        _threads = handler_threads
        if _workers is not None:
            _workers.configure(handler_threads)
    if stall_warning is not None:
        _stall = stall_warning


def _sync_runtime() -> ModuleType:
    """The worker-thread machinery, imported the first time a servicer has a plain method."""
    global _workers
    if _workers is None:
        from . import workers

        if _threads is not None:
            workers.configure(_threads)
        _workers = workers
    return _workers


def watch_stalls() -> None:
    """Start the stall detector (``RPCPLUGIN_STALL_WARNING``) on the running loop now, rather
    than on the first call a servicer handles; nothing when it is off or watching already.
    A plugin server calls it once its handshake line is out, while the host is connecting."""
    _watch(asyncio.get_running_loop())


def _watch(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the stall detector watches ``loop``, starting it if it should."""
    global _stall, _watched
    if loop is _watched:
        return True
    if _stall is None:
        import os

        from .config import stall_warning

        _stall = stall_warning(os.environ)
    if _stall == 0:
        return False
    from .stall import StallWatch

    _watched = loop
    StallWatch(loop, _stall, _RUNNING).start()
    return True


def _mark(path: str) -> asyncio.Task[Any] | None:
    """Note the task serving ``path`` for the stall detector (started here if not yet)."""
    if _stall == 0:
        return None
    loop = asyncio.get_running_loop()
    if loop is not _watched and not _watch(loop):
        return None
    task = asyncio.current_task()
    if task is not None:
        _RUNNING[task] = path
    return task


def _unmark(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        _RUNNING.pop(task, None)


if TYPE_CHECKING:

    def _a_request_stream(requests: Requests[int]) -> RequestStream[int]:
        return requests  # mypy checks that what handlers receive satisfies the contract


def _requests(request: Any, kind: RpcKind) -> Any:
    if kind in (RpcKind.CLIENT_STREAM, RpcKind.BIDI_STREAM):
        return _sync_runtime().Requests(request, asyncio.get_running_loop())
    return request


def is_unimplemented_stub(fn: Callable[..., Any], path: str) -> bool:
    """Whether ``fn`` is a generated base class's method for ``path`` that was not overridden:
    a plain ``def`` whose body only raises ``_servicer.Unimplemented(path)``. Such a method is
    called on the event loop (it cannot block), so a servicer that leaves RPCs unimplemented
    does not need the worker pool for them."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return (
        code is not None
        and set(code.co_names) <= {"_servicer", "Unimplemented"}
        and path in code.co_consts
    )


def _unary(method: Method[Any, Any], attr: str, fn: Callable[[Any], Any]) -> Any:
    flavour = flavour_of(fn)
    inline = flavour is Flavour.SYNC and is_unimplemented_stub(fn, method.path)
    run = None if flavour is Flavour.ASYNC or inline else _sync_runtime().run

    async def handle(request: Any, context: ServicerContext) -> Any:
        token = _current.set(context)
        task = _mark(method.path)
        arg = _requests(request, method.kind)
        try:
            if inline:
                reply = fn(arg)  # raises Unimplemented
            elif run is None:
                reply = await fn(arg)
            else:
                reply = await run(fn, arg)
                if inspect.isawaitable(reply):  # a plain callable that returned a coroutine
                    reply = await reply
            return _check(method, attr, reply)
        except Exception as exc:
            await _fail(context, method, exc)
        finally:
            if arg is not request:
                arg.close()
            _unmark(task)
            _current.reset(token)

    return handle


async def _replies(fn: Callable[[Any], Any], arg: Any, flavour: Flavour) -> AsyncIterator[Any]:
    """The replies of a streaming method, however it produces them."""
    if flavour is Flavour.SYNC_GENERATOR:
        replies: Any = _sync_runtime().pull(fn(arg))
    else:
        replies = fn(arg)
        if inspect.isawaitable(replies):
            replies = await replies
    if not hasattr(replies, "__aiter__"):
        if not hasattr(replies, "__iter__"):
            raise TypeError(f"a streaming method returned {type(replies).__name__}, not replies")
        replies = _sync_runtime().pull(iter(replies))
    async for reply in replies:
        yield reply


def _streaming(method: Method[Any, Any], attr: str, fn: Callable[[Any], Any]) -> Any:
    flavour = flavour_of(fn)
    if flavour is Flavour.SYNC_GENERATOR:
        _sync_runtime()

    async def handle(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        token = _current.set(context)
        task = _mark(method.path)
        arg = _requests(request, method.kind)
        try:
            replies = fn(arg) if flavour is Flavour.ASYNC_GENERATOR else _replies(fn, arg, flavour)
            context.add_done_callback(cast(Any, lambda _: _close_soon(replies)))  # stubs: a class
            async for reply in replies:
                yield _check(method, attr, reply)
        except Exception as exc:
            await _fail(context, method, exc)
        finally:
            if arg is not request:
                arg.close()
            _unmark(task)
            # a stream cancelled while its handler waits at ``yield`` is finalized later, in
            # another context, where the token cannot be reset
            with contextlib.suppress(ValueError):
                _current.reset(token)

    return handle


_closing: set[asyncio.Task[None]] = set()


def _close_soon(replies: Any) -> None:
    """When a streaming call ends: close a handler's generator still suspended at ``yield``
    (a cancelled stream), so that its ``finally`` runs now rather than at garbage collection."""
    aclose = getattr(replies, "aclose", None)
    if aclose is None or getattr(replies, "ag_running", True) or replies.ag_frame is None:
        return  # exhausted, or running (then the cancellation reaches it itself)
    task = asyncio.get_running_loop().create_task(_quietly(aclose()))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _quietly(closing: Awaitable[object]) -> None:
    with contextlib.suppress(Exception):
        await closing


_HANDLER_FACTORIES: Final = {
    RpcKind.UNARY: (_unary, grpc.unary_unary_rpc_method_handler),
    RpcKind.SERVER_STREAM: (_streaming, grpc.unary_stream_rpc_method_handler),
    RpcKind.CLIENT_STREAM: (_unary, grpc.stream_unary_rpc_method_handler),
    RpcKind.BIDI_STREAM: (_streaming, grpc.stream_stream_rpc_method_handler),
}


@final
class Service(Generic[ImplT]):
    """A gRPC service: its full name and its methods, keyed by the servicer attribute name."""

    __slots__ = ("methods", "name")

    def __init__(self, name: str, methods: Mapping[str, Method[Any, Any]]) -> None:
        self.name: Final = name
        self.methods: Final = dict(methods)
        for attr, method in self.methods.items():
            if method.path != f"/{name}/{method.name}":
                raise ValueError(f"{attr}: {method.path} is not a method of {name}")

    def handler(self, impl: ImplT) -> grpc.GenericRpcHandler:
        """The gRPC handler serving ``impl``'s methods; pass it to ``rpcplugin.serve``."""
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for attr, method in self.methods.items():
            wrap, make = _HANDLER_FACTORIES[method.kind]
            handlers[method.name] = make(
                wrap(method, attr, getattr(impl, attr)),
                request_deserializer=method.request_type.FromString,
                response_serializer=method.response_type.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(self.name, handlers)

    def __repr__(self) -> str:
        return f"Service({self.name!r})"


@final
class PluginBinding(Generic[ImplT, ClientT]):
    """One service as a go-plugin plugin: the service, its handshake and app protocol version.

    Generated as ``XPlugin`` next to the ``X`` protocol, ``XServicer`` base and ``XClient``.
    The plugin side calls :meth:`handler`; the host side launches with :attr:`handshake` and
    :attr:`version` and wraps the connection with :meth:`client`.
    """

    __slots__ = ("_client", "app_versions", "handshake", "service", "version")

    def __init__(
        self,
        service: Service[ImplT],
        *,
        cookie_key: str,
        cookie_value: str,
        version: int,
        client: Callable[[ChannelLike], ClientT],
        app_versions: tuple[int, ...] = (),
    ) -> None:
        self.service: Final = service
        self.handshake: Final = Handshake(cookie_key=cookie_key, cookie_value=cookie_value)
        self.version: Final = version
        self.app_versions: Final = tuple(sorted({version, *app_versions}))
        """Every app protocol version this service is served under (``version`` is the
        highest a host launches with); one unless generated with ``--versions``."""
        self._client = client

    def handler(self, impl: ImplT) -> grpc.GenericRpcHandler:
        """The gRPC handler serving ``impl``."""
        return self.service.handler(impl)

    def versions(self, impl: ImplT) -> dict[int, list[grpc.GenericRpcHandler]]:
        """``{version: [handler]}`` for each of :attr:`app_versions`: the ``versions=``
        argument of ``rpcplugin.serve``."""
        handler = self.handler(impl)
        return {version: [handler] for version in self.app_versions}

    def client(self, channel: ChannelLike) -> ClientT:
        """The typed client on a channel or a launched plugin connection."""
        return self._client(channel)

    def __repr__(self) -> str:
        return f"PluginBinding({self.service.name!r}, version={self.version})"
