"""Pools of the go-plugin 1.0.1 plugin (``tests/go``), and many pool launches and closes.

go-plugin 1.0.1 ignores ``PLUGIN_UNIX_SOCKET_DIR``: its sockets go to the temp dir, so these
tests check every socket path the members announced (``MemberInfo.address``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from gopeers import go_plugin_binary
from hostkit import GO_HANDSHAKE, open_fds

import rpcplugin
from rpcplugin.calls import Caller, Method, RpcKind

from .test_pool import BOUND, HANDSHAKE, PID, POOLPLUGIN

pytestmark = pytest.mark.go


def go_pool(size: int, sock_dir: str, **kw: Any) -> rpcplugin.Opening[rpcplugin.PluginPool]:
    return rpcplugin.launch_pool(
        [str(go_plugin_binary())],
        size=size,
        handshake=GO_HANDSHAKE,
        versions=[1],
        name="goplugin",
        unix_socket_dir=sock_dir,  # ignored by go-plugin 1.0.1
        start_timeout=BOUND,
        **kw,
    )


def socket_paths(pool: rpcplugin.PluginPool) -> set[str]:
    return {
        m.address.removeprefix("unix:") for m in pool.members() if m.address.startswith("unix:")
    }


def living_children() -> set[int]:
    """This process's children that are not zombies (a zombie has exited: it counts as gone)."""
    me = os.getpid()
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == me and fields[0] != "Z":
            found.add(int(name))
    return found


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


@pytest.mark.parametrize(("auto_mtls", "tls"), [(True, "openssl"), (False, "off")])
async def test_go_plugin_pool_serves_supervises_and_closes(
    sock_dir: str, pb: SimpleNamespace, auto_mtls: bool, tls: str
) -> None:
    info = Method(
        "/conformance.v1.Conformance/Info", RpcKind.UNARY, pb.v1.InfoRequest, pb.v1.InfoReply
    )
    count = Method(
        "/conformance.v1.Conformance/Count",
        RpcKind.SERVER_STREAM,
        pb.v1.CountRequest,
        pb.v1.CountReply,
    )
    sockets: set[str] = set()
    async with go_pool(2, sock_dir, auto_mtls=auto_mtls) as pool:
        caller = Caller(pool)
        assert {m.tls for m in pool.members()} == {tls}
        sockets |= socket_paths(pool)
        pids = {m.pid for m in pool.members()}
        replies = await asyncio.gather(*(caller.unary(info, None, timeout=BOUND) for _ in range(6)))
        assert {r.pid for r in replies} == pids
        assert {r.implementation for r in replies} == {"go"}

        # a long stream on each member (longer than gRPC buffers); SIGKILL member 0: its stream
        # fails, the other goes on
        streams = []
        for _ in range(2):
            before = [m.calls for m in pool.members()]
            stream = caller.server_stream(count, pb.v1.CountRequest(n=1_000_000, payload_size=64))
            first = await anext(stream)
            assert first.i == 1
            after = [m.calls for m in pool.members()]
            streams.append((stream, [a - b for a, b in zip(after, before, strict=True)].index(1)))
        victim = pool.members()[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        for stream, member in streams:
            if member == 0:
                with pytest.raises(rpcplugin.PluginExitedDuringCall) as caught:
                    async for _ in stream:
                        pass
                assert caught.value.returncode == -signal.SIGKILL
            else:
                more = [(await anext(stream)).i for _ in range(100)]
                assert more == list(range(2, 102))
                stream.cancel()
        deadline = killed + BOUND
        while pool.members()[0].pid in (victim, None):
            assert time.monotonic() < deadline, pool.members()
            await asyncio.sleep(0.005)
        await pool.wait_serving(timeout=BOUND)
        print(f"Go member serving again {(time.monotonic() - killed) * 1000:.0f} ms after SIGKILL")
        sockets |= socket_paths(pool)
        replies = await asyncio.gather(*(caller.unary(info, None, timeout=BOUND) for _ in range(6)))
        assert {r.pid for r in replies} == {m.pid for m in pool.members()}
        assert len({r.pid for r in replies}) == 2 and victim not in {r.pid for r in replies}
    assert len(sockets) == 3
    assert not [path for path in sockets if os.path.lexists(path)]


def _cycle_counts(sock_dir: str) -> tuple[int, set[int]]:
    return len(open_fds()), living_children()


async def _cycles(
    opening: Any, cycles: int, sock_dir: str, check: Any = None
) -> tuple[float, set[str]]:
    """``cycles`` pool launches and closes; the seconds per cycle (median) and the sockets."""
    sockets: set[str] = set()
    took: list[float] = []
    for _ in range(cycles):
        started = time.monotonic()
        async with opening() as pool:
            sockets |= socket_paths(pool)
            if check is not None:
                await check(pool)
        took.append(time.monotonic() - started)
    took.sort()
    return took[len(took) // 2], sockets


async def _assert_back_where_they_started(
    fds: int, children: set[int], sockets: set[str], sock_dir: str
) -> None:
    deadline = time.monotonic() + BOUND / 4
    while True:
        now_fds, now_children = _cycle_counts(sock_dir)
        left = [path for path in sockets if os.path.lexists(path)] + os.listdir(sock_dir)
        problems = []
        if now_fds > fds:
            problems.append(f"fds {fds} -> {now_fds}")
        if now_children - children:
            problems.append(f"children left: {sorted(now_children - children)}")
        if left:
            problems.append(f"sockets left: {left[:5]} ({len(left)})")
        if not problems:
            return
        assert time.monotonic() < deadline, "; ".join(problems)
        await asyncio.sleep(0.05)


async def test_200_launches_and_closes_of_a_go_pool_of_3_leave_nothing(sock_dir: str) -> None:
    fds, children = _cycle_counts(sock_dir)

    async def one_call(pool: rpcplugin.PluginPool) -> None:
        assert pool.serving == 3

    with quiet("rpcplugin", "rpcplugin.plugin.goplugin"):
        median, sockets = await _cycles(lambda: go_pool(3, sock_dir), 200, sock_dir, one_call)
    print(f"200 Go pool cycles of 3: median {median * 1000:.0f} ms per launch + close")
    assert len(sockets) == 600
    await _assert_back_where_they_started(fds, children, sockets, sock_dir)


async def test_launches_and_closes_of_a_python_pool_of_3_leave_nothing(sock_dir: str) -> None:
    fds, children = _cycle_counts(sock_dir)

    async def one_call(pool: rpcplugin.PluginPool) -> None:
        await Caller(pool).unary(PID, None, timeout=BOUND)

    def opening() -> Any:
        return rpcplugin.launch_pool(
            POOLPLUGIN,
            size=3,
            handshake=HANDSHAKE,
            versions=[1],
            unix_socket_dir=sock_dir,
            start_timeout=BOUND,
        )

    cycles = int(os.environ.get("POOL_PYTHON_CYCLES", "10"))
    with quiet("rpcplugin"):
        median, sockets = await _cycles(opening, cycles, sock_dir, one_call)
    print(f"{cycles} Python pool cycles of 3: median {median * 1000:.0f} ms per launch + close")
    assert len(sockets) == 3 * cycles
    await _assert_back_where_they_started(fds, children, sockets, sock_dir)
