"""Helpers for the host-side tests (issue 3): plugins, leak snapshots, small RPC helpers.

A plain module rather than ``conftest.py``: test modules import it by name, which stays
unambiguous however many ``conftest.py`` files the suite has.

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
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

import rpcplugin

HOST_DIR = Path(__file__).resolve().parent
TESTS_DIR = HOST_DIR.parent
MISBEHAVING = TESTS_DIR / "peers" / "misbehaving.py"
SERVED = [sys.executable, str(HOST_DIR / "served_plugin.py")]

MB_HANDSHAKE = rpcplugin.Handshake("MISBEHAVE_PLUGIN", "yes")
SERVED_HANDSHAKE = rpcplugin.Handshake("HOSTTEST_PLUGIN", "served")
GO_HANDSHAKE = rpcplugin.Handshake("RPCPLUGIN_CONFORMANCE", "conformance-v1")

PROMPT = 10.0
"""A bound that only a hang can exceed (issue 18 §6). What a test proves "at once" it proves by
an event, an exit status or an error type (the slow path it rules out takes longer or fails
otherwise), never by racing the clock of a loaded machine."""

LEAK_WAIT = 10.0
"""Seconds the leak check polls for descriptors and children to go: gRPC closes some sockets
late, from its own threads, which a CPU hog on both cores can hold off for seconds (a loaded
run saw two sockets still open after 3 s). A real leak stays past any bound."""


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
        # the host's watchdog (one per process, started by the first launch) is no leak
        from rpcplugin.host.watchdog import WATCHDOG

        fds, kids = open_fds(), children()
        fds.pop(WATCHDOG.fd if WATCHDOG.fd is not None else -1, None)
        kids.pop(WATCHDOG.pid if WATCHDOG.pid is not None else -1, None)
        return cls(fds, kids)

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
