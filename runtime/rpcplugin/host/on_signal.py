"""``close_on_signals()``: SIGTERM and SIGINT close every connection in order, then end the
process as the signal would have."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence

from .connection import open_connections
from .process import kill_all

log = logging.getLogger("rpcplugin.host")


def close_on_signals(
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> Callable[[], None]:
    """Opt in: on the first of ``signals``, close every open connection of this process
    (Shutdown, then SIGKILL after the usual bounds, as ``close()`` does), then restore the
    signal's previous handling and deliver it again, so that the process ends as it would
    have (SIGTERM: killed by SIGTERM; SIGINT: ``KeyboardInterrupt``). A second signal while
    closing SIGKILLs the launched plugins and delivers it at once.

    Call it from the running event loop, in the main thread (asyncio's
    ``loop.add_signal_handler``). Returns a function that removes the handlers again. Without
    it, a host killed by a signal still leaves no plugin behind (the watchdog SIGKILLs them),
    but they get no Shutdown call.
    """
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Task[None]] = []

    def uninstall() -> None:
        for signum in signals:
            loop.remove_signal_handler(signum)

    def deliver(signum: signal.Signals) -> None:
        uninstall()
        signal.raise_signal(signum)

    async def close_all(signum: signal.Signals) -> None:
        connections = open_connections()
        log.info("%s: closing %d plugin connections", signum.name, len(connections))
        await asyncio.gather(*(conn.close() for conn in connections), return_exceptions=True)
        deliver(signum)

    def on_signal(signum: signal.Signals) -> None:
        if pending:  # the second signal: no more waiting
            kill_all()
            deliver(signum)
            return
        pending.append(loop.create_task(close_all(signum)))

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    return uninstall
