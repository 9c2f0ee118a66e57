"""The issue's bar, against a real plugin process: 64 concurrent calls of a plain ``def`` method
that blocks (``time.sleep``) are all served, and the plugin's health check keeps answering
fast meanwhile because the blocking happens on worker threads, not on the event loop."""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import wrappers_pb2 as w

import rpcplugin
from rpcplugin.calls import Caller
from rpcplugin.services import health

from .echo_service import BLOCK_LOOP, SLEEP
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


async def test_a_plugin_names_the_method_that_blocks_its_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The detector in a plugin process: started when serving, its WARNING reaches the host's
    log (through the plugin's stderr) once, however often the method blocks."""
    logger = logging.getLogger("test.sync-plugin")
    env = {"RPCPLUGIN_STALL_WARNING": "0.1"}
    with caplog.at_level(logging.WARNING, logger="test.sync-plugin"):
        async with rpcplugin.launch(
            [sys.executable, str(PLUGIN)], handshake=HANDSHAKE, versions=[1], env=env, logger=logger
        ) as conn:
            caller = Caller(conn)
            for _ in range(3):
                reply = await caller.unary(BLOCK_LOOP, w.DoubleValue(value=0.4), timeout=30)
                assert reply.value == "blocked"
    # (a loaded machine may add a stall of its own elsewhere: only this method's are counted)
    warnings = [r.getMessage() for r in caplog.records if "BlockLoop" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "/test.Echo/BlockLoop kept the event loop from turning" in warnings[0]
