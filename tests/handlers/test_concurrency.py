"""The issue's bar, against a real plugin process: 64 concurrent calls of a plain ``def`` method
that blocks (``time.sleep``) are all served, and the plugin's health check keeps answering
fast meanwhile because the blocking happens on worker threads, not on the event loop."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from google.protobuf import wrappers_pb2 as w

import rpcplugin
from rpcplugin.calls import Caller
from rpcplugin.services import health

from .echo_service import SLEEP
from .sync_plugin import HANDSHAKE

PLUGIN = Path(__file__).resolve().parent / "sync_plugin.py"
CALLS = 64
SLEEP_S = 2.0


async def test_64_blocking_sync_calls_leave_the_health_check_responsive() -> None:
    env = {"RPCPLUGIN_HANDLER_THREADS": str(CALLS), "RPCPLUGIN_STALL_WARNING": "0.2"}
    async with rpcplugin.launch(
        [sys.executable, str(PLUGIN)], handshake=HANDSHAKE, versions=[1], env=env
    ) as conn:
        caller = Caller(conn)
        await health.check(conn.channel)  # warm: the connection is up
        calls = [
            asyncio.ensure_future(caller.unary(SLEEP, w.DoubleValue(value=SLEEP_S), timeout=60))
            for _ in range(CALLS)
        ]
        latencies: list[float] = []
        while not all(c.done() for c in calls):
            before = time.monotonic()
            assert await health.check(conn.channel) == health.SERVING
            latencies.append(time.monotonic() - before)
            await asyncio.sleep(0.02)
        replies = await asyncio.gather(*calls)
    assert all(r.value.startswith("slept|") for r in replies)
    assert max(int(r.value.split("|")[1]) for r in replies) == CALLS  # all asleep at once
    assert len(latencies) >= 10, latencies
    assert statistics.median(latencies) < 0.05, sorted(latencies)
