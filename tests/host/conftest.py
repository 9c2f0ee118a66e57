"""Fixtures for the host-side tests (helpers: :mod:`hostkit`).

Every test here runs under :func:`no_leaks` (autouse): it records this process's open file
descriptors and child processes before the test and, after it, waits up to a few seconds for
both to be back where they were, then asserts it; the private socket directory a test hands to
the host (:func:`sock_dir`) must be empty by then too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from hostkit import MB_HANDSHAKE, Snapshot, mb, wait_for_no_leaks

import rpcplugin

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
    rejected (``test_misbehaving.test_rejected_handshake_leaves_no_socket`` checks it is left
    empty: each launch gets its own subdirectory, removed after the reap)."""
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
