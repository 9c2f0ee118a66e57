"""Fixtures of the reliability suite, and the one-line summary printed at the end of a session
that ran any of it (see :mod:`.figures`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from .figures import SOAK, TALLY, detail_lines, summary_line

HERE = Path(__file__).resolve().parent
HOST_TESTS = HERE.parent / "host"
if str(HOST_TESTS) not in sys.path:
    sys.path.insert(0, str(HOST_TESTS))  # hostkit: the host tests' leak snapshots, reused

_pinned: list[grpc.aio.Channel] = []


@pytest.fixture(scope="session")
def warm_grpc() -> None:
    """Pin gRPC's process-wide descriptors (epoll, eventfd, a socket pair) with one channel
    held for the session, so that leak baselines already include them (as tests/host does),
    and load the TLS stack once."""

    async def pin() -> None:
        _pinned.append(grpc.aio.insecure_channel("unix:/nonexistent/pinned-by-reliability"))
        from rpcplugin._wire import mtls

        mtls.generate_certificate()

    asyncio.run(pin())


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A fresh directory with a short path (unix socket paths stay under 104 bytes)."""
    path = tempfile.mkdtemp(prefix="rel-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY.areas:
        return
    failed = [
        report
        for report in terminalreporter.stats.get("failed", [])
        if "tests/reliability/" in getattr(report, "nodeid", "")
        or "reliability/" in getattr(report, "nodeid", "")
    ]
    if SOAK or os.environ.get("RELIABILITY_DETAIL") == "1":
        for line in detail_lines():
            terminalreporter.write_line(line)
    terminalreporter.write_line(summary_line(len(failed)))
