"""No orphans, whatever kills the host: a watchdog process per host, and a sweep of what dead
hosts left behind.

An exit hook cannot clean up after SIGKILL (nor after SIGTERM's default action, which runs no
Python code). So the first launch of a process starts one small watchdog: ``python -I -S -c``
running :data:`WATCHDOG_CODE`, whose stdin is a pipe that only the host holds open. The host
tells it, one JSON line at a time, which plugin processes (pid and kernel start time) and which
directories are live; when the host dies *in any way*, the kernel closes the pipe, the watchdog
reads EOF, SIGKILLs each plugin still registered (after checking its start time, so a reused
pid is never hit) and removes the directories. It ignores SIGINT, SIGTERM and SIGHUP: a Ctrl-C
sent to the whole process group must reach the host first, and the watchdog then follows it.

Why not ``PR_SET_PDEATHSIG``: it must be set in the child between fork and exec (a
``preexec_fn``, unsafe with gRPC's threads, or an exec wrapper), it fires when the *thread*
that forked exits (an event loop in a worker thread would kill its plugins early), and it
removes no directory. The watchdog covers all three, for any executable, at the cost of one
process per host (about 9 MiB) started once.

The directories a host makes for its plugins (``rpcplugin-<random>``) hold a ``host.pid`` marker;
:func:`sweep_dead_hosts` removes those whose host is no longer running (it runs on a launch, once
per directory and process), for the cases the watchdog cannot cover (it was itself SIGKILLed
with the host, or the machine lost power).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from typing import Any

log = logging.getLogger("rpcplugin.host")

WATCHDOG_CODE = r"""
import json, os, shutil, signal, stat, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
def started(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
procs, dirs = {}, set()
for line in sys.stdin.buffer:
    try:
        op, arg, *rest = json.loads(line)
    except ValueError:
        continue
    if op == "p+":
        procs[arg] = rest[0]
    elif op == "p-":
        procs.pop(arg, None)
    elif op == "d+":
        dirs.add(arg)
    elif op == "d-":
        dirs.discard(arg)
for pid, start in procs.items():
    if start is None or started(pid) == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
for path in dirs:
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            shutil.rmtree(path, ignore_errors=True)
        elif stat.S_ISSOCK(mode):
            os.unlink(path)
    except OSError:
        pass
"""
"""What the watchdog runs (standard library only; ``-I -S``: no site, no user environment)."""

HOST_MARKER = "host.pid"
"""The file in a directory the host made (its plugin's socket dir, the OpenSSL relay's) that
names the host's pid, for :func:`sweep_dead_hosts`. A marker rather than a longer directory
name: unix socket paths are limited to 103 bytes."""


def mark_owner(directory: str) -> None:
    """Write :data:`HOST_MARKER` (this process's pid) into ``directory``."""
    fd = os.open(os.path.join(directory, HOST_MARKER), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


def owner_of(directory: str) -> int | None:
    """The pid in ``directory``'s :data:`HOST_MARKER`, or None without a readable one."""
    try:
        with open(os.path.join(directory, HOST_MARKER)) as handle:
            text = handle.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdecimal() else None


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (``/proc/PID/stat`` field 22), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Watchdog:
    """The host's side of the watchdog: a registry replayed to a new watchdog if one dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None
        self._procs: dict[int, str | None] = {}
        self._dirs: set[str] = set()
        self._failed = False

    # -- what the launcher calls ----------------------------------------------------------
    def add_process(self, pid: int) -> None:
        """Kill ``pid`` if this process dies before :meth:`remove_process`."""
        with self._lock:
            start = start_time(pid)
            self._procs[pid] = start
            self._send(["p+", pid, start])

    def remove_process(self, pid: int) -> None:
        """``pid`` was reaped: forget it."""
        with self._lock:
            if self._procs.pop(pid, False) is not False:
                self._send(["p-", pid])

    def add_path(self, path: str) -> None:
        """Remove ``path`` (a directory, with everything in it, or a unix socket) if this
        process dies before :meth:`remove_path`."""
        with self._lock:
            self._dirs.add(path)
            self._send(["d+", path])

    def remove_path(self, path: str) -> None:
        """``path`` was removed: forget it."""
        with self._lock:
            if path in self._dirs:
                self._dirs.discard(path)
                self._send(["d-", path])

    @property
    def pid(self) -> int | None:
        """The watchdog's pid, once started."""
        return self._process.pid if self._process is not None else None

    @property
    def fd(self) -> int | None:
        """This process's end of the watchdog's pipe, once started."""
        return self._fd

    # -- the pipe -------------------------------------------------------------------------
    def _send(self, message: list[Any]) -> None:
        if self._failed:
            return
        line = (json.dumps(message) + "\n").encode()
        for _ in range(2):
            if self._fd is None and not self._start():
                return
            assert self._fd is not None
            try:
                os.write(self._fd, line)  # a few dozen bytes: atomic, and the pipe holds 64 KiB
                return
            except OSError:  # the watchdog died (somebody killed it): start another one
                self._stop()
        self._failed = True

    def _start(self) -> bool:
        """Start a watchdog and tell it everything registered so far."""
        read_end, write_end = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", WATCHDOG_CODE],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as exc:
            os.close(write_end)
            self._failed = True
            log.warning(
                "cannot start the host watchdog (%s): plugins of a host killed by a signal "
                "will outlive it",
                exc,
            )
            return False
        finally:
            os.close(read_end)
        self._fd = write_end
        replay = [["p+", pid, start] for pid, start in self._procs.items()]
        replay += [["d+", path] for path in self._dirs]
        if replay:
            os.write(self._fd, "".join(json.dumps(m) + "\n" for m in replay).encode())
        return True

    def _stop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.poll()  # reap it if it is gone
            self._process = None

    def close(self) -> None:
        """At interpreter exit: close the pipe (the watchdog kills what is still registered,
        as the exit hook of :mod:`.process` does) and reap the watchdog."""
        with self._lock:
            process = self._process
            self._stop()
        if process is not None:
            with contextlib.suppress(Exception):
                process.wait(1.0)

    def _forked(self) -> None:
        """In a forked child: the pipe is the parent's; holding it would keep the parent's
        watchdog from seeing the parent die, so close it and start afresh."""
        self._lock = threading.Lock()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._process = None
        self._procs.clear()
        self._dirs.clear()
        self._failed = False


WATCHDOG = Watchdog()
"""This process's watchdog (started by the first launch)."""

atexit.register(WATCHDOG.close)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=WATCHDOG._forked)

_swept: set[str] = set()


def sweep_dead_hosts(parent: str) -> list[str]:
    """Remove the private directories in ``parent`` of hosts that are no longer running (once
    per directory and process); returns what was removed. Only directories owned by this user,
    named ``rpcplugin-…`` with a :data:`HOST_MARKER` naming a pid that does not exist or is a
    zombie, unchanged for
    :data:`SWEEP_AGE` seconds and with no socket anybody listens on."""
    if parent in _swept:
        return []
    _swept.add(parent)
    removed: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        if not entry.name.startswith("rpcplugin-"):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        owner = owner_of(entry.path)
        if owner is None or owner == os.getpid() or _running(owner) or not _stale(entry.path):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    if removed:
        log.debug("removed %d directories of dead hosts: %s", len(removed), removed)
    return removed


SWEEP_AGE = 30.0
"""Seconds a dead host's directory must be unchanged before it is swept."""


def _stale(path: str) -> bool:
    """Unchanged for :data:`SWEEP_AGE` seconds and no socket in it that anybody listens on: a
    guard for hosts whose pid we cannot see (another pid namespace sharing the temp dir)."""
    import socket
    import stat
    import time

    try:
        if time.time() - os.stat(path).st_mtime < SWEEP_AGE:
            return False
        for root, _, files in os.walk(path):
            for name in files:
                candidate = os.path.join(root, name)
                if not stat.S_ISSOCK(os.lstat(candidate).st_mode):
                    continue
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.settimeout(0.2)
                    if probe.connect_ex(candidate) == 0:
                        return False
    except OSError:
        return False
    return True


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass
    try:  # no /proc: ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
