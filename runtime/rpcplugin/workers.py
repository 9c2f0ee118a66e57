"""Running plain ``def`` servicer methods: the worker threads and what bridges them to the loop.

Imported only when a servicer has a plain (non-async) method, and the thread pool itself is
created on the first such call, so a plugin of ``async def`` methods never starts a thread.

- :func:`run`: call a function on a worker, in a copy of the caller's context (so
  ``current_call()`` works there), and await its result on the loop.
- :class:`Requests`: a call's incoming messages, readable both with ``async for`` on the loop
  and with ``for`` on a worker (each ``next()`` waits for the loop to deliver the next request).
  Once the call's task has ended, a worker's ``next()`` raises ``asyncio.CancelledError``
  instead of waiting.
- :func:`pull`: the items of a plain iterator (a generator), each taken on a worker.

A worker that never returns cannot be stopped from outside (Python has no way to interrupt a
thread): its call is answered (cancelled) at once, but the worker stays busy until the code
returns. The pool is bounded, so such handlers can use up the pool, never more threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final, Generic, TypeVar, final

__all__ = ["Requests", "configure", "pull", "run"]

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_threads: int | None = None
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_END: Final = object()


def configure(threads: int) -> None:
    """Set the pool's size (``RPCPLUGIN_HANDLER_THREADS``); takes effect when the pool is made.

    A pool that already exists keeps its size (the server configures before serving)."""
    global _threads
    if threads < 1:
        raise ValueError(f"a worker pool needs at least one thread, got {threads}")
    _threads = threads


def _the_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    pool = _pool
    if pool is None:
        with _lock:
            if _pool is None:
                size = _threads if _threads is not None else _threads_from_env()
                _pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=size, thread_name_prefix="rpcplugin-handler"
                )
            pool = _pool
    return pool


def _threads_from_env() -> int:
    import os

    from .config import handler_threads

    return handler_threads(os.environ)


async def run(fn: Callable[[T], R], arg: T) -> R:
    """``fn(arg)`` on a worker thread, in a copy of the current context."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_the_pool(), context.run, fn, arg)


async def pull(items: Iterator[T]) -> AsyncIterator[T]:
    """The items of ``items``, each ``next()`` taken on a worker in a copy of the current
    context. When the consumer stops early (the call ended), the generator is closed on a
    worker too, once the ``next()`` in progress has returned."""
    context = contextvars.copy_context()
    pool = _the_pool()
    step: concurrent.futures.Future[object] | None = None
    try:
        while True:
            step = pool.submit(context.run, _next_or_end, items)
            item = await asyncio.wrap_future(step)
            if item is _END:
                return
            yield item  # type: ignore[misc]  # not _END, so a T
    finally:
        close = getattr(items, "close", None)
        if callable(close):
            if step is not None and not step.done() and not step.cancel():
                # a worker is inside next(): close the generator once that returns
                step.add_done_callback(lambda _: _submit(pool, context, close))
            else:
                _submit(pool, context, close)


def _submit(
    pool: concurrent.futures.Executor, context: contextvars.Context, fn: Callable[[], object]
) -> None:
    with contextlib.suppress(RuntimeError):  # the interpreter is exiting: nothing to close for
        pool.submit(context.run, fn)


def _next_or_end(items: Iterator[T]) -> object:
    return next(items, _END)


@final
class Requests(Generic[T]):
    """A call's requests for a handler: ``async for`` on the loop, ``for`` on a worker thread.

    Satisfies ``rpcplugin.servicer.RequestStream``. :meth:`close` (the runtime calls it when the
    call's task ends, e.g. cancelled as the server stops) makes a worker's pending and later
    ``next()`` raise ``asyncio.CancelledError``. (When the client cancels or the deadline passes,
    grpc first ends the requests as if the client had finished, for ``async for`` too: the
    worker's loop ends, and the handler's reply is discarded.)
    """

    __slots__ = ("_closed", "_loop", "_reading", "_source")

    def __init__(self, source: AsyncIterator[T], loop: asyncio.AbstractEventLoop) -> None:
        self._source = source
        self._loop = loop
        self._closed = False
        self._reading: asyncio.Task[Any] | None = None

    def __aiter__(self) -> Requests[T]:
        return self

    async def __anext__(self) -> T:
        return await anext(self._source)

    def __iter__(self) -> Requests[T]:
        return self

    def __next__(self) -> T:
        if self._closed:
            raise asyncio.CancelledError("the call has ended")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError(
                "a plain `for` over the requests would block the event loop: use `async for` "
                "in an `async def` method, or make the method a plain `def` (it then runs on a "
                "worker thread)"
            )
        try:
            item = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
        except concurrent.futures.CancelledError:
            raise asyncio.CancelledError("the call has ended") from None
        if item is _END:
            raise StopIteration
        return item  # type: ignore[return-value]  # not _END, so a T

    async def _next(self) -> object:
        """The next request or ``_END``; runs on the loop, cancelled by :meth:`close`."""
        if self._closed:
            raise asyncio.CancelledError
        self._reading = asyncio.current_task()
        try:
            return await anext(self._source)
        except StopAsyncIteration:
            return _END
        finally:
            self._reading = None

    def close(self) -> None:
        """The call has ended: wake a worker waiting for a request (on the loop's thread)."""
        self._closed = True
        if self._reading is not None:
            self._reading.cancel()
