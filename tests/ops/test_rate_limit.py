"""Rate limiting: over the limit → RESOURCE_EXHAUSTED with a message; control services free."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

import rpcplugin
from rpcplugin.errors import ConfigError
from rpcplugin.ops.rate_limit import RETRY_AFTER_KEY, RateLimit, RateLimitInterceptor, TokenBucket
from rpcplugin.services import health

from .helpers import Echo, say, served

MESSAGE = "rate limit exceeded: 5 calls/s, burst 5"


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_lets_a_burst_through_then_refills_at_the_rate() -> None:
    clock = FrozenClock()
    bucket = TokenBucket(RateLimit(5, 5), clock=clock)
    assert [bucket.try_acquire() for _ in range(30)] == [True] * 5 + [False] * 25
    assert bucket.wait_time() == pytest.approx(0.2)
    clock.now += 0.2
    assert bucket.try_acquire() and not bucket.try_acquire()
    clock.now += 10  # a quiet spell refills to the burst, no further
    assert sum(bucket.try_acquire() for _ in range(30)) == 5


def test_fractional_rates_and_bad_limits() -> None:
    clock = FrozenClock()
    bucket = TokenBucket(RateLimit(0.5, 1), clock=clock)
    assert bucket.try_acquire() and not bucket.try_acquire()
    clock.now += 1.9
    assert not bucket.try_acquire()
    clock.now += 0.1
    assert bucket.try_acquire()
    for rate, burst in ((0, 1), (-1, 1), (float("inf"), 1), (1, 0), (1, 1.5), (1, True)):
        with pytest.raises(ConfigError):
            RateLimit(rate, burst)  # type: ignore[arg-type]


async def _thirty_calls(address: str) -> tuple[list[str], list[int], float]:
    """30 sequential app calls, each followed by a health check."""
    codes: list[str] = []
    statuses: list[int] = []
    async with rpcplugin.connect(address) as conn:
        started = time.monotonic()
        for _ in range(30):
            try:
                await say(conn.channel)(b"hi", timeout=5)
                codes.append("OK")
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code().name)
                assert exc.details() == MESSAGE
                trailers = dict(exc.trailing_metadata() or ())
                assert 1 <= int(trailers[RETRY_AFTER_KEY]) <= 200
            statuses.append(await health.check(conn.channel, timeout=5))
        elapsed = time.monotonic() - started
    return codes, statuses, elapsed


async def test_exactly_the_over_limit_calls_fail_and_health_keeps_passing() -> None:
    """A frozen clock: 5 calls pass, the other 25 fail, all 30 health checks pass."""
    echo = Echo()
    limiter = RateLimitInterceptor(TokenBucket(RateLimit(5, 5), clock=FrozenClock()))
    async with served(echo, interceptors=[limiter]) as address:
        codes, statuses, _ = await _thirty_calls(address)
    assert codes == ["OK"] * 5 + ["RESOURCE_EXHAUSTED"] * 25
    assert statuses == [health.SERVING] * 30
    assert echo.served == 5 and limiter.rejected == 25


async def test_the_settings_limit_a_real_plugin_in_real_time() -> None:
    """RPCPLUGIN_RATE_LIMIT=5 RPCPLUGIN_RATE_BURST=5 and the real clock."""
    echo = Echo()
    env = {"RPCPLUGIN_RATE_LIMIT": "5", "RPCPLUGIN_RATE_BURST": "5"}
    async with served(echo, env) as address:
        codes, statuses, elapsed = await _thirty_calls(address)
    refilled = int(elapsed * 5)  # tokens that came back while the 30 calls ran
    assert codes[:5] == ["OK"] * 5
    assert codes.count("OK") <= 5 + refilled
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}
    if refilled == 0:
        assert codes == ["OK"] * 5 + ["RESOURCE_EXHAUSTED"] * 25
    assert statuses == [health.SERVING] * 30
    assert echo.served == codes.count("OK")


async def test_streams_take_one_token_and_control_services_are_never_throttled() -> None:
    echo = Echo()
    limiter = RateLimitInterceptor(TokenBucket(RateLimit(1, 1), clock=FrozenClock()))
    async with (
        served(echo, interceptors=[limiter]) as address,
        rpcplugin.connect(address) as conn,
    ):
        many = conn.channel.unary_stream("/ops.Echo/Many")
        assert [m async for m in many(b"x")] == [b"x"] * 3
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [m async for m in many(b"x")]
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # health, stdio and broker keep answering; unknown methods stay UNIMPLEMENTED
        for _ in range(20):
            await conn.ping()
        stdio = conn.channel.unary_stream("/plugin.GRPCStdio/StreamStdio")
        call = stdio(b"")
        await asyncio.sleep(0.05)
        assert not call.done()
        call.cancel()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await conn.channel.unary_unary("/ops.Echo/Nope")(b"")
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert limiter.rejected == 1


async def test_a_bad_rate_setting_stops_the_plugin_with_exit_2() -> None:
    code = await rpcplugin.serve_async(
        rpcplugin.Handshake("K", "V"),
        {1: [Echo().handler()]},
        env={"RPCPLUGIN_DEBUG": "1", "RPCPLUGIN_RATE_BURST": "3"},
    )
    assert code == 2
