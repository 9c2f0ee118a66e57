"""Plain ``def`` servicer methods: run on the worker pool, with current_call(), request streams
read with ``for``, generators pulled on workers, cancellation, and the loop-stall detector."""

from __future__ import annotations

import asyncio
import functools
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2 as w

from rpcplugin.calls import Caller
from rpcplugin.servicer import Flavour, flavour_of

from .echo_service import (
    ASYNC_SUM,
    BLOCK_LOOP,
    SYNC_CHAT,
    SYNC_COUNT,
    SYNC_SUM,
    SYNC_UPPER,
    UPPER,
    Echo,
)

I = w.Int64Value  # noqa: E741


async def test_sync_methods_of_every_kind_run_on_workers(caller: Caller, echo: Echo) -> None:
    reply = await caller.unary(SYNC_UPPER, w.StringValue(value="hi"), metadata={"x-who": "ann"})
    assert reply.value == "HI|ann"  # current_call() works on the worker thread
    counted = [r.value async for r in caller.server_stream(SYNC_COUNT, I(value=3))]
    assert counted == [1, 2, 3]
    assert (await caller.client_stream(SYNC_SUM, [I(value=v) for v in (1, 2, 3)])).value == 6
    chat = caller.bidi_stream(SYNC_CHAT)
    await chat.send(w.StringValue(value="a"))
    assert (await anext(chat)).value == "re: a|rpcplugin-handler"
    await chat.send(w.StringValue(value="b"))
    assert (await anext(chat)).value == "re: b|rpcplugin-handler"
    await chat.done_writing()
    assert [r async for r in chat] == []
    assert echo.threads and all(t.startswith("rpcplugin-handler") for t in echo.threads)
    # async methods beside them: same request stream type, read with async for
    assert (await caller.client_stream(ASYNC_SUM, [I(value=v) for v in (4, 5)])).value == 9
    assert (await caller.unary(UPPER, w.StringValue(value="x"))).value == "X"


@pytest.mark.parametrize("how", ["cancel", "deadline"])
async def test_a_cancelled_client_stream_frees_the_blocked_worker(
    caller: Caller, echo: Echo, how: str
) -> None:
    queue: asyncio.Queue[I | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[I]:
        while (item := await queue.get()) is not None:
            yield item

    timeout = 0.5 if how == "deadline" else None
    call = asyncio.ensure_future(caller.client_stream(SYNC_SUM, requests(), timeout=timeout))
    await queue.put(I(value=1))
    assert await asyncio.to_thread(echo.started.wait, 10)
    if how == "cancel":
        call.cancel()  # the worker is blocked in `for request in requests`
    assert await asyncio.to_thread(echo.ended.wait, 10), "the worker stayed blocked"
    with pytest.raises((asyncio.CancelledError, grpc.aio.AioRpcError)):
        await call


async def test_closing_a_request_stream_wakes_a_waiting_worker() -> None:
    """What the runtime does when a call's task ends (e.g. the server stops): a worker waiting
    in ``next()`` gets CancelledError at once, and so does every later ``next()``."""
    from rpcplugin.workers import Requests

    never = asyncio.Event()

    async def source() -> AsyncIterator[int]:
        await never.wait()
        yield 1

    stream = Requests(source(), asyncio.get_running_loop())
    waiting = asyncio.ensure_future(asyncio.to_thread(next, stream))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    stream.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 10)
    with pytest.raises(asyncio.CancelledError):
        next(iter(stream))


async def test_a_cancelled_server_stream_closes_the_generator_on_a_worker(
    caller: Caller, echo: Echo
) -> None:
    stream = caller.server_stream(SYNC_COUNT, I(value=1000))
    assert (await anext(stream)).value == 1
    stream.cancel()
    assert await asyncio.to_thread(echo.ended.wait, 10), "the generator was never closed"
    assert echo.ending[0].startswith("rpcplugin-handler")
    assert len(echo.threads) < 1000


async def test_plain_for_in_an_async_method_is_refused(caller: Caller) -> None:
    from rpcplugin.workers import Requests

    async def source() -> AsyncIterator[int]:
        yield 1

    stream = Requests(source(), asyncio.get_running_loop())
    with pytest.raises(RuntimeError, match="would block the event loop"):
        next(stream)


class _Callable:
    def __call__(self, request: object) -> object:
        return request


class _AsyncCallable:
    async def __call__(self, request: object) -> object:
        return request


async def _coroutine(request: object, extra: int) -> object:
    return request


def _generator(request: object) -> Iterator[object]:
    yield request


async def _async_generator(request: object) -> AsyncIterator[object]:
    yield request


@pytest.mark.parametrize(
    ("fn", "flavour"),
    [
        (Echo().sync_upper, Flavour.SYNC),
        (Echo().upper, Flavour.ASYNC),
        (Echo().sync_count, Flavour.SYNC_GENERATOR),
        (_async_generator, Flavour.ASYNC_GENERATOR),
        (_generator, Flavour.SYNC_GENERATOR),
        (functools.partial(_coroutine, extra=1), Flavour.ASYNC),
        (functools.partial(functools.partial(_generator)), Flavour.SYNC_GENERATOR),
        (_Callable(), Flavour.SYNC),
        (_AsyncCallable(), Flavour.ASYNC),
        (len, Flavour.SYNC),
    ],
)
def test_flavour_of(fn: object, flavour: Flavour) -> None:
    assert flavour_of(fn) is flavour  # type: ignore[arg-type]


@pytest.mark.usefixtures("stall_warning")
async def test_a_handler_blocking_the_loop_is_named_once(
    caller: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rpcplugin.servicer"):
        for _ in range(2):
            reply = await caller.unary(BLOCK_LOOP, w.DoubleValue(value=0.5))
            assert reply.value == "blocked"
        await caller.unary(UPPER, w.StringValue(value="x"))
    # (a loaded machine may add a stall of its own elsewhere: only this method's are counted)
    warnings = [r.getMessage() for r in caplog.records if "BlockLoop" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "/test.Echo/BlockLoop kept the event loop from turning" in warnings[0]


@pytest.mark.usefixtures("stall_warning")
async def test_sync_handlers_do_not_stall_the_loop(
    caller: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    from .echo_service import SLEEP

    with caplog.at_level(logging.WARNING, logger="rpcplugin.servicer"):
        replies = await asyncio.gather(
            *(caller.unary(SLEEP, w.DoubleValue(value=0.4)) for _ in range(4))
        )
    assert all(r.value.startswith("slept|") for r in replies)
    assert not [r for r in caplog.records if "/test.Echo/Sleep" in r.getMessage()]


def test_async_only_servicers_import_no_thread_pool() -> None:
    code = (
        "import sys, asyncio, grpc\n"
        "from tests.handlers.echo_service import SERVICE\n"
        "from rpcplugin.servicer import Service\n"
        "only_async = Service('test.Echo', {'upper': SERVICE.methods['upper'],"
        " 'abort': SERVICE.methods['abort']})\n"
        "class Impl:\n"
        "    async def upper(self, r, /): return r\n"
        "    async def abort(self, r, /): return r\n"
        "only_async.handler(Impl())\n"
        "print(sorted(m for m in ('rpcplugin.workers', 'concurrent.futures.thread',"
        " 'rpcplugin.stall', 'rpcplugin.status', 'grpc_status') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert grpc.StatusCode.OK  # (grpc imported for the subprocess's sake only)
