"""Call metrics on both sides, through one small interface with a no-op default.

:class:`Metrics` is the interface and does nothing; hand an implementation to
``rpcplugin.serve(..., metrics=...)`` (plugin side) or ``rpcplugin.connect(..., metrics=...)`` /
``launch(..., metrics=...)`` (host side) and every call is recorded through ``grpc.aio``
interceptors: its service and method, status code, duration, and bytes received and sent. With
the no-op default no interceptor is installed at all, so it costs nothing.

Two implementations come with the runtime:

- :class:`InMemoryMetrics` keeps counts, errors by status code, latency histograms and byte
  totals in memory (``snapshot()``), for tests, debugging, or your own exporter;
- ``rpcplugin.ops.metrics_otel.OpenTelemetryMetrics`` records OpenTelemetry metrics and spans (with
  W3C trace context passed from host to plugin in the call metadata). It needs the ``otel``
  extra (``pip install 'rpcplugin[otel]'``); :func:`auto` picks it when ``opentelemetry``
  is importable, and this module never imports it.

Plugin start-up time and restarts are metrics too: the host reports how long each launch took
from exec to a healthy plugin (:meth:`Metrics.plugin_started`), and an implementation counts a
second start of the same plugin name as a restart. (The runtime restarts plugins only in a pool,
``rpcplugin.launch_pool``, whose members are named ``name#index``.)

Byte counts are exact on the server side (the serialized messages). On the client side they are
the protobuf sizes of unary requests and responses and of request iterables; messages of a
streamed response, or sent with ``write()``, are not counted there.
"""

from __future__ import annotations

import asyncio
import bisect
import importlib.util
import logging
import threading
import time
from collections import Counter
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    MutableMapping,
)
from dataclasses import dataclass, field
from typing import Any

import grpc

from ..errors import ConfigError
from .interception import (
    behaviour_of,
    client_interceptors_for,
    rebuild,
    split_method,
    wrap_behaviour,
)
from .metrics_api import NO_METRICS as NO_METRICS
from .metrics_api import CallRecord as CallRecord
from .metrics_api import Metrics as Metrics
from .metrics_api import Side as Side

log = logging.getLogger("rpcplugin.metrics")

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
)  # fmt: skip
"""Upper bounds (ms) of :class:`InMemoryMetrics`' latency histogram; the last bucket is +inf."""


@dataclass(slots=True)
class Histogram:
    """Counts per bucket of :data:`LATENCY_BUCKETS_MS` (plus +inf), with count and sum."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS_MS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    count: int = 0
    total: float = 0.0

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value


class InMemoryMetrics(Metrics):
    """Metrics kept in this process's memory; thread-safe. Keys are ``(side, "pkg.S/Method")``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[tuple[Side, str]] = Counter()
        self.calls_by_plugin: Counter[tuple[Side, str]] = Counter()
        """Calls by ``(side, plugin)``: per member of a pool (``name#index``), for one."""
        self.errors: Counter[tuple[Side, str, str]] = Counter()
        """Calls that did not end OK, by ``(side, method, status code name)``."""
        self.latency_ms: dict[tuple[Side, str], Histogram] = {}
        self.bytes_in: Counter[tuple[Side, str]] = Counter()
        self.bytes_out: Counter[tuple[Side, str]] = Counter()
        self.starts: Counter[tuple[Side, str]] = Counter()
        self.restarts: Counter[tuple[Side, str]] = Counter()
        self.startup_seconds: dict[tuple[Side, str], list[float]] = {}

    def call_finished(self, call: CallRecord, state: object) -> None:
        key = (call.side, call.full_method)
        with self._lock:
            self.calls[key] += 1
            self.calls_by_plugin[(call.side, call.plugin)] += 1
            if call.code != grpc.StatusCode.OK:
                self.errors[(call.side, call.full_method, call.code.name)] += 1
            self.latency_ms.setdefault(key, Histogram()).observe(call.seconds * 1000)
            self.bytes_in[key] += call.bytes_in
            self.bytes_out[key] += call.bytes_out

    def plugin_started(self, plugin: str, seconds: float, *, side: Side) -> None:
        key = (side, plugin)
        with self._lock:
            if self.starts[key]:
                self.restarts[key] += 1
            self.starts[key] += 1
            self.startup_seconds.setdefault(key, []).append(seconds)

    def snapshot(self) -> dict[str, Any]:
        """Everything recorded so far, as plain data (e.g. for JSON)."""
        with self._lock:
            return {
                "calls": {f"{s} {m}": n for (s, m), n in self.calls.items()},
                "calls_by_plugin": {f"{s} {p}": n for (s, p), n in self.calls_by_plugin.items()},
                "errors": {f"{s} {m} {c}": n for (s, m, c), n in self.errors.items()},
                "latency_ms": {
                    f"{s} {m}": {"count": h.count, "sum": h.total, "buckets": list(h.counts)}
                    for (s, m), h in self.latency_ms.items()
                },
                "bytes_in": {f"{s} {m}": n for (s, m), n in self.bytes_in.items()},
                "bytes_out": {f"{s} {m}": n for (s, m), n in self.bytes_out.items()},
                "starts": {f"{s} {p}": n for (s, p), n in self.starts.items()},
                "restarts": {f"{s} {p}": n for (s, p), n in self.restarts.items()},
            }


def otel_available() -> bool:
    """Whether the OpenTelemetry API can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("opentelemetry.metrics") is not None
    except (ImportError, ValueError):
        return False


def auto() -> Metrics:
    """OpenTelemetry metrics and spans when ``opentelemetry`` is importable, else the no-op."""
    if not otel_available():
        return NO_METRICS
    try:
        from .metrics_otel import OpenTelemetryMetrics
    except ImportError:
        return NO_METRICS
    return OpenTelemetryMetrics()


def from_setting(value: str) -> Metrics:
    """The metrics ``RPCPLUGIN_METRICS`` asks for: ``off``, ``auto`` or ``otel``."""
    if value == "off":
        return NO_METRICS
    if value == "auto":
        return auto()
    if value == "otel":
        if not otel_available():
            raise ConfigError(
                "RPCPLUGIN_METRICS",
                value,
                "opentelemetry is not installed (pip install 'rpcplugin[otel]'); "
                "use 'auto' or 'off'",
            )
        from .metrics_otel import OpenTelemetryMetrics

        return OpenTelemetryMetrics()
    raise ConfigError("RPCPLUGIN_METRICS", value, "one of off, auto, otel")


def report_plugin_started(metrics: Metrics, plugin: str, seconds: float, *, side: Side) -> None:
    """``metrics.plugin_started(...)``, with a failure of the implementation logged, not raised."""
    try:
        metrics.plugin_started(plugin, seconds, side=side)
    except Exception:
        log.exception("metrics implementation %r failed in plugin_started; ignored", metrics)


class _StartGuarded(Metrics):
    """``metrics`` whose :meth:`plugin_started` never raises (what ``serve()`` is given)."""

    def __init__(self, metrics: Metrics) -> None:
        self.inner = metrics
        self.enabled = metrics.enabled

    def call_started(self, call: CallRecord, headers: MutableMapping[str, str]) -> object:
        return self.inner.call_started(call, headers)

    def call_finished(self, call: CallRecord, state: object) -> None:
        self.inner.call_finished(call, state)

    def plugin_started(self, plugin: str, seconds: float, *, side: Side) -> None:
        report_plugin_started(self.inner, plugin, seconds, side=side)


def start_guarded(metrics: Metrics) -> Metrics:
    """``metrics`` with :meth:`Metrics.plugin_started` failures logged instead of raised."""
    return metrics if isinstance(metrics, _StartGuarded) else _StartGuarded(metrics)


# -- the interceptors ------------------------------------------------------------------------


class _Guard:
    """Calls into a Metrics implementation; its failures are logged once and never raised."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._warned = False

    def started(self, call: CallRecord, headers: MutableMapping[str, str]) -> object:
        try:
            return self.metrics.call_started(call, headers)
        except Exception:
            self._warn()
            return None

    def finished(self, call: CallRecord, state: object) -> None:
        try:
            self.metrics.call_finished(call, state)
        except Exception:
            self._warn()

    def _warn(self) -> None:
        if not self._warned:
            self._warned = True
            log.exception("metrics implementation %r failed; its errors are ignored", self.metrics)


def _size(message: object) -> int:
    if isinstance(message, bytes | bytearray | memoryview):
        return len(message)
    byte_size = getattr(message, "ByteSize", None)
    if callable(byte_size):
        try:
            return int(byte_size())
        except Exception:
            return 0
    return 0


class MetricsServerInterceptor(grpc.aio.ServerInterceptor):
    """Records every call a ``grpc.aio`` server serves (including calls another interceptor
    refuses, when this one is first in the list)."""

    def __init__(self, metrics: Metrics, *, plugin: str = "") -> None:
        self._guard = _Guard(metrics)
        self.plugin = plugin

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        if handler is None:
            return None
        started = time.perf_counter()
        service, method = split_method(handler_call_details.method)
        call = CallRecord("server", service, method, self.plugin)
        headers = {
            str(k): v
            for k, v in (handler_call_details.invocation_metadata or ())
            if isinstance(v, str)
        }
        guard = self._guard
        state: list[object] = [None]
        failure: list[BaseException | None] = [None]

        deserialize = handler.request_deserializer
        serialize = handler.response_serializer

        def counted_in(data: bytes) -> Any:
            call.bytes_in += len(data)
            return deserialize(data) if deserialize is not None else data

        def counted_out(message: Any) -> bytes:
            data: bytes = serialize(message) if serialize is not None else message
            call.bytes_out += len(data)
            return data

        def done(context: Any) -> None:
            call.seconds = time.perf_counter() - started
            call.code = _server_code(context, failure[0])
            guard.finished(call, state[0])

        def before(context: Any) -> None:
            state[0] = guard.started(call, headers)
            context.add_done_callback(done)

        def after(exc: BaseException | None) -> None:
            failure[0] = exc

        behaviour = wrap_behaviour(behaviour_of(handler), before=before, after=after)
        return rebuild(
            handler, behaviour, request_deserializer=counted_in, response_serializer=counted_out
        )


def _server_code(context: Any, failure: BaseException | None) -> grpc.StatusCode:
    try:
        if context.cancelled():
            return grpc.StatusCode.CANCELLED
        code = context.code()
    except Exception:
        code = None
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        for candidate in grpc.StatusCode:
            if candidate.value[0] == code:
                return candidate
    if failure is not None:
        if isinstance(failure, asyncio.CancelledError):
            return grpc.StatusCode.CANCELLED
        return grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


class MetricsClientInterceptor:
    """Records every call made on a ``grpc.aio`` channel; give the channel
    :meth:`interceptors`."""

    def __init__(self, metrics: Metrics, *, plugin: str = "") -> None:
        self._guard = _Guard(metrics)
        self.plugin = plugin
        self._pending: set[asyncio.Task[None]] = set()

    def interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """The ``grpc.aio`` client interceptors (one per call kind) that record calls."""
        return client_interceptors_for(self)

    def _begin(
        self, details: grpc.aio.ClientCallDetails
    ) -> tuple[CallRecord, object, grpc.aio.ClientCallDetails, float]:
        service, method = split_method(details.method)
        call = CallRecord("client", service, method, self.plugin)
        headers: dict[str, str] = {}
        state = self._guard.started(call, headers)
        if headers:
            metadata = grpc.aio.Metadata(*(details.metadata or ()))
            for key, value in headers.items():
                metadata.add(key, value)
            details = grpc.aio.ClientCallDetails(
                details.method, details.timeout, metadata, details.credentials,
                details.wait_for_ready,
            )  # fmt: skip
        return call, state, details, time.perf_counter()

    def _end(self, call: CallRecord, state: object, started: float, code: grpc.StatusCode) -> None:
        call.seconds = time.perf_counter() - started
        call.code = code
        self._guard.finished(call, state)

    async def _unary_response(
        self, rpc: Any, call: CallRecord, state: object, started: float
    ) -> Any:
        try:
            response = await rpc
        except asyncio.CancelledError:
            self._end(call, state, started, grpc.StatusCode.CANCELLED)
            raise
        except grpc.aio.AioRpcError as exc:
            self._end(call, state, started, exc.code())
        except Exception:
            self._end(call, state, started, grpc.StatusCode.UNKNOWN)
        else:
            call.bytes_in += _size(response)
            self._end(call, state, started, grpc.StatusCode.OK)
        return rpc

    def _on_done(self, rpc: Any, call: CallRecord, state: object, started: float) -> None:
        def finish(_: Any) -> None:
            task = asyncio.get_running_loop().create_task(
                self._finish_stream(rpc, call, state, started)
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        rpc.add_done_callback(finish)

    async def _finish_stream(
        self, rpc: Any, call: CallRecord, state: object, started: float
    ) -> None:
        try:
            code = await rpc.code()
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
        except Exception:
            code = grpc.StatusCode.UNKNOWN
        self._end(call, state, started, code)

    def _count_requests(
        self, requests: AsyncIterable[Any] | Iterable[Any] | None, call: CallRecord
    ) -> AsyncIterable[Any] | Iterable[Any] | None:
        if requests is None:
            return None
        if isinstance(requests, AsyncIterable):

            async def counted_async() -> AsyncIterator[Any]:
                async for message in requests:
                    call.bytes_out += _size(message)
                    yield message

            return counted_async()

        def counted() -> Iterator[Any]:
            for message in requests:
                call.bytes_out += _size(message)
                yield message

        return counted()

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        call, state, details, started = self._begin(client_call_details)
        call.bytes_out += _size(request)
        rpc = await continuation(details, request)
        return await self._unary_response(rpc, call, state, started)

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        call, state, details, started = self._begin(client_call_details)
        call.bytes_out += _size(request)
        rpc = await continuation(details, request)
        self._on_done(rpc, call, state, started)
        return rpc

    async def intercept_stream_unary(
        self,
        continuation: Any,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        call, state, details, started = self._begin(client_call_details)
        rpc = await continuation(details, self._count_requests(request_iterator, call))
        return await self._unary_response(rpc, call, state, started)

    async def intercept_stream_stream(
        self,
        continuation: Any,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        call, state, details, started = self._begin(client_call_details)
        rpc = await continuation(details, self._count_requests(request_iterator, call))
        self._on_done(rpc, call, state, started)
        return rpc
