"""An in-process ``grpc.aio`` server of ``test.Echo`` on a unix socket, and a caller for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from rpcplugin import servicer
from rpcplugin.calls import Caller

from .echo_service import SERVICE, Echo


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
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((SERVICE.handler(echo),))
    address = f"unix:{tmp_path}/s.sock"
    server.add_insecure_port(address)
    await server.start()
    async with grpc.aio.insecure_channel(address) as channel:
        yield Caller(channel)
    await server.stop(None)
