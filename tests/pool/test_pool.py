"""``rpcplugin.launch_pool``: members, balancing, supervision and close, with real plugins.

The Python members run :mod:`poolplugin`; calls go through :class:`rpcplugin.calls.Caller`, the
class every generated client is a one-line wrapper of, so they take the path generated code
takes (the pool's ``pick_channel`` seam and the member's ``explain_failure``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue
from hostkit import MB_HANDSHAKE, mb, pid_running

import rpcplugin
from rpcplugin.calls import Caller, Method, RpcKind
from rpcplugin.host.pool import WATCH_RETRY
from rpcplugin.ops.metrics import InMemoryMetrics

POOLPLUGIN = [sys.executable, str(Path(__file__).resolve().parent / "poolplugin.py")]
HANDSHAKE = rpcplugin.Handshake("POOLTEST_PLUGIN", "pool-v1")
PID = Method("/pooltest.Work/Pid", RpcKind.UNARY, StringValue, StringValue)
HOLD = Method("/pooltest.Work/Hold", RpcKind.UNARY, StringValue, StringValue)
SICK = Method("/pooltest.Work/Sick", RpcKind.UNARY, StringValue, StringValue)
REPEAT = Method("/pooltest.Work/Repeat", RpcKind.SERVER_STREAM, StringValue, StringValue)

BOUND = 60.0
"""Seconds any wait in these tests may take: far above what it takes on an idle machine (a
Python member starts in ~0.3 s), with room for a loaded one. Never a speed assertion."""


def pool_of(size: int, sock_dir: str, **kw: Any) -> rpcplugin.Opening[rpcplugin.PluginPool]:
    kw.setdefault("start_timeout", BOUND)
    return rpcplugin.launch_pool(
        POOLPLUGIN,
        size=size,
        handshake=HANDSHAKE,
        versions=[1],
        name="pooltest",
        env={"PYTHONDONTWRITEBYTECODE": "1"} | kw.pop("env", {}),
        unix_socket_dir=sock_dir,
        **kw,
    )


async def pids_seen(caller: Caller, calls: int) -> Counter[int]:
    replies = await asyncio.gather(*(caller.unary(PID, None, timeout=BOUND) for _ in range(calls)))
    return Counter(int(reply.value) for reply in replies)


async def back_after_exit(pool: rpcplugin.PluginPool, index: int, since: float) -> float:
    """Seconds from ``since`` until member ``index`` left the rotation and is serving again."""
    deadline = since + BOUND
    while pool.members()[index].state == "serving":
        assert time.monotonic() < deadline, pool.members()
        await asyncio.sleep(0.001)
    await pool.wait_serving(timeout=max(0.0, deadline - time.monotonic()))
    return time.monotonic() - since


def live_pids(pool: rpcplugin.PluginPool) -> set[int]:
    return {m.pid for m in pool.members() if m.pid is not None}


async def test_calls_spread_over_every_member_and_are_counted_per_member(sock_dir: str) -> None:
    metrics = InMemoryMetrics()
    async with pool_of(3, sock_dir, metrics=metrics) as pool:
        assert pool.size == 3 and pool.serving == 3 and not pool.degraded
        members = pool.members()
        assert [m.name for m in members] == ["pooltest#0", "pooltest#1", "pooltest#2"]
        assert all(m.state == "serving" and m.restarts == 0 for m in members)
        assert all(m.address.startswith(f"unix:{sock_dir}/") for m in members)
        pids = live_pids(pool)
        assert len(pids) == 3

        seen = await pids_seen(Caller(pool), 30)  # 30 at once: spread evenly
        assert set(seen) == pids
        assert sorted(seen.values()) == [10, 10, 10]
        assert [m.calls for m in pool.members()] == [10, 10, 10]
        assert [m.in_flight for m in pool.members()] == [0, 0, 0]
        first = pool.members()[0].pid
        for _ in range(5):  # one after another: they stay on one warm member
            assert int((await Caller(pool).unary(PID, None)).value) == first
        assert [m.calls for m in pool.members()] == [15, 10, 10]
    assert all(not pid_running(pid) for pid in pids)
    assert [m.state for m in pool.members()] == ["closed"] * 3
    by_member = metrics.snapshot()["calls_by_plugin"]
    for index in range(3):
        # 10 Pid calls, the start-up health check, the health watch (recorded when it ended)
        assert by_member[f"client pooltest#{index}"] >= 10
    assert metrics.calls[("client", "pooltest.Work/Pid")] == 35
    assert sorted(metrics.snapshot()["starts"]) == [f"client pooltest#{i}" for i in range(3)]


async def test_a_stream_stays_on_the_member_it_started_on(sock_dir: str) -> None:
    async with pool_of(2, sock_dir) as pool:
        caller = Caller(pool)

        async def one_stream() -> set[str]:
            return {
                reply.value async for reply in caller.server_stream(REPEAT, StringValue(value="5"))
            }

        streams = await asyncio.gather(*(one_stream() for _ in range(4)))
        assert all(len(pids) == 1 for pids in streams), streams
        assert {int(next(iter(pids))) for pids in streams} == live_pids(pool)


async def test_sigkill_of_one_member_fails_only_its_calls_and_it_comes_back(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rpcplugin.pool")
    async with pool_of(3, sock_dir) as pool:
        caller = Caller(pool)
        victim = pool.members()[1]
        assert victim.pid is not None
        # 100 calls that each hold their member for a while; all of them picked at once
        calls = [
            asyncio.ensure_future(caller.unary(HOLD, StringValue(value="8"), timeout=BOUND))
            for _ in range(100)
        ]
        deadline = time.monotonic() + BOUND
        while sum(m.calls for m in pool.members()) < 100:
            assert time.monotonic() < deadline, pool.members()
            await asyncio.sleep(0.01)
        on_victim = pool.members()[1].calls
        assert on_victim in (33, 34)
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        comeback = asyncio.ensure_future(back_after_exit(pool, 1, killed))
        results = await asyncio.gather(*calls, return_exceptions=True)

        failed = [r for r in results if isinstance(r, BaseException)]
        served = [int(r.value) for r in results if isinstance(r, StringValue)]
        assert len(failed) == on_victim, failed[:3]
        for error in failed:
            assert isinstance(error, rpcplugin.PluginExitedDuringCall), repr(error)
            assert isinstance(error, grpc.aio.AioRpcError)
            assert error.returncode == -signal.SIGKILL
            assert f"pid {victim.pid}" in str(error)
        assert len(served) == 100 - on_victim
        assert victim.pid not in served

        back = await comeback
        member = pool.members()[1]
        assert member.state == "serving" and member.restarts == 1
        assert member.returncode == -signal.SIGKILL
        assert member.pid is not None and member.pid != victim.pid
        print(f"member serving again {back * 1000:.0f} ms after SIGKILL, 100 calls running")
        seen = await pids_seen(caller, 30)
        assert set(seen) == live_pids(pool) and len(seen) == 3
    assert "member pooltest#1 exited (exit status -9); relaunching it" in caplog.text


async def test_relaunch_time_after_sigkill(sock_dir: str) -> None:
    """How long a member is out after SIGKILL: the figure docs/pool.md quotes (printed)."""
    async with pool_of(2, sock_dir) as pool:
        victim = pool.members()[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + BOUND
        while pool.members()[0].state == "serving":  # the exit is noticed at once...
            assert time.monotonic() < deadline
            await asyncio.sleep(0.001)
        noticed = time.monotonic() - killed
        assert pool.serving == 1  # ...and the member leaves the rotation with it
        assert {
            int(r.value)
            for r in (await asyncio.gather(*(Caller(pool).unary(PID, None) for _ in range(6))))
        } == live_pids(pool)
        await pool.wait_serving(timeout=BOUND)
        back = time.monotonic() - killed
        print(
            f"exit noticed after {noticed * 1000:.1f} ms, serving again after {back * 1000:.0f} ms"
        )


async def test_a_member_that_keeps_exiting_is_given_up_and_the_pool_is_degraded(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    policy = rpcplugin.RestartPolicy(max_restarts=2, window=BOUND * 10, initial_backoff=0.05)
    async with pool_of(1, sock_dir, env={"POOLTEST_EXIT_AFTER": "0.3"}, restart=policy) as pool:
        deadline = time.monotonic() + BOUND * 3
        while not pool.degraded:
            assert time.monotonic() < deadline, pool.members()
            await asyncio.sleep(0.02)
        member = pool.members()[0]
        assert (member.state, member.restarts, member.returncode, member.pid) == (
            "failed",
            2,
            3,
            None,
        )
        assert pool.serving == 0
        with pytest.raises(rpcplugin.TransportError, match="pooltest#0 failed"):
            await Caller(pool).unary(PID, None)
        with pytest.raises(rpcplugin.TransportError, match="is serving"):
            pool.channel  # noqa: B018
    assert "giving it up, the pool is degraded" in caplog.text


async def test_a_member_not_serving_takes_no_calls_until_it_serves_again(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rpcplugin.pool")
    async with pool_of(2, sock_dir) as pool:
        caller = Caller(pool)
        sick_pid = int((await caller.unary(SICK, StringValue(value="3"))).value)
        assert sick_pid == pool.members()[0].pid  # an idle pool: the first member
        deadline = time.monotonic() + BOUND
        while pool.members()[0].state != "not_serving":
            assert time.monotonic() < deadline, pool.members()
            await asyncio.sleep(0.005)
        assert pool.serving == 1
        seen = await pids_seen(caller, 10)
        assert set(seen) == {pool.members()[1].pid}
        await pool.wait_serving(timeout=BOUND)
        assert pool.members()[0].state == "serving" and pool.members()[0].restarts == 0
        assert set(await pids_seen(caller, 10)) == live_pids(pool)
    assert "member pooltest#0 reports not SERVING" in caplog.text
    assert "member pooltest#0 reports SERVING" in caplog.text


async def test_members_without_health_watch_stay_in_the_rotation(sock_dir: str) -> None:
    # the misbehaving plugin's health service has Check only: Watch is UNIMPLEMENTED
    metrics = InMemoryMetrics()
    async with rpcplugin.launch_pool(
        mb("ok"),
        size=2,
        handshake=MB_HANDSHAKE,
        versions=[1],
        unix_socket_dir=sock_dir,
        metrics=metrics,
    ) as pool:
        watch = ("client", "grpc.health.v1.Health/Watch", "UNIMPLEMENTED")
        deadline = time.monotonic() + BOUND
        while metrics.errors[watch] < 2:
            assert time.monotonic() < deadline, metrics.snapshot()
            await asyncio.sleep(0.01)
        await asyncio.sleep(WATCH_RETRY * 3)  # a watch retried would have been by now
        assert metrics.errors[watch] == 2  # asked once per member, then trusted
        assert [m.state for m in pool.members()] == ["serving", "serving"]
        assert pool.serving == 2


def test_restart_policy_backoff_doubles_up_to_its_cap() -> None:
    policy = rpcplugin.RestartPolicy(initial_backoff=0.1, max_backoff=0.5)
    assert [policy.delay(n) for n in range(6)] == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5]


@pytest.mark.parametrize(
    ("size", "allowed"), [(0, "at least 1"), (True, "whole number"), (2.0, "whole number")]
)
def test_a_bad_size_is_one_clear_error(size: Any, allowed: str) -> None:
    with pytest.raises(rpcplugin.ConfigError, match=allowed) as caught:
        rpcplugin.launch_pool(POOLPLUGIN, size=size, handshake=HANDSHAKE, versions=[1])
    assert "size" in str(caught.value)


def test_a_pool_without_start_up_health_checks_is_refused() -> None:
    with pytest.raises(rpcplugin.ConfigError, match="health_check"):
        rpcplugin.launch_pool(
            POOLPLUGIN, size=2, handshake=HANDSHAKE, versions=[1], health_check=False
        )


def test_a_bad_restart_policy_is_one_clear_error() -> None:
    with pytest.raises(rpcplugin.ConfigError, match="max_restarts"):
        rpcplugin.RestartPolicy(max_restarts=-1)
    with pytest.raises(rpcplugin.ConfigError, match="window"):
        rpcplugin.RestartPolicy(window=-1.0)


async def test_a_pool_that_cannot_start_raises_and_leaves_nothing(sock_dir: str) -> None:
    with pytest.raises(rpcplugin.ConfigError, match="plugin command"):
        await rpcplugin.launch_pool(
            [os.path.join(sock_dir, "no-such-plugin")], size=3, handshake=HANDSHAKE, versions=[1]
        )
    with pytest.raises(rpcplugin.PluginError):
        # the members exit right after serving: the health check or the start fails
        await pool_of(2, sock_dir, env={"POOLTEST_EXIT_AFTER": "0"}, start_timeout=BOUND)


async def test_close_during_a_relaunch_is_bounded_and_leaves_nothing(sock_dir: str) -> None:
    async with pool_of(2, sock_dir) as pool:
        pids = live_pids(pool)
        victim = pool.members()[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + BOUND
        while pool.members()[0].state != "starting":
            assert time.monotonic() < deadline, pool.members()
            await asyncio.sleep(0.001)
        started = time.monotonic()
    took = time.monotonic() - started
    assert took < BOUND
    assert all(not pid_running(pid) for pid in pids)
    with pytest.raises(rpcplugin.TransportError, match="closed"):
        pool.pick_channel()


async def test_the_example_of_docs_pool_md(
    sock_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = POOLPLUGIN
    async with asyncio.timeout(BOUND):
        # [pool-launch]
        async with rpcplugin.launch_pool(
            command,
            size=2,
            handshake=HANDSHAKE,
            versions=[1],
            name="work",
            restart=rpcplugin.RestartPolicy(max_restarts=5, window=60.0),
            unix_socket_dir=sock_dir,
        ) as pool:
            work = Caller(pool)  # with generated code: WorkClient(pool)
            replies = await asyncio.gather(*(work.unary(PID, None) for _ in range(8)))
            for member in pool.members():
                print(member.name, member.pid, member.state, member.restarts, member.calls)
        # [/pool-launch]
    assert len({reply.value for reply in replies}) == 2
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["work#0", "work#1"]
    assert all(line.endswith(" serving 0 4") for line in lines), lines
