"""Lifecycle races (issue 18 §2): close() under calls in flight, calls after close, cancelled
streams, the caller's own cancellation. Callers only ever see documented errors.

Calls go through ``rpcplugin.calls.Caller``, what generated clients use, to
:mod:`.relplugin`'s ``reliability.Typed`` service (:mod:`.typed`), served through
``rpcplugin.servicer`` as generated plugins are.
"""

from __future__ import annotations

import asyncio
import logging
import os

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue

import rpcplugin
from rpcplugin.calls import Caller

from .figures import record
from .kit import launch_rel, read_events, wait_event
from .typed import FLOOD, WAIT

IN_FLIGHT = 50


def assert_closed_during_call(error: BaseException, name: str) -> None:
    """The documented error of a call cut by close(), and nothing else."""
    assert type(error) is rpcplugin.ConnectionClosedDuringCall, repr(error)
    assert isinstance(error, rpcplugin.ConnectionClosedError)
    assert isinstance(error, rpcplugin.PluginError)
    assert isinstance(error, grpc.aio.AioRpcError)  # and so a grpc.RpcError
    assert error.code() == grpc.StatusCode.CANCELLED
    expected = f"connection closed by the host: plugin {name!r} was closed during the call"
    assert error.details() == expected
    assert str(error) == expected


@pytest.mark.parametrize("variant", ["plaintext", "grpc-tls", "openssl-tls"])
async def test_50_calls_in_flight_at_close_all_end_with_the_documented_error(
    warm_grpc: None, short_dir: str, variant: str
) -> None:
    """50 unary calls and 5 server streams in flight when close() begins: every one ends with
    ``ConnectionClosedDuringCall`` (never a bare ``asyncio.CancelledError``), and so does the
    stream's next read."""
    events = os.path.join(short_dir, "events")
    async with launch_rel(
        env={"REL_EVENTS": events}, unix_socket_dir=short_dir, variant=variant
    ) as conn:
        caller = Caller(conn)
        calls = [
            asyncio.ensure_future(caller.unary(WAIT, StringValue(value=str(i))))
            for i in range(IN_FLIGHT)
        ]
        streams = [caller.server_stream(FLOOD, None) for _ in range(5)]
        for stream in streams:
            await anext(stream)
        await wait_event(events, "wait", IN_FLIGHT, timeout=60)
        await conn.close()
    ended = await asyncio.gather(*calls, return_exceptions=True)
    kinds = sorted({type(e).__name__ for e in ended})
    print(f"\n{IN_FLIGHT} calls in flight at close() ({variant}) ended with: {kinds}")
    for error in ended:
        assert isinstance(error, BaseException)
        assert_closed_during_call(error, conn.name)
    for stream in streams:
        with pytest.raises(rpcplugin.ConnectionClosedDuringCall) as caught:
            while True:
                await anext(stream)
        assert_closed_during_call(caught.value, conn.name)
    record("lifecycle", cases=IN_FLIGHT + 5, faults=1)


async def test_a_call_after_close_is_a_connection_closed_error(
    warm_grpc: None, short_dir: str
) -> None:
    """Not grpc's internal ``UsageError: Channel is closed.``: every kind of call made after
    close() raises ``ConnectionClosedError`` at once, naming the plugin."""
    async with launch_rel(unix_socket_dir=short_dir) as conn:
        caller = Caller(conn)
        await conn.ping()
    expected = (
        f"plugin {conn.name!r}: the connection was closed by the host; no call can be made on "
        "it any more"
    )
    with pytest.raises(rpcplugin.ConnectionClosedError) as unary:
        await caller.unary(WAIT, None)
    with pytest.raises(rpcplugin.ConnectionClosedError) as stream:
        caller.server_stream(FLOOD, None)
    for caught in (unary, stream):
        assert type(caught.value) is rpcplugin.ConnectionClosedError
        assert str(caught.value) == expected
    record("lifecycle", cases=2)


async def test_the_callers_own_cancellation_stays_a_cancellation(
    warm_grpc: None, short_dir: str
) -> None:
    """A caller whose task is cancelled gets ``asyncio.CancelledError``, as any awaiting task
    does, even when close() begins meanwhile: only calls cut by the close are converted."""
    events = os.path.join(short_dir, "events")
    async with launch_rel(env={"REL_EVENTS": events}, unix_socket_dir=short_dir) as conn:
        caller = Caller(conn)
        own = asyncio.ensure_future(caller.unary(WAIT, None))
        await wait_event(events, "wait")
        own.cancel()
        with pytest.raises(asyncio.CancelledError):
            await own
        # the plugin sees the cancellation and its handler's finally runs
        await wait_event(events, "wait-finally")
    record("lifecycle", cases=1)


async def test_a_cancelled_stream_logs_nothing_and_its_finally_runs_at_once(
    warm_grpc: None, short_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A server stream whose handler waits at ``yield`` (flow control: the host reads one
    message of a flood), cancelled: the plugin logs nothing at ERROR (the context variable
    is not reset across contexts any more) and the handler's ``finally`` runs while the plugin
    keeps serving, not at garbage collection."""
    events = os.path.join(short_dir, "events")
    caplog.set_level(logging.DEBUG, logger="rpcplugin")
    async with launch_rel(env={"REL_EVENTS": events}, unix_socket_dir=short_dir) as conn:
        caller = Caller(conn)
        for round_ in range(1, 6):
            stream = caller.server_stream(FLOOD, None)
            await anext(stream)
            assert stream.cancel()
            await wait_event(events, "flood-finally", round_)
            with pytest.raises(StopAsyncIteration):
                await anext(stream)
        # the plugin still serves, and said nothing at ERROR meanwhile
        await conn.ping()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert [e[1] for e in read_events(events)].count("flood-finally") == 5
    record("lifecycle", cases=5)


async def test_a_balanced_connection_closed_under_calls_gives_the_same_errors(
    warm_grpc: None, short_dir: str
) -> None:
    """``connect_balanced`` (plugin servers in network mode): calls cut by its close() and a
    call after it get the same documented errors as a launched plugin's."""
    import socket
    import subprocess
    import sys

    from .kit import RELPLUGIN, wait_until

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events = os.path.join(short_dir, "events")
    env = {**os.environ, "RPCPLUGIN_LISTEN": f"127.0.0.1:{port}", "REL_EVENTS": events}
    server = subprocess.Popen(
        [sys.executable, str(RELPLUGIN)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        conn = await rpcplugin.connect_balanced([f"127.0.0.1:{port}"], ready_timeout=60)
        caller = Caller(conn)
        calls = [asyncio.ensure_future(caller.unary(WAIT, None)) for _ in range(10)]
        await wait_event(events, "wait", 10, timeout=60)
        await conn.close()
        ended = await asyncio.gather(*calls, return_exceptions=True)
        for error in ended:
            assert isinstance(error, BaseException)
            assert_closed_during_call(error, conn.name)
        with pytest.raises(rpcplugin.ConnectionClosedError) as after:
            await caller.unary(WAIT, None)
        assert type(after.value) is rpcplugin.ConnectionClosedError
    finally:
        server.terminate()
        assert await wait_until(lambda: server.poll() is not None, 30) is not None
    record("lifecycle", cases=11, faults=1)


@pytest.mark.parametrize("grpc_level", [logging.WARNING, logging.DEBUG], ids=["warn", "debug"])
def test_grpcs_error_for_a_send_to_a_cancelled_stream_becomes_debug(grpc_level: int) -> None:
    """The one ERROR a cancelled stream can still cause on a loaded machine is grpc's own: the
    send that failed because the client had just gone. The plugin demotes that record (and
    only that one) to DEBUG, shown when the libraries' level asks for it."""
    from rpcplugin.plugin.server import PeerGoneFilter

    logger = logging.getLogger("grpc._cython.cygrpc")
    saved = logger.level
    logger.setLevel(grpc_level)
    try:
        peer_gone = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "ExecuteBatchError raised in core by servicer method [%s]",
            ("/reliability.Typed/Flood",),
            None,
        )
        other = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "Unexpected error", (), None
        )
        passes = PeerGoneFilter().filter(peer_gone)
        assert (passes, peer_gone.levelname) == (grpc_level == logging.DEBUG, "DEBUG")
        assert PeerGoneFilter().filter(other) and other.levelname == "ERROR"
    finally:
        logger.setLevel(saved)
    record("lifecycle", cases=2)
