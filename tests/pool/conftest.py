"""Fixtures of the pool tests: the leak check of the host tests (descriptors, children, socket
files), reused through :mod:`hostkit`."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

HERE = Path(__file__).resolve().parent
HOST_TESTS = HERE.parent / "host"
if str(HOST_TESTS) not in sys.path:
    sys.path.insert(0, str(HOST_TESTS))

from hostkit import Snapshot, wait_for_no_leaks  # noqa: E402

_pinned: list[grpc.aio.Channel] = []


@pytest.fixture(scope="session")
def warm_grpc() -> None:
    """Pin gRPC's process-wide descriptors with one channel held for the session (as the host
    tests do), so that leak baselines include them; load the TLS stack once."""

    async def pin() -> None:
        _pinned.append(grpc.aio.insecure_channel("unix:/nonexistent/pinned-by-the-pool-tests"))
        from rpcplugin._wire import mtls

        mtls.generate_certificate()

    asyncio.run(pin())


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A short private directory for the members' sockets (checked empty afterwards)."""
    path = tempfile.mkdtemp(prefix="rpp-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
async def no_leaks(warm_grpc: None, sock_dir: str) -> AsyncIterator[Snapshot]:
    """No descriptor, child process or socket file left behind by the test."""
    before = Snapshot.take()
    yield before
    problems = await wait_for_no_leaks(before, timeout=10.0)
    left = os.listdir(sock_dir)
    if left:
        problems.append(f"files left in the socket directory: {left}")
    assert not problems, "\n".join(problems)
