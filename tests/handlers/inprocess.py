"""A servicer's handler behind a real ``grpc.aio`` server in this process, on a unix socket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio

from rpcplugin.calls import Caller


@contextlib.asynccontextmanager
async def serving(handler: grpc.GenericRpcHandler, directory: Path) -> AsyncIterator[Caller]:
    """A :class:`Caller` on a channel to a server of ``handler``; the server stops on exit."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    address = f"unix:{directory}/s.sock"
    server.add_insecure_port(address)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            yield Caller(channel)
    finally:
        await server.stop(None)
