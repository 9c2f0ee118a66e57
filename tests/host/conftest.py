"""Fixtures and helpers for the host-side tests (issue 3: launch, reattach, connect).

Every test here runs under :func:`no_leaks` (autouse): it records this process's open file
descriptors and child processes before the test and, after it, waits up to a few seconds for
both to be back where they were, then asserts it; the private socket directory a test hands to
the host (:func:`sock_dir`) must be empty by then too.

Plugins used:

- ``tests/peers/misbehaving.py`` (:func:`mb`): hand-rolled on grpc.aio, misbehaves on request;
- ``tests/host/served_plugin.py`` (:data:`SERVED`): served by ``rpcplugin.serve``;
- the go-plugin 1.0.1 plugin built by ``tests/gopeers.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

import rpcplugin

HOST_DIR = Path(__file__).resolve().parent
TESTS_DIR = HOST_DIR.parent
MISBEHAVING = TESTS_DIR / "peers" / "misbehaving.py"
SERVED = [sys.executable, str(HOST_DIR / "served_plugin.py")]

MB_HANDSHAKE = rpcplugin.Handshake("MISBEHAVE_PLUGIN", "yes")
SERVED_HANDSHAKE = rpcplugin.Handshake("HOSTTEST_PLUGIN", "served")
GO_HANDSHAKE = rpcplugin.Handshake("RPCPLUGIN_CONFORMANCE", "conformance-v1")

LEAK_WAIT = 3.0
"""Seconds the leak check waits for descriptors and children to go (gRPC closes some late)."""


def mb(*args: str | int) -> list[str]:
    """The argv of the misbehaving plugin in ``args`` mode."""
    return [sys.executable, str(MISBEHAVING), *(str(a) for a in args)]


# -- what this process holds --------------------------------------------------------------
def open_fds() -> dict[int, str]:
    """This process's open descriptors and what they point to."""
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return fds


def children() -> dict[int, str]:
    """Processes whose parent is this process (zombies included), pid → ``state comm``."""
    me = os.getpid()
    found: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == me:
            found[int(name)] = f"{fields[0]} {comm}"
    return found


def pid_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


@dataclass
class Snapshot:
    fds: dict[int, str]
    children: dict[int, str]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(open_fds(), children())

    def leaks_since(self, before: Snapshot) -> list[str]:
        problems = []
        if len(self.fds) > len(before.fds):
            new_fds = {fd: t for fd, t in self.fds.items() if before.fds.get(fd) != t}
            problems.append(f"open fds {len(before.fds)} -> {len(self.fds)}; new: {new_fds}")
        new_children = {p: s for p, s in self.children.items() if p not in before.children}
        if new_children:
            problems.append(f"child processes left: {new_children}")
        return problems


async def wait_for_no_leaks(before: Snapshot, timeout: float = LEAK_WAIT) -> list[str]:
    """Poll until nothing leaked since ``before``; the problems left after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        problems = Snapshot.take().leaks_since(before)
        if not problems or time.monotonic() >= deadline:
            return problems
        await asyncio.sleep(0.02)


_pinned: list[grpc.aio.Channel] = []


def _warm_up() -> None:
    """gRPC opens six process-wide descriptors (epoll, eventfd, a socket pair) when its first
    object is made and closes them when its last one is collected, which a test's traceback can
    delay past the leak check. One channel held for the whole session pins them, so every
    baseline already has them; per-connection descriptors are still counted."""

    async def pin() -> grpc.aio.Channel:
        return grpc.aio.insecure_channel("unix:/nonexistent/pinned-by-the-host-tests")

    _pinned.append(asyncio.run(pin()))

    async def once() -> None:
        async with rpcplugin.launch(
            mb("ok"), handshake=MB_HANDSHAKE, versions=[1], tls_backend="openssl"
        ) as conn:
            await conn.ping()
        async with rpcplugin.launch(mb("ok"), handshake=MB_HANDSHAKE, versions=[1]) as conn:
            await conn.ping()

    asyncio.run(once())


@pytest.fixture(scope="session")
def warm_grpc() -> None:
    _warm_up()


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A private, short socket directory for ``unix_socket_dir=`` (checked empty afterwards)."""
    path = tempfile.mkdtemp(prefix="rph-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def unchecked_sock_dir() -> Iterator[str]:
    """A socket directory the leak check does not inspect, for plugins whose handshake line is
    rejected: the host cannot know where such a plugin put its socket (see
    ``test_misbehaving.test_rejected_handshake_leaves_no_socket``, a strict xfail)."""
    path = tempfile.mkdtemp(prefix="rpu-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
async def no_leaks(warm_grpc: None, sock_dir: str) -> AsyncIterator[Snapshot]:
    """Assert that the test left no descriptor, child process or socket file behind."""
    before = Snapshot.take()
    yield before
    problems = await wait_for_no_leaks(before)
    left = os.listdir(sock_dir)
    if left:
        problems.append(f"files left in the socket directory: {left}")
    assert not problems, "\n".join(problems)


# -- small helpers ------------------------------------------------------------------------
async def probe(
    conn: rpcplugin.PluginConnection,
    method: str,
    data: bytes = b"",
    *,
    service: str = "misbehaving.Probe",
    timeout: float | None = 5.0,
) -> bytes:
    """Call a raw-bytes method of a test plugin."""
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = conn.channel.unary_unary(
        f"/{service}/{method}"
    )
    return await call(data, timeout=timeout)


async def probe_json(
    conn: rpcplugin.PluginConnection, method: str, service: str = "misbehaving.Probe"
) -> Any:
    return json.loads(await probe(conn, method, service=service))


def read_events(path: str) -> list[tuple[float, str, str]]:
    """The misbehaving plugin's events file: ``(monotonic, name, detail)``."""
    if not os.path.exists(path):
        return []
    events = []
    with open(path) as handle:
        for line in handle:
            stamp, _, rest = line.rstrip("\n").partition(" ")
            name, _, detail = rest.partition(" ")
            events.append((float(stamp), name, detail))
    return events


def event_names(path: str) -> list[str]:
    return [name for _, name, _ in read_events(path)]


def kill_quietly(pid: int) -> None:
    """SIGKILL a process the test caused to exist (not one of the host's)."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class Clock:
    """``with Clock() as t: ...; t.seconds``."""

    def __enter__(self) -> Clock:
        self.start = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.start
