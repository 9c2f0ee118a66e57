"""How a plugin process behaves at the OS level (P02, P27, P30, P31).

* stdout belongs to the handshake line: :func:`guard_stdout` moves the real fd 1 to a private
  descriptor and points fd 1 at stderr, so stray prints (and C libraries) cannot corrupt the
  handshake; after the handshake fd 1 goes to ``/dev/null``, which the host discards anyway, so
  that child processes do not inherit the host's stdout pipe.
* SIGINT is ignored: Ctrl-C reaches the whole process group and it is the host's job to stop
  the plugin (via ``GRPCController/Shutdown``).
* the plugin exits when its host dies (polling the parent pid), except in debug mode.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

_handshake_fd: int | None = None


def guard_stdout() -> None:
    """Reserve the real stdout for the handshake line. Idempotent; call it as early as possible
    (generated ``__main__`` modules call it before importing user code).

    With AutoMTLS (``PLUGIN_CLIENT_CERT``) it also starts making the plugin's certificate in the
    background, so that it is ready when the server needs it (:mod:`rpcplugin._wire.early_cert`).
    """
    global _handshake_fd
    if _handshake_fd is not None:
        return
    sys.stdout.flush()
    _handshake_fd = os.dup(1)
    os.set_inheritable(_handshake_fd, False)
    os.dup2(2, 1)
    if os.environ.get("PLUGIN_CLIENT_CERT"):
        from .._wire import early_cert

        if early_cert.wanted(os.environ):
            early_cert.start()


def release_stdout() -> None:
    """Undo :func:`guard_stdout` before any handshake was written: debug mode prints its
    reattach JSON to the real stdout (the developer's terminal), not to stderr."""
    global _handshake_fd
    if _handshake_fd is None or _handshake_fd < 0:
        return
    sys.stdout.flush()
    os.dup2(_handshake_fd, 1)
    os.close(_handshake_fd)
    _handshake_fd = None


def write_handshake(line: str) -> None:
    """Write the handshake line to the real stdout in one ``write`` and close it there."""
    global _handshake_fd
    guard_stdout()
    assert _handshake_fd is not None
    data = line.encode()
    view = memoryview(data)
    while view:
        written = os.write(_handshake_fd, view)
        view = view[written:]
    os.close(_handshake_fd)
    _handshake_fd = -1
    # nothing else belongs on the host's stdout pipe; children must not hold it open either
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def ignore_sigint() -> None:
    """Ignore SIGINT for the plugin's life (P27)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def watch_parent(on_death: Callable[[], None], interval: float = 1.0) -> None:
    """Call ``on_death`` once the process that started us is gone (P31).

    Polls ``getppid()``; reparenting means the host died. (``PR_SET_PDEATHSIG`` would fire when
    the host's *thread* that forked us exits, which Go hosts do not promise to keep alive.)
    """
    parent = os.getppid()
    if parent <= 1:
        return
    while True:
        await asyncio.sleep(interval)
        if os.getppid() != parent:
            on_death()
            return
