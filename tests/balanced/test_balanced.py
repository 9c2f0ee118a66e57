"""Several plugin servers behind one channel: round_robin, client-side health checking, a server
killed or drained mid-run (issue 8's scale-out test; the example is examples/scale-out)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from test_server_mode import who
from workers import Worker, make_pki, start_worker, stop_all

import rpcplugin
from rpcplugin.errors import ConfigError
from rpcplugin.host.balanced import balanced_target, service_config

CALLERS = 8
"""Concurrent callers: at most this many calls are in flight when a server dies."""


async def load(
    conn: rpcplugin.BalancedConnection, seconds: float, *, at: float, action: object
) -> tuple[collections.Counter[str], list[str], collections.Counter[str]]:
    """``CALLERS`` loops of ``Who("0.005")`` for ``seconds``; ``action()`` runs at ``at`` s.
    Returns the calls per server before and after the action, and the failures."""
    before: collections.Counter[str] = collections.Counter()
    after: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    started = time.monotonic()
    acted = asyncio.Event()

    async def caller() -> None:
        while time.monotonic() - started < seconds:
            counts = after if acted.is_set() else before
            try:
                counts[await who(conn.channel, "0.005")] += 1
            except grpc.aio.AioRpcError as exc:
                failures.append(f"{exc.code().name}: {exc.details()}")

    async def trigger() -> None:
        await asyncio.sleep(at)
        action()  # type: ignore[operator]
        await asyncio.sleep(0.3)  # calls that started before it are "before"
        acted.set()

    await asyncio.gather(trigger(), *(caller() for _ in range(CALLERS)))
    return before, failures, after


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[list[Worker]]:
    """Servers a, b and c in server mode with mutual TLS (certificates in ``tmp_path``)."""
    pki = make_pki(tmp_path)
    started = list(await asyncio.gather(*(start_worker(n, pki.server_env()) for n in "abc")))
    yield started
    await stop_all(started)


def tls_files(tmp_path: Path) -> rpcplugin.TLSFiles:
    return rpcplugin.TLSFiles(
        ca_file=str(tmp_path / "ca.pem"),
        cert_file=str(tmp_path / "c.pem"),
        key_file=str(tmp_path / "c-key.pem"),
    )


async def test_calls_spread_over_three_servers_and_survive_one_killed(
    workers: list[Worker], tmp_path: Path
) -> None:
    addresses = [w.address for w in workers]
    async with rpcplugin.connect_balanced(addresses, tls=tls_files(tmp_path)) as conn:
        assert conn.tls == "grpc"
        # the channel is READY with its first server; the others join within moments
        seen: set[str] = set()
        deadline = time.monotonic() + 5
        while seen != {"a", "b", "c"} and time.monotonic() < deadline:
            seen.add(await who(conn.channel))
        # spread: round_robin over three connected, SERVING servers
        counts = collections.Counter([await who(conn.channel) for _ in range(30)])
        assert counts == {"a": 10, "b": 10, "c": 10}, counts
        before, failures, after = await load(conn, 2.5, at=1.0, action=workers[1].kill)
        assert set(before) == {"a", "b", "c"}, before
        assert set(after) == {"a", "c"}, f"the killed server is still in rotation: {after}"
        assert len(failures) <= CALLERS, failures  # only calls in flight on the killed server
        assert all(f.startswith("UNAVAILABLE") for f in failures), failures
        total = sum(before.values()) + sum(after.values()) + len(failures)
        print(
            f"scale-out: {total} calls over 3 servers, server b SIGKILLed mid-run: "
            f"{len(failures)} failed (in flight on it, at most {CALLERS}); "
            f"before {dict(before)}, after {dict(after)}"
        )


async def test_a_drained_server_leaves_rotation_without_failed_calls(
    workers: list[Worker], tmp_path: Path
) -> None:
    addresses = [w.address for w in workers]
    async with rpcplugin.connect_balanced(addresses, tls=tls_files(tmp_path)) as conn:
        before, failures, after = await load(conn, 2.5, at=1.0, action=workers[2].terminate)
        assert failures == []  # NOT_SERVING first (health Watch), then the stop
        assert set(before) == {"a", "b", "c"} and set(after) == {"a", "b"}, (before, after)
        assert await asyncio.wait_for(workers[2].process.wait(), 10) == 0


async def test_retries_hide_a_killed_server_from_idempotent_calls(
    workers: list[Worker], tmp_path: Path
) -> None:
    addresses = [w.address for w in workers]
    async with rpcplugin.connect_balanced(
        addresses, tls=tls_files(tmp_path), retry_attempts=3
    ) as conn:
        _, failures, after = await load(conn, 2.0, at=0.8, action=workers[0].kill)
        assert failures == [] and set(after) == {"b", "c"}, (failures, after)


async def test_no_healthy_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(rpcplugin.TransportError, match=r"no plugin server of ipv4:127\.0\.0\.1:9"):
        await rpcplugin.connect_balanced(["127.0.0.1:9", "127.0.0.1:10"], ready_timeout=0.5)


def test_targets_and_service_config() -> None:
    assert balanced_target(["127.0.0.1:1", "127.0.0.1:2"]) == (
        "ipv4:127.0.0.1:1,127.0.0.1:2",
        "127.0.0.1",
    )
    assert balanced_target(["[::1]:1", "[::2]:1"]) == ("ipv6:[::1]:1,[::2]:1", "")
    assert balanced_target(["dns:///plugins.internal:7000"])[0] == "dns:///plugins.internal:7000"
    for bad in (
        ["host.example:1"],
        ["127.0.0.1:1", "[::1]:1"],
        ["::1:1"],
        [],
        ["1.2.3.4"],
        ["127.0.0.1:0"],
        ["127.0.0.1:65536"],
        ["127.0.0.1:\u00b2"],  # a digit to str.isdigit, not to int()
    ):
        with pytest.raises(ConfigError):
            balanced_target(bad)
    assert service_config() == (
        '{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":"plugin"}}'
    )
    assert '"retryableStatusCodes":["UNAVAILABLE"]' in service_config(retry_attempts=2)
