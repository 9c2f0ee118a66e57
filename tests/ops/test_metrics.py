"""Metrics show the calls made: in memory, through OpenTelemetry, and without it installed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import grpc
import pytest

import rpcplugin
from rpcplugin.ops import metrics
from rpcplugin.ops.metrics import CallRecord, InMemoryMetrics

from .helpers import HANDSHAKE, Echo, say, served

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


async def _make_calls(address: str, client_metrics: metrics.Metrics) -> None:
    """3 OK Says, 1 failing Say, one of each stream kind (+ the health check of connect)."""
    async with rpcplugin.connect(address, metrics=client_metrics, name="echo") as conn:
        for _ in range(3):
            assert await say(conn.channel)(b"hello") == b"hello"
        with pytest.raises(grpc.aio.AioRpcError):
            await say(conn.channel)(b"fail")
        assert [m async for m in conn.channel.unary_stream("/ops.Echo/Many")(b"ab")] == [b"ab"] * 3
        assert await conn.channel.stream_unary("/ops.Echo/Gather")(iter([b"a", b"bc"])) == b"abc"
        chat = conn.channel.stream_stream("/ops.Echo/Chat")
        call = chat()
        await call.write(b"w1")
        await call.done_writing()
        assert [m async for m in call] == [b"w1"]


async def test_in_memory_metrics_on_both_sides() -> None:
    server_side, client_side = InMemoryMetrics(), InMemoryMetrics()
    async with served(Echo(), metrics=server_side) as address:
        await _make_calls(address, client_side)
    await asyncio.sleep(0.05)  # streamed calls are recorded when their status arrives
    for side, recorded in (("server", server_side), ("client", client_side)):
        assert recorded.calls[(side, "ops.Echo/Say")] == 4
        assert recorded.errors[(side, "ops.Echo/Say", "INVALID_ARGUMENT")] == 1
        assert sum(n for (_, m, _), n in recorded.errors.items()) == 1
        for method in ("Many", "Gather", "Chat"):
            assert recorded.calls[(side, f"ops.Echo/{method}")] == 1
        assert recorded.calls[(side, "grpc.health.v1.Health/Check")] == 1
        assert recorded.latency_ms[(side, "ops.Echo/Say")].count == 4
    # bytes: exact on the server; unary and written/iterated requests on the client
    assert server_side.bytes_in[("server", "ops.Echo/Say")] == 3 * 5 + 4
    assert server_side.bytes_out[("server", "ops.Echo/Say")] == 3 * 5
    assert server_side.bytes_out[("server", "ops.Echo/Many")] == 6
    assert server_side.bytes_in[("server", "ops.Echo/Gather")] == 3
    assert server_side.bytes_in[("server", "ops.Echo/Chat")] == 2
    assert client_side.bytes_out[("client", "ops.Echo/Say")] == 3 * 5 + 4
    assert client_side.bytes_in[("client", "ops.Echo/Say")] == 3 * 5
    assert client_side.bytes_out[("client", "ops.Echo/Gather")] == 3
    assert client_side.bytes_out[("client", "ops.Echo/Chat")] == 2
    assert server_side.starts[("server", "ops")] == 1
    snapshot = json.loads(json.dumps(client_side.snapshot()))
    assert snapshot["calls"]["client ops.Echo/Say"] == 4


async def test_launch_reports_start_up_time_and_restarts() -> None:
    recorded = InMemoryMetrics()
    for _ in range(2):
        async with rpcplugin.launch(
            [sys.executable, str(HERE / "echo_plugin.py")],
            handshake=HANDSHAKE,
            versions=[1],
            name="echo",
            metrics=recorded,
        ) as conn:
            assert await say(conn.channel)(b"x") == b"x"
    assert recorded.starts[("client", "echo")] == 2
    assert recorded.restarts[("client", "echo")] == 1
    assert all(0 < s < 30 for s in recorded.startup_seconds[("client", "echo")])
    assert recorded.calls[("client", "ops.Echo/Say")] == 2


async def test_opentelemetry_metrics_and_spans() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from rpcplugin.ops.metrics_otel import OpenTelemetryMetrics

    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = OpenTelemetryMetrics(
        meter_provider=MeterProvider(metric_readers=[reader]), tracer_provider=tracer_provider
    )
    async with served(Echo(), metrics=otel) as address:
        await _make_calls(address, otel)
    await asyncio.sleep(0.05)

    points: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)

    def total(name: str, method: str, **match: object) -> float:
        found = 0.0
        for point in points.get(name, []):
            attrs = dict(point.attributes)
            if attrs.get("rpc.method") == method and all(
                attrs.get(k) == v for k, v in match.items()
            ):
                found += getattr(point, "value", None) or getattr(point, "count", 0)
        return found

    for side in ("client", "server"):
        assert total(f"rpc.{side}.calls", "Say") == 4
        assert total(f"rpc.{side}.calls", "Say", **{"rpc.grpc.status_code": 3}) == 1
        assert total(f"rpc.{side}.errors", "Say") == 1
        assert total(f"rpc.{side}.duration", "Say") == 4  # histogram count
        for method in ("Many", "Gather", "Chat"):
            assert total(f"rpc.{side}.calls", method) == 1
    server_sizes = [
        p for p in points["rpc.server.request.size"] if p.attributes["rpc.method"] == "Say"
    ]
    assert sum(p.sum for p in server_sizes) == 19
    assert any(
        p.attributes["rpcplugin.side"] == "server" for p in points["rpcplugin.plugin.starts"]
    )

    spans = exporter.get_finished_spans()
    clients = {s.context.span_id: s for s in spans if s.kind.name == "CLIENT"}
    servers = [s for s in spans if s.kind.name == "SERVER" and s.name == "ops.Echo/Say"]
    assert len(servers) == 4
    for span in servers:  # the plugin continued the host's trace
        assert span.parent is not None and span.parent.span_id in clients
        assert clients[span.parent.span_id].context.trace_id == span.context.trace_id
    failed = [s for s in servers if s.status.status_code.name == "ERROR"]
    assert len(failed) == 1


def test_auto_uses_opentelemetry_when_it_is_installed() -> None:
    pytest.importorskip("opentelemetry.metrics")
    from rpcplugin.ops.metrics_otel import OpenTelemetryMetrics

    assert metrics.otel_available()
    assert isinstance(metrics.auto(), OpenTelemetryMetrics)
    assert isinstance(metrics.from_setting("otel"), OpenTelemetryMetrics)
    assert metrics.from_setting("off") is metrics.NO_METRICS


WITHOUT_OTEL = textwrap.dedent(
    """
    import asyncio, importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, Block())
    sys.path[:0] = [sys.argv[1]]

    import rpcplugin
    from rpcplugin.ops import metrics
    from rpcplugin.errors import ConfigError
    from ops.helpers import Echo, served
    from ops.test_metrics import _make_calls

    async def main():
        out = {"available": metrics.otel_available()}
        out["auto_is_noop"] = metrics.auto() is metrics.NO_METRICS
        try:
            metrics.from_setting("otel")
            out["otel_setting"] = "accepted"
        except ConfigError as exc:
            out["otel_setting"] = str(exc)
        server_side, client_side = metrics.InMemoryMetrics(), metrics.InMemoryMetrics()
        async with served(Echo(), {"RPCPLUGIN_METRICS": "auto"}) as address:
            await _make_calls(address, client_side)
        async with served(Echo(), {"RPCPLUGIN_METRICS": "auto"}, metrics=server_side) as address:
            await _make_calls(address, metrics.NO_METRICS)
        code = await rpcplugin.serve_async(
            rpcplugin.Handshake("K", "V"), {1: [Echo().handler()]},
            env={"RPCPLUGIN_DEBUG": "1", "RPCPLUGIN_METRICS": "otel"},
        )
        await asyncio.sleep(0.05)
        out["otel_exit"] = code
        out["client_calls"] = client_side.snapshot()["calls"]
        out["server_calls"] = server_side.snapshot()["calls"]
        out["imported"] = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_without_opentelemetry_nothing_is_imported_and_metrics_still_work() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RPCPLUGIN_", "PLUGIN_"))}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL, str(ROOT / "tests")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["available"] is False and out["auto_is_noop"] is True
    assert "opentelemetry is not installed" in out["otel_setting"]
    assert out["otel_exit"] == 2
    assert "RPCPLUGIN_METRICS='otel' is invalid" in result.stderr
    assert out["client_calls"]["client ops.Echo/Say"] == 4
    assert out["server_calls"]["server ops.Echo/Say"] == 4
    assert out["imported"] == []


async def test_a_failing_metrics_implementation_never_breaks_a_call(
    capfd: pytest.CaptureFixture[str],
) -> None:
    class Broken(metrics.Metrics):
        def call_started(self, call: CallRecord, headers: Any) -> object:
            raise RuntimeError("exporter down")

        def call_finished(self, call: CallRecord, state: object) -> None:
            raise RuntimeError("exporter down")

        def plugin_started(self, plugin: str, seconds: float, *, side: Any) -> None:
            raise RuntimeError("exporter down")

    broken = Broken()
    assert broken.enabled and not metrics.NO_METRICS.enabled
    async with (
        served(Echo(), metrics=broken) as address,
        rpcplugin.connect(address, metrics=broken) as conn,
    ):
        for _ in range(3):
            assert await say(conn.channel)(b"still") == b"still"
    logged = capfd.readouterr().err  # the plugin's logging goes to fd 2 while it serves
    assert logged.count("its errors are ignored") == 2  # once per side, not once per call
    assert "exporter down" in logged
    assert "failed in plugin_started; ignored" in logged  # and the plugin served on
