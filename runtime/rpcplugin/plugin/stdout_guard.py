"""How a plugin process behaves at the OS level (P02, P27, P30, P31).

* stdout belongs to the handshake line: :func:`guard_stdout` moves the real fd 1 to a private
  descriptor and points fd 1 at stderr, so stray prints (and C libraries) cannot corrupt the
  handshake; after the handshake fd 1 goes to ``/dev/null``, which the host discards anyway, so
  that child processes do not inherit the host's stdout pipe.
* stderr goes through a forwarding pipe when it is a pipe (P30): fd 2 becomes the write end of
  a pipe of our own, and a thread copies it to the host's pipe, which only this process holds.
  A child the plugin starts inherits our pipe, not the host's: when the plugin dies the host
  sees EOF at once, however long the child lives (go-plugin's ``Kill()`` waits for that EOF).
* SIGINT is ignored: Ctrl-C reaches the whole process group and it is the host's job to stop
  the plugin (via ``GRPCController/Shutdown``).
* the plugin exits when its host dies (polling the parent pid), except in debug mode.
* the cyclic garbage collector is paused from :func:`guard_stdout` until the handshake line is
  out: start-up allocates tens of thousands of objects and frees almost none, so the
  collector's passes over them (about 10 ms of CPU, 5 % of a cold start) bought nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import select
import signal
import stat
import sys
import threading
from collections.abc import Callable

_handshake_fd: int | None = None
_forwarder: _StderrForwarder | None = None
_gc_paused = False


class _StderrForwarder:
    """Copies our own stderr pipe to the host's (P30). :meth:`flush` is exact: a byte on a
    control pipe asks the thread to forward everything already in the data pipe and answer."""

    def __init__(self, read_end: int, host_fd: int) -> None:
        self.read_end = read_end
        self.host_fd = host_fd
        self.control_read, self.control_write = os.pipe()
        self.flushed = threading.Event()
        self.thread = threading.Thread(target=self._pump, name="rpcplugin-stderr", daemon=True)

    def _pump(self) -> None:
        poller = select.poll()
        poller.register(self.read_end, select.POLLIN)
        poller.register(self.control_read, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self.read_end in ready and not self._forward():
                return  # EOF: nobody writes to our pipe any more
            if self.control_read in ready:
                os.read(self.control_read, 64)
                while _readable(poller, self.read_end) and self._forward():
                    pass
                self.flushed.set()

    def _forward(self) -> bool:
        try:
            data = os.read(self.read_end, 65536)
        except OSError:
            return False
        if not data:
            return False
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.host_fd, view) :]
        except OSError:
            pass  # the host closed its end: drop the output, keep draining ours
        return True

    def flush(self, timeout: float) -> None:
        self.flushed.clear()
        os.write(self.control_write, b"f")
        self.flushed.wait(timeout)


def _readable(poller: select.poll, fd: int) -> bool:
    """Whether ``fd`` (registered with ``poller``) can be read without blocking now."""
    return any(ready == fd for ready, _ in poller.poll(0))


def forward_stderr() -> None:
    """P30: put a pipe of our own between fd 2 and the host's stderr pipe (only when fd 2 is a
    pipe; a terminal or a file needs none). Idempotent; :func:`guard_stdout` calls it."""
    global _forwarder
    if _forwarder is not None or sys.platform == "win32":
        return
    try:
        if not stat.S_ISFIFO(os.fstat(2).st_mode):
            return
    except OSError:
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    host_fd = os.dup(2)
    os.set_inheritable(host_fd, False)
    read_end, write_end = os.pipe()  # neither end is inherited by children
    os.dup2(write_end, 2)  # fd 2 is: children get our pipe, never the host's
    os.close(write_end)
    _forwarder = _StderrForwarder(read_end, host_fd)
    _forwarder.thread.start()
    import atexit

    atexit.register(flush_stderr)


def flush_stderr(timeout: float = 2.0) -> None:
    """Return once everything written to stderr so far has reached the host (at most
    ``timeout`` seconds): call before ``os._exit``, which would drop what the forwarding
    thread has not copied yet."""
    if _forwarder is None or not _forwarder.thread.is_alive():
        return
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    _forwarder.flush(timeout)


def guard_stdout() -> None:
    """Reserve the real stdout for the handshake line. Idempotent; call it as early as possible
    (generated ``__main__`` modules call it before importing user code).

    With AutoMTLS (``PLUGIN_CLIENT_CERT``) it also starts making the plugin's certificate in the
    background, so that it is ready when the server needs it (:mod:`rpcplugin._wire.early_cert`).
    It also pauses the cyclic garbage collector until the handshake line is out (or
    :func:`release_stdout`), which saves about 5 % of a cold start.
    """
    global _handshake_fd, _gc_paused
    if _handshake_fd is not None:
        return
    if gc.isenabled():
        gc.disable()
        _gc_paused = True
    sys.stdout.flush()
    _handshake_fd = os.dup(1)
    os.set_inheritable(_handshake_fd, False)
    forward_stderr()
    os.dup2(2, 1)
    if os.environ.get("PLUGIN_CLIENT_CERT"):
        from .._wire import early_cert

        if early_cert.wanted(os.environ):
            early_cert.start()


def release_stdout() -> None:
    """Undo :func:`guard_stdout` before any handshake was written: debug mode prints its
    reattach JSON to the real stdout (the developer's terminal), not to stderr."""
    global _handshake_fd
    resume_gc()
    if _handshake_fd is None or _handshake_fd < 0:
        return
    sys.stdout.flush()
    os.dup2(_handshake_fd, 1)
    os.close(_handshake_fd)
    _handshake_fd = None


def resume_gc() -> None:
    """End the collector's start-up pause (see the module docstring), if :func:`guard_stdout`
    made one. What start-up built moves to the permanent generation first (:func:`gc.freeze`),
    so that the first collection does not walk all of it on the first call: the few hundred
    objects start-up left unreachable stay allocated, a one-off of a few kilobytes."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


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
    resume_gc()


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
