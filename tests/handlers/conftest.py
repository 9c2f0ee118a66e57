"""An in-process ``grpc.aio`` server of ``test.Echo`` on a unix socket, and a caller for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rpcplugin import servicer
from rpcplugin.calls import Caller

from .echo_service import SERVICE, Echo
from .inprocess import serving


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
def stall_warning() -> Iterator[None]:
    """The stall detector at 0.1 s for one test (for loops that start serving in it)."""
    servicer.configure(stall_warning=0.1)
    yield
    servicer.configure(stall_warning=0.5)


@pytest.fixture
async def caller(tmp_path: Path, echo: Echo) -> AsyncIterator[Caller]:
    async with serving(SERVICE.handler(echo), tmp_path) as caller:
        yield caller
