"""A plugin child process as the host sees it: start, first stdout line, drained pipes, exit.

* The exit is noticed the moment it happens (a ``pidfd`` watched by the event loop on Linux,
  a short poll elsewhere), whether or not a grandchild still holds the pipes open.
* stdout: the first line is the handshake; everything after it is drained and discarded.
* stderr: drained continuously line by line (64 KiB lines, like go-plugin), each line handed to
  a callback, the last lines kept for error messages.
* Every child still running when the host's interpreter exits is SIGKILLed (H06).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import subprocess
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from ..errors import HandshakeError, PluginExitedError, StartTimeoutError
from .watchdog import WATCHDOG

MAX_LINE = 64 * 1024
TAIL_LINES = 20

_live: weakref.WeakSet[PluginProcess] = weakref.WeakSet()


def kill_all() -> None:
    """SIGKILL every launched plugin process of this host not yet reaped, closing or not."""
    for process in list(_live):
        process.kill()


def _kill_leftovers() -> None:
    kill_all()
    for process in list(_live):
        process.remove_private_dirs()


atexit.register(_kill_leftovers)


class _LineSplitter(asyncio.Protocol):
    """Reads a pipe to EOF, calling ``on_line`` for each line (longer lines come in pieces)."""

    def __init__(self, on_line: Callable[[bytes], None]) -> None:
        self._on_line = on_line
        self._partial = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._partial += data
        while True:
            end = self._partial.find(b"\n")
            if end < 0:
                break
            line = bytes(self._partial[:end])
            del self._partial[: end + 1]
            self._emit(line)
        while len(self._partial) >= MAX_LINE:
            piece = bytes(self._partial[:MAX_LINE])
            del self._partial[:MAX_LINE]
            self._emit(piece)

    def _emit(self, line: bytes) -> None:
        try:
            self._on_line(line)
        except Exception:  # a bad callback must not stop the draining
            import logging

            logging.getLogger("rpcplugin.host").exception("plugin output callback failed")

    def eof_received(self) -> bool | None:
        if self._partial:
            self._emit(bytes(self._partial))
            self._partial.clear()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _splitter_factory(on_line: Callable[[bytes], None]) -> Callable[[], _LineSplitter]:
    return lambda: _LineSplitter(on_line)


class PluginProcess:
    """One launched plugin executable. Create with :meth:`start`."""

    def __init__(self, popen: subprocess.Popen[bytes], argv: Sequence[str]) -> None:
        self._popen = popen
        self.argv = list(argv)
        self.pid = popen.pid
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = loop.create_future()
        self._first_line: asyncio.Future[bytes] = loop.create_future()
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._on_stderr: Callable[[bytes], None] | None = None
        self._pipes: list[tuple[asyncio.BaseTransport, _LineSplitter]] = []
        self._pidfd: int | None = None
        self._poller: asyncio.Task[None] | None = None
        self.stdout_lines_discarded = 0
        self.private_dirs: list[str] = []
        """Directories made for this process alone (its socket dir); removed after the reap."""
        _live.add(self)

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        on_stderr_line: Callable[[bytes], None] | None = None,
    ) -> PluginProcess:
        """Start ``argv`` with exactly ``env``; stdin is ``/dev/null`` (plugins must not read)."""
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
        WATCHDOG.add_process(popen.pid)  # SIGKILLed by the watchdog if this process dies
        process = cls(popen, argv)
        process._on_stderr = on_stderr_line
        loop = asyncio.get_running_loop()
        assert popen.stdout is not None and popen.stderr is not None
        try:
            for pipe, handler in (
                (popen.stdout, process._stdout_line),
                (popen.stderr, process._stderr_line),
            ):
                transport, protocol = await loop.connect_read_pipe(_splitter_factory(handler), pipe)
                process._pipes.append((transport, protocol))
            process._watch_exit()
        except BaseException:  # cancelled while the pipes were being wired: undo the start
            process._abandon()
            raise
        return process

    def _abandon(self) -> None:
        """SIGKILL, reap and close every pipe of a process whose start did not complete."""
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(1.0)  # SIGKILLed: immediate
        if self._popen.returncode is not None:
            WATCHDOG.remove_process(self.pid)
        for transport, _ in self._pipes:
            transport.close()
        for pipe in (self._popen.stdout, self._popen.stderr):
            if pipe is not None:
                pipe.close()  # those not yet handed to a transport (closing twice is harmless)
        _live.discard(self)

    # -- output ---------------------------------------------------------------------------
    def _stdout_line(self, line: bytes) -> None:
        if not self._first_line.done():
            self._first_line.set_result(line)
        else:
            self.stdout_lines_discarded += 1

    def _stderr_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        self._tail.append(text if len(text) <= 2000 else text[:2000] + "...")
        if self._on_stderr is not None:
            self._on_stderr(line)

    def stderr_tail(self) -> str:
        """The last lines the plugin wrote to stderr."""
        return "\n".join(self._tail)

    async def first_line(self, timeout: float) -> bytes:
        """The first stdout line (the handshake). Raises :class:`PluginExitedError` if the
        process exits first, :class:`StartTimeoutError` after ``timeout`` seconds."""
        stdout_closed = self._pipes[0][1].closed
        waiters: set[asyncio.Future[bytes] | asyncio.Future[int] | asyncio.Future[None]] = {
            self._first_line,
            self.exited,
            stdout_closed,
        }
        done, _ = await asyncio.wait(
            waiters,
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._first_line.done():  # (a last line without a newline arrives with the EOF)
            return self._first_line.result()
        if stdout_closed in done and not self.exited.done():
            # EOF on stdout: an exiting plugin closes it just before its exit is seen
            await self.wait(0.25)
        if stdout_closed in done and not self.exited.done():
            # go-plugin fails at once here too ("Failed to read any lines from plugin's stdout")
            await self.drain_stderr(0.1)
            raise HandshakeError(
                f"plugin {self.argv[0]!r} (pid {self.pid}) closed its stdout without printing "
                "a handshake line"
                + (f"; last stderr lines:\n{self.stderr_tail()}" if self._tail else ""),
            )
        if self.exited.done():
            await self.drain_stderr(0.5)
            raise PluginExitedError(
                f"plugin {self.argv[0]!r} exited before printing its handshake line",
                returncode=self.exited.result(),
                stderr_tail=self.stderr_tail(),
            )
        raise StartTimeoutError(
            f"plugin {self.argv[0]!r} printed no handshake line within {timeout:g} s"
            + (
                f"; last stderr lines:\n{self.stderr_tail()}"
                if self._tail
                else "; it wrote nothing to stderr"
            )
        )

    async def drain_stderr(self, timeout: float) -> None:
        """Give stderr a moment to reach EOF, so the tail holds the last words."""
        stderr = self._pipes[1][1] if len(self._pipes) > 1 else None
        if stderr is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(stderr.closed), timeout)

    def exit_error(self, context: str) -> PluginExitedError:
        """A :class:`PluginExitedError` for an exit that has happened."""
        return PluginExitedError(
            f"plugin {self.argv[0]!r} (pid {self.pid}) exited {context}",
            returncode=self.exited.result() if self.exited.done() else None,
            stderr_tail=self.stderr_tail(),
        )

    # -- exit -----------------------------------------------------------------------------
    def _watch_exit(self) -> None:
        loop = asyncio.get_running_loop()
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except OSError:
                self._pidfd = None
        if self._pidfd is not None:
            loop.add_reader(self._pidfd, self._on_pidfd)
        else:
            self._poller = loop.create_task(self._poll_exit())

    def _on_pidfd(self) -> None:
        self._reap()

    async def _poll_exit(self) -> None:
        while not self.exited.done():
            await asyncio.sleep(0.02)
            self._reap()

    def _reap(self) -> None:
        code = self._popen.poll()
        if code is None or self.exited.done():
            return
        if self._pidfd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self.exited.set_result(code)
        WATCHDOG.remove_process(self.pid)
        _live.discard(self)

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has exited and been reaped."""
        return self.exited.result() if self.exited.done() else None

    def kill(self) -> None:
        """SIGKILL the process (never SIGINT/SIGTERM: go-plugin plugins ignore SIGINT)."""
        if self._popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signal.SIGKILL)

    async def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for the exit; True if it exited."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        return self.exited.done()

    async def aclose(self) -> None:
        """Kill if still running, reap, and close every pipe and descriptor we hold."""
        if not self.exited.done():
            self.kill()
            if not await self.wait(5.0):  # pragma: no cover - SIGKILL cannot be ignored
                self._popen.wait()
                self._reap()
        for transport, _ in self._pipes:
            transport.close()
        if self._poller is not None:
            self._poller.cancel()
        self.remove_private_dirs()
        _live.discard(self)

    def remove_private_dirs(self) -> None:
        """Remove :attr:`private_dirs` and whatever the plugin left in them (its sockets)."""
        import shutil

        for directory in self.private_dirs:
            shutil.rmtree(directory, ignore_errors=True)
            WATCHDOG.remove_path(directory)
        self.private_dirs.clear()

    def __repr__(self) -> str:
        state = "running" if not self.exited.done() else f"exited {self.exited.result()}"
        return f"<PluginProcess pid={self.pid} {state} argv={self.argv!r}>"
