"""The code shown in docs/operations.md, run (tests/test_docs.py keeps the page in step)."""

from __future__ import annotations

import rpcplugin
from rpcplugin.ops import auth, metrics
from rpcplugin.ops.rate_limit import RateLimit

from .helpers import Echo, say, served


async def test_the_documented_plugin_and_host() -> None:
    echo = Echo()
    plugin_metrics = metrics.InMemoryMetrics()
    options = dict(
        # [plugin]
        rate_limit=RateLimit(rate=100, burst=20),
        auth=auth.BearerTokens({"ci": "s3cret-ci", "ops": "s3cret-ops"}),
        metrics=plugin_metrics,  # or metrics_otel.OpenTelemetryMetrics(), or RPCPLUGIN_METRICS
        # [/plugin]
    )
    async with served(echo, shutdown_metadata=auth.bearer("s3cret-ops"), **options) as address:
        # [host]
        from rpcplugin.host.retry import RetryPolicy

        recorded = metrics.InMemoryMetrics()
        async with rpcplugin.connect(
            address,
            retry=RetryPolicy(attempts=10, backoff=0.1, max_backoff=2.0, deadline=30),
            metadata=auth.bearer("s3cret-ci"),
            metrics=recorded,
        ) as conn:
            reply = await say(conn.channel)(b"hello")
        print(recorded.snapshot()["calls"])  # {'client ops.Echo/Say': 1, ...}
        # [/host]
    assert reply == b"hello"
    assert recorded.calls[("client", "ops.Echo/Say")] == 1
    assert plugin_metrics.calls[("server", "ops.Echo/Say")] == 1
    assert echo.clients == ["ci"]
