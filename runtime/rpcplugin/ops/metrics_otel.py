"""OpenTelemetry metrics and spans for :mod:`rpcplugin.ops.metrics` (the ``otel`` extra).

Importing this module imports ``opentelemetry``; nothing else in the runtime does. With only
the API installed everything is a no-op until the application configures an SDK (a
``MeterProvider``/``TracerProvider``), the usual OpenTelemetry arrangement.

Instruments (meter and tracer ``rpcplugin``), with the attributes ``rpc.system=grpc``,
``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code`` and ``rpcplugin.plugin``:

=================================  =========  ==================================================
``rpc.{client,server}.calls``      counter    calls, by status code
``rpc.{client,server}.errors``     counter    calls that did not end OK
``rpc.{client,server}.duration``   histogram  milliseconds per call
``rpc.{client,server}.request.size``   histogram  bytes sent (client) / received (server) per call
``rpc.{client,server}.response.size``  histogram  bytes received (client) / sent (server) per call
``rpcplugin.plugin.startup``       histogram  seconds to start a plugin (``rpcplugin.side``)
``rpcplugin.plugin.starts``        counter    plugin starts
``rpcplugin.plugin.restarts``      counter    starts of a plugin name already started before
=================================  =========  ==================================================

Each call is a span named ``pkg.Service/Method`` (kind CLIENT or SERVER). The host injects the
W3C trace context into the call metadata and the plugin continues the trace, so a plugin's
spans are children of the host's; on the server the call's span is the current span while a
unary servicer runs.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import MutableMapping
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .metrics_api import CallRecord, Metrics, Side

INSTRUMENTATION = "rpcplugin"


class OpenTelemetryMetrics(Metrics):
    """:class:`~rpcplugin.ops.metrics.Metrics` as OpenTelemetry metrics and spans.

    ``meter_provider`` / ``tracer_provider`` default to the global ones. ``tracing=False``
    records metrics only.
    """

    def __init__(
        self,
        *,
        meter_provider: otel_metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        tracing: bool = True,
    ) -> None:
        meter = otel_metrics.get_meter(INSTRUMENTATION, meter_provider=meter_provider)
        self._tracer = (
            trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider) if tracing else None
        )
        self._calls = {s: meter.create_counter(f"rpc.{s}.calls", "{call}", "RPCs") for s in _SIDES}
        self._errors = {
            s: meter.create_counter(f"rpc.{s}.errors", "{call}", "RPCs that did not end OK")
            for s in _SIDES
        }
        self._duration = {
            s: meter.create_histogram(f"rpc.{s}.duration", "ms", "Duration of RPCs") for s in _SIDES
        }
        self._request_size = {
            s: meter.create_histogram(f"rpc.{s}.request.size", "By", "Request bytes per RPC")
            for s in _SIDES
        }
        self._response_size = {
            s: meter.create_histogram(f"rpc.{s}.response.size", "By", "Response bytes per RPC")
            for s in _SIDES
        }
        self._startup = meter.create_histogram(
            "rpcplugin.plugin.startup", "s", "Time to start a plugin"
        )
        self._starts = meter.create_counter("rpcplugin.plugin.starts", "{start}", "Plugin starts")
        self._restarts = meter.create_counter(
            "rpcplugin.plugin.restarts", "{start}", "Starts of a plugin that had started before"
        )
        self._seen: Counter[tuple[Side, str]] = Counter()
        self._lock = threading.Lock()

    def call_started(self, call: CallRecord, headers: MutableMapping[str, str]) -> object:
        if self._tracer is None:
            return None
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": call.service,
            "rpc.method": call.method,
            "rpcplugin.plugin": call.plugin,
        }
        if call.side == "client":
            span = self._tracer.start_span(
                call.full_method, kind=SpanKind.CLIENT, attributes=attributes
            )
            propagate.inject(headers, context=trace.set_span_in_context(span))
            return span
        parent = propagate.extract(headers)
        span = self._tracer.start_span(
            call.full_method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        # grpc.aio runs each call's interceptors and handler in a fresh contextvars.Context,
        # so making the span current here lasts exactly as long as this call.
        otel_context.attach(trace.set_span_in_context(span, parent))
        return span

    def call_finished(self, call: CallRecord, state: object) -> None:
        code = call.code.value[0]
        attributes: dict[str, Any] = {
            "rpc.system": "grpc",
            "rpc.service": call.service,
            "rpc.method": call.method,
            "rpc.grpc.status_code": code,
            "rpcplugin.plugin": call.plugin,
        }
        side = call.side
        self._calls[side].add(1, attributes)
        if call.code != grpc.StatusCode.OK:
            self._errors[side].add(1, attributes)
        self._duration[side].record(call.seconds * 1000, attributes)
        sent, received = call.bytes_out, call.bytes_in
        request_bytes, response_bytes = (sent, received) if side == "client" else (received, sent)
        self._request_size[side].record(request_bytes, attributes)
        self._response_size[side].record(response_bytes, attributes)
        if isinstance(state, trace.Span):
            state.set_attribute("rpc.grpc.status_code", code)
            if call.code != grpc.StatusCode.OK:
                state.set_status(Status(StatusCode.ERROR, call.code.name))
            state.end()

    def plugin_started(self, plugin: str, seconds: float, *, side: Side) -> None:
        attributes = {"rpcplugin.plugin": plugin, "rpcplugin.side": side}
        with self._lock:
            restart = self._seen[(side, plugin)] > 0
            self._seen[(side, plugin)] += 1
        self._startup.record(seconds, attributes)
        self._starts.add(1, attributes)
        if restart:
            self._restarts.add(1, attributes)


_SIDES: tuple[Side, Side] = ("client", "server")
