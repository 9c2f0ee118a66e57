"""Load (issue 7 §4): one plugin, 64 concurrent callers, a fixed count of mixed calls, TLS on.

Each caller makes unary Echo calls (1 KiB, checked byte for byte) and server streams (20
messages of 256 bytes, all counted), three of the former to one of the latter, on the one
connection (one HTTP/2 channel, as a generated client uses it). Zero calls may fail, and the
plugin's memory must be flat: its RSS at the end within 10 % of its RSS after the warm-up
(the same mix at the same concurrency), with checkpoints in between printed.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from hostkit import Snapshot

from .figures import Stopwatch, record, scaled
from .kit import check_leaks, launch_rel, rss_kib, stream, unary

CALLERS = 64
WARMUP_ROUNDS = 15
ROUNDS = scaled(24, 250)
"""Rounds per caller after the warm-up; a round is four calls (three unary, one stream)."""
STREAM_MESSAGES, STREAM_SIZE = 20, 256
CHECKPOINTS = 4


async def _round(conn: object, caller: int, round_: int, failures: list[str]) -> int:
    """One caller's round: 3 unary, 1 stream; returns the calls made."""
    from rpcplugin import PluginConnection

    assert isinstance(conn, PluginConnection)
    for i in range(3):
        payload = os.urandom(1008) + f"{caller:04d}{round_:06d}{i:02d}".encode()[:16]
        try:
            reply = await unary(conn, "Echo", payload, timeout=30)
        except (Exception, asyncio.CancelledError) as exc:  # a call cut locally is a failure too
            failures.append(f"caller {caller} unary: {exc!r:.200}")
            continue
        if reply != payload:
            failures.append(f"caller {caller} unary: wrong reply")
    try:
        got = [m async for m in stream(conn, STREAM_MESSAGES, STREAM_SIZE, timeout=30)]
    except (Exception, asyncio.CancelledError) as exc:
        failures.append(f"caller {caller} stream: {exc!r:.200}")
    else:
        if len(got) != STREAM_MESSAGES or any(len(m) != STREAM_SIZE for m in got):
            failures.append(f"caller {caller} stream: {len(got)} messages")
    return 4


async def _phase(conn: object, rounds: int, failures: list[str]) -> int:
    async def caller(index: int) -> int:
        return sum([await _round(conn, index, r, failures) for r in range(rounds)])

    return sum(await asyncio.gather(*(caller(i) for i in range(CALLERS))))


@pytest.mark.parametrize(
    ("transport", "variant"),
    [("unix", "grpc-tls"), ("tcp", "grpc-tls"), ("unix", "openssl-tls")],
)
async def test_64_callers_mixed_calls_none_fails_memory_flat(
    warm_grpc: None, short_dir: str, transport: str, variant: str
) -> None:
    before = Snapshot.take()
    failures: list[str] = []
    async with launch_rel(transport=transport, variant=variant, unix_socket_dir=short_dir) as conn:
        assert conn.pid is not None and conn.tls != "off"
        warm_calls = await _phase(conn, WARMUP_ROUNDS, failures)
        warm_rss = rss_kib(conn.pid)
        samples = [warm_rss]
        calls = 0
        per_checkpoint = max(1, ROUNDS // CHECKPOINTS)
        with Stopwatch() as run:
            for _ in range(CHECKPOINTS):
                calls += await _phase(conn, per_checkpoint, failures)
                samples.append(rss_kib(conn.pid))
        end_rss = samples[-1]
    growth = (end_rss - warm_rss) / warm_rss
    print(
        f"\n{transport}/{variant}: {CALLERS} callers, {calls} calls after {warm_calls} warm-up "
        f"in {run.seconds:.1f} s ({calls / run.seconds:.0f}/s), {len(failures)} failed; plugin "
        f"RSS KiB {samples} ({growth:+.1%} from warm-up to end)"
    )
    record("load", cases=1, calls=calls + warm_calls, failed_calls=len(failures))
    assert failures == [], failures[:10]
    assert end_rss <= warm_rss * 1.10, f"plugin RSS grew {growth:.1%}: {samples}"
    assert conn.returncode == 0
    assert not await check_leaks("load", before, short_dir)
