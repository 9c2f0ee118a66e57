"""Helpers shared by the reliability tests: launching :mod:`relplugin`, raw calls, leak counts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from hostkit import Snapshot, pid_running, wait_for_no_leaks

import rpcplugin

from .figures import leaks

HERE = Path(__file__).resolve().parent
RELPLUGIN = HERE / "relplugin.py"
REL_ARGV = [sys.executable, str(RELPLUGIN)]
REL_HANDSHAKE = rpcplugin.Handshake("RELIABILITY_PLUGIN", "reliability-v1")
SERVICE = "reliability.Probe"

TLS_VARIANTS: dict[str, dict[str, Any]] = {
    "plaintext": {"auto_mtls": False},
    "grpc-tls": {"auto_mtls": True, "tls_backend": "grpc"},
    "openssl-tls": {"auto_mtls": True, "tls_backend": "openssl"},
}
"""How the host talks to the plugin: no TLS, grpcio's TLS, or the OpenSSL relay on both sides
(``tls_backend`` is the host's choice; the plugin picks grpcio's TLS for our P-256 host
certificate unless ``RPCPLUGIN_TLS_BACKEND=openssl``)."""


def tls_kwargs(variant: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``launch()`` keywords and plugin environment for a TLS variant."""
    kwargs = dict(TLS_VARIANTS[variant])
    env = {"RPCPLUGIN_TLS_BACKEND": "openssl"} if variant == "openssl-tls" else {}
    return kwargs, env


def launch_rel(
    *,
    env: dict[str, str] | None = None,
    transport: str = "unix",
    variant: str = "grpc-tls",
    **kw: Any,
) -> rpcplugin.Opening:
    """Launch :mod:`relplugin` over ``transport`` with TLS ``variant``."""
    kwargs, tls_env = tls_kwargs(variant)
    kwargs.update(kw)
    full_env = {"RPCPLUGIN_TRANSPORT": transport, "PYTHONDONTWRITEBYTECODE": "1", **tls_env}
    full_env.update(env or {})
    kwargs.setdefault("start_timeout", 20.0)
    return rpcplugin.launch(REL_ARGV, handshake=REL_HANDSHAKE, versions=[1], env=full_env, **kwargs)


async def unary(
    conn: rpcplugin.PluginConnection | grpc.aio.Channel,
    method: str,
    data: bytes = b"",
    timeout: float | None = 10.0,
) -> bytes:
    channel = conn if isinstance(conn, grpc.aio.Channel) else conn.channel
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        f"/{SERVICE}/{method}"
    )
    return await call(data, timeout=timeout)


def stream(
    conn: rpcplugin.PluginConnection, n: int, size: int = 16, timeout: float | None = 30.0
) -> grpc.aio.UnaryStreamCall[bytes, bytes]:
    call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = conn.channel.unary_stream(
        f"/{SERVICE}/Count"
    )
    return call(f"{n} {size}".encode(), timeout=timeout)


def read_events(path: str) -> list[tuple[float, str, str]]:
    if not os.path.exists(path):
        return []
    found = []
    with open(path) as handle:
        for line in handle:
            stamp, _, rest = line.rstrip("\n").partition(" ")
            name, _, detail = rest.partition(" ")
            found.append((float(stamp), name, detail))
    return found


async def wait_event(path: str, name: str, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until ``path`` holds ``count`` events called ``name``."""
    deadline = time.monotonic() + timeout
    while sum(1 for e in read_events(path) if e[1] == name) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {count}x {name!r} event in {path} after {timeout} s")
        await asyncio.sleep(0.005)


def files_under(*directories: str) -> list[str]:
    """Every entry below ``directories`` (the directories themselves excluded)."""
    found: list[str] = []
    for directory in directories:
        for root, dirs, files in os.walk(directory):
            found += [os.path.join(root, name) for name in dirs + files]
    return sorted(found)


def sockets_under(*directories: str) -> list[str]:
    found = []
    for path in files_under(*directories):
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                found.append(path)
    return found


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


async def wait_until(
    done: Callable[[], bool], timeout: float, since: float | None = None
) -> float | None:
    """Seconds from ``since`` (default: now) until ``done()`` holds, or None after
    ``timeout`` (polled every 5 ms)."""
    start = time.monotonic() if since is None else since
    while not done():
        if time.monotonic() - start > timeout:
            return None
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def wait_gone(pid: int, timeout: float, since: float | None = None) -> float | None:
    """Seconds until ``pid`` is gone (or a zombie): :func:`wait_until`."""
    return await wait_until(lambda: not pid_running(pid), timeout, since)


async def wait_empty(directory: str, timeout: float, since: float | None = None) -> float | None:
    """Seconds until nothing is left under ``directory``: :func:`wait_until`."""
    return await wait_until(lambda: not files_under(directory), timeout, since)


def kill(pid: int, signum: int = signal.SIGKILL) -> None:
    """Signal a process this test caused to exist."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


async def check_leaks(area: str, before: Snapshot, *dirs: str) -> list[str]:
    """Descriptors and children back to ``before`` and nothing left in ``dirs``; each problem
    found is counted as a leak under ``area``."""
    problems = await wait_for_no_leaks(before)
    left = files_under(*dirs)
    if left:
        problems.append(f"left behind: {left}")
    return leaks(area, problems)


@contextlib.asynccontextmanager
async def quiet_logs(*names: str) -> AsyncIterator[None]:
    """Silence loggers for runs that launch hundreds of plugins on purpose."""
    import logging

    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names or ("rpcplugin",)]
    for logger, _ in saved:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def explained(conn: rpcplugin.PluginConnection) -> Callable[[grpc.aio.AioRpcError], Any]:
    """What a generated client does with a failed call: ask the connection to explain it."""
    return conn.explain_failure
