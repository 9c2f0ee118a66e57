"""The suite's side of :mod:`bench.worker`: start a worker, send it commands, stop it."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from . import prep


class WorkerError(RuntimeError):
    """A worker answered with an error, died, or did not answer in time."""


class Worker:
    """One implementation's host process (``python -m bench.worker IMPL``)."""

    def __init__(
        self,
        impl: str,
        python: Path | str,
        *,
        pb_dir: Path,
        socket_dir: Path,
        extra_env: dict[str, str] | None = None,
        extra_path: list[str] | None = None,
        stderr: IO[bytes] | None = None,
    ) -> None:
        self.impl = impl
        env = dict(os.environ)
        for key in list(env):
            if key.startswith(("PLUGIN_", "RPCPLUGIN_")):
                del env[key]
        env.update(
            BENCH_PB_DIR=str(pb_dir),
            PLUGIN_UNIX_SOCKET_DIR=str(socket_dir),
            PYTHONPATH=os.pathsep.join([str(prep.ROOT), *(extra_path or [])]),
        )
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [str(python), "-m", "bench.worker", impl],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=prep.ROOT,
        )
        assert self.proc.stdout is not None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._buffer = b""

    def call(self, op: str, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
        """Send one command; return its reply or raise :class:`WorkerError`."""
        if self.proc.poll() is not None:
            raise WorkerError(f"{self.impl} worker exited with {self.proc.returncode}")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        command = {"op": op, "timeout": timeout, **args}
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout + 10
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                self.kill()
                raise WorkerError(f"{self.impl} worker did not answer {op} in {timeout:g} s")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise WorkerError(f"{self.impl} worker exited during {op}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"{self.impl}: {reply['error']}")
        return reply

    def close(self) -> None:
        """Ask the worker to close its sessions and exit; kill it if it takes too long."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(b'{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._selector.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
