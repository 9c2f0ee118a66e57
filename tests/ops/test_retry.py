"""Connect retries: a server that comes up late is reached; one that never does fails at the
deadline; only failures to reach a server are retried."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time

import pytest

import rpcplugin
from rpcplugin.errors import ConfigError, PluginError, SecurityError, TransportError
from rpcplugin.host import retry
from rpcplugin.host.attach import reattach
from rpcplugin.host.retry import RetryPolicy

from .helpers import Echo, free_port, plain_server, say


def test_policy_validation_and_backoff_ceilings() -> None:
    policy = RetryPolicy(attempts=10, backoff=0.1, max_backoff=1.0, deadline=5)
    assert [policy.backoff_ceiling(n) for n in range(1, 7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )
    for bad in (
        {"attempts": 0},
        {"attempts": 1.5},
        {"backoff": -1},
        {"max_backoff": 0.01},
        {"deadline": 0},
        {"deadline": float("nan")},
    ):
        with pytest.raises(ConfigError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


def test_policy_from_the_settings() -> None:
    assert RetryPolicy.from_env({}) == RetryPolicy(attempts=1)
    env = {
        "RPCPLUGIN_CONNECT_ATTEMPTS": "7",
        "RPCPLUGIN_CONNECT_BACKOFF": "0.25",
        "RPCPLUGIN_CONNECT_MAX_BACKOFF": "3",
        "RPCPLUGIN_CONNECT_DEADLINE": "12.5",
    }
    assert RetryPolicy.from_env(env) == RetryPolicy(7, 0.25, 3.0, 12.5)


async def test_full_jitter_backoff_attempts_and_final_errors() -> None:
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await real_sleep(0)

    calls = 0

    async def flaky(timeout: float) -> str:
        nonlocal calls
        calls += 1
        assert 0 < timeout <= retry.ATTEMPT_TIMEOUT
        if calls < 4:
            raise TransportError("not yet")
        return "up"

    policy = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.02, deadline=5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retry.asyncio, "sleep", fake_sleep)
        assert await retry.run(policy, flaky, what="t", rng=random.Random(7)) == "up"
    assert calls == 4 and len(sleeps) == 3
    assert all(0 <= s <= c for s, c in zip(sleeps, (0.01, 0.02, 0.02), strict=True))

    calls = 0

    async def never(timeout: float) -> str:
        nonlocal calls
        calls += 1
        raise TransportError("down")

    with pytest.raises(TransportError, match=r"failed after 3 attempt\(s\).*: down"):
        await retry.run(RetryPolicy(attempts=3, backoff=0, max_backoff=0), never, what="t")
    assert calls == 3

    for final in (SecurityError("bad certificate"), PluginError("no such process")):
        calls = 0

        async def refuses(timeout: float, error: Exception = final) -> str:
            nonlocal calls
            calls += 1
            raise error

        with pytest.raises(type(final)):
            await retry.run(RetryPolicy(attempts=5, backoff=0), refuses, what="t")
        assert calls == 1


async def test_a_server_that_comes_up_after_2s_is_reached_within_the_deadline() -> None:
    echo = Echo()
    address = f"127.0.0.1:{free_port()}"

    async def start_late() -> object:
        await asyncio.sleep(2.0)
        return await plain_server(address, echo)

    late = asyncio.ensure_future(start_late())
    policy = RetryPolicy(attempts=100, backoff=0.05, max_backoff=0.25, deadline=6)
    started = time.monotonic()
    try:
        async with rpcplugin.connect(address, retry=policy) as conn:
            elapsed = time.monotonic() - started
            assert await say(conn.channel)(b"late") == b"late"
    finally:
        server = await late
        await server.stop(None)  # type: ignore[attr-defined]
    assert 2.0 <= elapsed < policy.deadline, elapsed


async def test_a_server_that_never_comes_up_fails_at_the_deadline() -> None:
    address = f"127.0.0.1:{free_port()}"
    policy = RetryPolicy(attempts=1000, backoff=0.05, max_backoff=0.3, deadline=1.5)
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        await rpcplugin.connect(address, retry=policy)
    elapsed = time.monotonic() - started
    # at the deadline, not before, and not after the 1000 attempts (minutes): the upper bound
    # only rules out a hang, a loaded machine may be slow (issue 18 §6)
    assert 1.5 <= elapsed < policy.deadline + 10, elapsed
    assert f"connect to {address} failed after" in str(caught.value)
    assert "1.5 s" in str(caught.value)


async def test_without_retry_the_settings_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:  # default: one attempt, as before
        await rpcplugin.connect(address)
    assert time.monotonic() - started < 10  # refused at once: only a hang reaches this
    assert "failed after" not in str(caught.value)  # one attempt, no retry

    monkeypatch.setenv("RPCPLUGIN_CONNECT_ATTEMPTS", "3")
    monkeypatch.setenv("RPCPLUGIN_CONNECT_BACKOFF", "0.05")
    monkeypatch.setenv("RPCPLUGIN_CONNECT_MAX_BACKOFF", "0.05")
    monkeypatch.setenv("RPCPLUGIN_CONNECT_DEADLINE", "5")
    with pytest.raises(TransportError, match=r"failed after 3 attempt\(s\)"):
        await rpcplugin.connect(address)
    monkeypatch.setenv("RPCPLUGIN_CONNECT_DEADLINE", "0.3")
    monkeypatch.setenv("RPCPLUGIN_CONNECT_ATTEMPTS", "1000")
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"limit 1000 attempts, 0.3 s"):
        await rpcplugin.connect(address)
    assert time.monotonic() - started < 10  # the deadline, not 1000 attempts (50 s of backoff)


async def test_reattach_retries_until_the_socket_appears(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "late.sock")
    config = json.dumps(
        {
            "late": {
                "Protocol": "grpc",
                "ProtocolVersion": 1,
                "Pid": os.getpid(),
                "Test": True,
                "Addr": {"Network": "unix", "String": path},
            }
        }
    )
    echo = Echo()

    async def start_late() -> object:
        await asyncio.sleep(0.7)
        return await plain_server(f"unix:{path}", echo)

    late = asyncio.ensure_future(start_late())
    try:
        policy = RetryPolicy(attempts=50, backoff=0.05, max_backoff=0.2, deadline=5)
        async with reattach(config, name="late", retry=policy) as conn:
            assert await say(conn.channel)(b"r") == b"r"
    finally:
        server = await late
        await server.stop(None)  # type: ignore[attr-defined]
