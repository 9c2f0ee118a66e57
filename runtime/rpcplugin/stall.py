"""The loop-stall detector: warn when a handler blocks the event loop.

Every RPC of a plugin is served by one asyncio event loop. A handler that blocks it (a
``time.sleep``, a blocking client, heavy CPU work in an ``async def``) delays every other call,
health checks included. :class:`StallWatch` is a daemon thread that asks the loop to run a tiny
callback every half threshold and notices when it has not run for longer than the threshold;
it then looks at which task the loop is running and, if that task is serving an RPC (the
servicer's map of running calls), logs one WARNING naming the method. Each method is named
once per watched loop (in a plugin: once per process); a stall outside any handler is reported
once too. A block longer than 1.5 times the threshold is always reported; a shorter one may be.

Started by a plugin server once its handshake line is out, or else on the first call a servicer
handles (``rpcplugin.servicer``), only when the threshold (``RPCPLUGIN_STALL_WARNING``) is above
zero; it ends with its loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["StallWatch"]

_log = logging.getLogger("rpcplugin.servicer")


class StallWatch:
    """Watches one event loop from a daemon thread; see the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threshold: float,
        running: Mapping[asyncio.Task[Any], str],
    ) -> None:
        """Watch ``loop``; ``running`` maps each task serving an RPC to its method (the servicer
        keeps it up to date)."""
        if threshold <= 0:
            raise ValueError(f"a stall threshold is a positive number of seconds, got {threshold}")
        self.loop: Final = loop
        self.threshold: Final = threshold
        self.warned: Final[set[str]] = set()
        self._running = running
        self._last = time.monotonic()
        self._posted = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="rpcplugin-stall-watch", daemon=True
        )

    def start(self) -> None:
        """Start watching (once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; the thread ends within half a threshold."""
        self._stop.set()

    def _beat(self) -> None:
        self._last = time.monotonic()
        self._posted = False

    def _watch(self) -> None:
        interval = self.threshold / 2
        while not self._stop.wait(interval):
            if self.loop.is_closed():
                return
            if not self.loop.is_running():  # stopped between runs: not a stall
                self._last = time.monotonic()
                continue
            stalled = time.monotonic() - self._last
            if stalled > self.threshold:
                self._report(stalled)
            if not self._posted:
                self._posted = True
                try:
                    self.loop.call_soon_threadsafe(self._beat)
                except RuntimeError:  # the loop was closed meanwhile
                    return

    def _report(self, stalled: float) -> None:
        task = asyncio.current_task(self.loop)
        method = self._running.get(task, "") if task is not None else ""
        if method in self.warned:
            return
        self.warned.add(method)
        if method:
            _log.warning(
                "%s kept the event loop from turning for %.2f s: every other call, health "
                "checks included, waited. Make it a plain `def` (it then runs on a worker "
                "thread) or await instead of blocking (docs/serving.md)",
                method,
                stalled,
                extra={"method": method, "blocked_s": round(stalled, 3)},
            )
        else:
            _log.warning(
                "the event loop did not turn for %.2f s, outside any RPC handler",
                stalled,
                extra={"blocked_s": round(stalled, 3)},
            )
