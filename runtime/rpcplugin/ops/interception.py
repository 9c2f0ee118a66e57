"""Plumbing shared by the runtime's ``grpc.aio`` interceptors (rate limit, auth, metrics).

Three small things: which services are the runtime's own (the *control services* every
go-plugin host uses and that must keep working whatever the app's policy), how to split a gRPC
method path, and how to answer a call with an error — or wrap its behaviour — while keeping the
handler's kind (unary/streaming) and its (de)serializers.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

CONTROL_SERVICES: frozenset[str] = frozenset(
    {
        "grpc.health.v1.Health",
        "plugin.GRPCController",
        "plugin.GRPCStdio",
        "plugin.GRPCBroker",
    }
)
"""The services :func:`rpcplugin.serve` registers next to the app's: health, controller, stdio
and broker. Rate limiting never applies to them."""

HEALTH_SERVICE = "grpc.health.v1.Health"

Behaviour = Callable[..., Any]
"""A handler behaviour: ``(request or request iterator, context) -> response``, as a coroutine
function, an async generator function, or their synchronous forms."""


def split_method(method: str | bytes) -> tuple[str, str]:
    """``"/pkg.Service/Method"`` → ``("pkg.Service", "Method")``; junk gives ``("", path)``."""
    text = method.decode("utf-8", "replace") if isinstance(method, bytes) else method
    service, sep, name = text.lstrip("/").partition("/")
    if not sep:
        return "", text
    return service, name


def is_control_method(method: str | bytes) -> bool:
    """Whether ``method`` belongs to one of the :data:`CONTROL_SERVICES`."""
    return split_method(method)[0] in CONTROL_SERVICES


_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def behaviour_of(handler: grpc.RpcMethodHandler[Any, Any]) -> Behaviour:
    """The one behaviour a handler carries (whichever of its four slots is set)."""
    found = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    assert found is not None, "an RpcMethodHandler without a behaviour"
    return found


def rebuild(
    handler: grpc.RpcMethodHandler[Any, Any],
    behaviour: Behaviour,
    *,
    request_deserializer: Callable[[bytes], Any] | bool | None = True,
    response_serializer: Callable[[Any], bytes] | bool | None = True,
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as ``handler`` with another behaviour; its (de)serializers
    are kept unless replacements are given (``True`` means "keep")."""
    factory = _FACTORIES[(bool(handler.request_streaming), bool(handler.response_streaming))]
    deserializer = (
        handler.request_deserializer if request_deserializer is True else request_deserializer
    )
    serializer = handler.response_serializer if response_serializer is True else response_serializer
    return factory(
        behaviour,
        request_deserializer=deserializer or None,
        response_serializer=serializer or None,
    )


def denying(
    handler: grpc.RpcMethodHandler[Any, Any],
    code: grpc.StatusCode,
    details: str,
    trailing_metadata: tuple[tuple[str, str], ...] = (),
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as ``handler`` that fails every call with ``code`` and
    ``details`` before the servicer runs (request messages are never read)."""

    async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, details, trailing_metadata)

    return rebuild(handler, deny, request_deserializer=None)


def wrap_behaviour(
    behaviour: Behaviour,
    *,
    before: Callable[[Any], None] | None = None,
    after: Callable[[BaseException | None], None],
) -> Behaviour:
    """``behaviour`` in the same shape (coroutine, async generator, or synchronous), calling
    ``before(context)`` first and ``after(exception or None)`` when it ends, however it ends."""
    if inspect.isasyncgenfunction(behaviour):

        async def agen(request: Any, context: Any) -> AsyncIterator[Any]:
            if before is not None:
                before(context)
            failure: BaseException | None = None
            try:
                async for item in behaviour(request, context):
                    yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                after(failure)

        return agen

    if inspect.iscoroutinefunction(behaviour):

        async def coro(request: Any, context: Any) -> Any:
            if before is not None:
                before(context)
            failure: BaseException | None = None
            try:
                return await behaviour(request, context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                after(failure)

        return coro

    if inspect.isgeneratorfunction(behaviour):

        def gen(request: Any, context: Any) -> Iterator[Any]:
            if before is not None:
                before(context)
            failure: BaseException | None = None
            try:
                yield from behaviour(request, context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                after(failure)

        return gen

    def call(request: Any, context: Any) -> Any:
        if before is not None:
            before(context)
        try:
            result = behaviour(request, context)
        except BaseException as exc:
            after(exc)
            raise
        after(None)
        return result

    return call


def metadata_value(metadata: Any, key: str) -> str | None:
    """The first value of ``key`` (lower case) in call metadata, as text; None when absent."""
    if not metadata:
        return None
    for item in metadata:
        name, value = item[0], item[1]
        if name == key:
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


class ThrottledWarning:
    """A warning logged at once, then at most every ``every`` seconds with a count of the
    events in between: a flood of refused calls must not flood the logs too."""

    def __init__(self, logger: logging.Logger, every: float = 10.0) -> None:
        self._logger = logger
        self._every = every
        self._last = -math.inf
        self._unlogged = 0

    def note(self, message: str, *args: object) -> None:
        """Count one event; log ``message % args`` plus the count if it is time to."""
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._logger.warning(
            message + " (%d such call(s) since the last report)", *args, self._unlogged
        )
        self._last = now
        self._unlogged = 0


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, impl: Any) -> None:
        self.impl = impl

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self.impl.intercept_unary_unary(continuation, details, request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, impl: Any) -> None:
        self.impl = impl

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self.impl.intercept_unary_stream(continuation, details, request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, impl: Any) -> None:
        self.impl = impl

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self.impl.intercept_stream_unary(continuation, details, requests)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, impl: Any) -> None:
        self.impl = impl

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self.impl.intercept_stream_stream(continuation, details, requests)


def client_interceptors_for(impl: Any) -> list[grpc.aio.ClientInterceptor]:
    """Four ``grpc.aio`` client interceptors, one per call kind, all delegating to ``impl``
    (which has the four ``intercept_*`` methods). grpc.aio files an interceptor under the first
    kind it subclasses only, so one object cannot serve all four."""
    return [_UnaryUnary(impl), _UnaryStream(impl), _StreamUnary(impl), _StreamStream(impl)]
