"""The server side of generated code: servicer objects become gRPC handlers.

A servicer is any object with one method per RPC, in the shape of the generated ``typing.Protocol``:

- unary: ``async def get(self, request, /) -> Reply``
- server stream: ``def list(self, request, /) -> AsyncIterator[Reply]`` (an async generator)
- client stream: ``async def upload(self, requests: AsyncIterator[Req], /) -> Reply``
- bidi: ``def chat(self, requests: AsyncIterator[Req], /) -> AsyncIterator[Reply]``

There is no ``context`` parameter: :func:`current_call` returns the ``grpc.aio.ServicerContext``
of the call being handled (metadata, peer, deadline, ``abort``).

Errors a handler raises become gRPC statuses: ``context.abort()`` passes through;
:class:`Unimplemented` becomes ``UNIMPLEMENTED``; anything else is logged and becomes ``UNKNOWN``
with the exception's message.

:class:`Service` turns a servicer into a ``grpc.GenericRpcHandler`` (what ``rpcplugin.serve``
takes per version); :class:`PluginBinding` adds what a plugin process and its host must agree on:
the magic cookie and the app protocol version.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, NoReturn, Protocol, TypeVar, final

import grpc
import grpc.aio

from .calls import ChannelLike, Method, RpcKind
from .handshake import Handshake

if TYPE_CHECKING:
    from .peer import Peer
    from .services.broker import Callback

__all__ = [
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
    # only by generated modules that have such a service, so plugins without one never load it
    if name == "Callback":
        from .services.broker import Callback

        return Callback
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
    if isinstance(exc, Unimplemented):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
    _log.error("%s failed", method.path, exc_info=exc)
    await context.abort(grpc.StatusCode.UNKNOWN, str(exc) or type(exc).__name__)


def _check(method: Method[Any, Any], attr: str, reply: object) -> object:
    if not isinstance(reply, method.response_type):
        raise TypeError(
            f"{attr}() returned {type(reply).__name__}, "
            f"expected {method.response_type.DESCRIPTOR.full_name}"
        )
    return reply


def _unary(method: Method[Any, Any], attr: str, fn: Callable[[Any], Any]) -> Any:
    async def handle(request: Any, context: ServicerContext) -> Any:
        token = _current.set(context)
        try:
            return _check(method, attr, await fn(request))
        except Exception as exc:
            await _fail(context, method, exc)
        finally:
            _current.reset(token)

    return handle


def _streaming(method: Method[Any, Any], attr: str, fn: Callable[[Any], Any]) -> Any:
    async def handle(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        token = _current.set(context)
        try:
            async for reply in fn(request):
                yield _check(method, attr, reply)
        except Exception as exc:
            await _fail(context, method, exc)
        finally:
            _current.reset(token)

    return handle


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

    __slots__ = ("_client", "handshake", "service", "version")

    def __init__(
        self,
        service: Service[ImplT],
        *,
        cookie_key: str,
        cookie_value: str,
        version: int,
        client: Callable[[ChannelLike], ClientT],
    ) -> None:
        self.service: Final = service
        self.handshake: Final = Handshake(cookie_key=cookie_key, cookie_value=cookie_value)
        self.version: Final = version
        self._client = client

    def handler(self, impl: ImplT) -> grpc.GenericRpcHandler:
        """The gRPC handler serving ``impl``."""
        return self.service.handler(impl)

    def versions(self, impl: ImplT) -> dict[int, list[grpc.GenericRpcHandler]]:
        """``{version: [handler]}``: the ``versions=`` argument of ``rpcplugin.serve``."""
        return {self.version: [self.handler(impl)]}

    def client(self, channel: ChannelLike) -> ClientT:
        """The typed client on a channel or a launched plugin connection."""
        return self._client(channel)

    def __repr__(self) -> str:
        return f"PluginBinding({self.service.name!r}, version={self.version})"
