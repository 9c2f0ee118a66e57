"""Shared pieces of the operations tests: a small echo service, plain grpc.aio servers and a
plugin served in debug mode on a known loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc

import rpcplugin
from rpcplugin.services.health import HealthService

HANDSHAKE = rpcplugin.Handshake("OPS_TEST_PLUGIN", "ops")


class Echo:
    """``ops.Echo``: Say (unary), Many (server stream), Gather (client stream), Chat (bidi).
    Counts the calls that reached it, so tests can tell a refused call never ran."""

    def __init__(self) -> None:
        self.served = 0
        self.clients: list[str | None] = []

    async def say(self, request: bytes, context: Any) -> bytes:
        from rpcplugin.ops.auth import current_client

        self.served += 1
        self.clients.append(current_client())
        if request == b"fail":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "asked to fail")
        return request

    async def many(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        self.served += 1
        for _ in range(3):
            yield request

    async def gather(self, requests: AsyncIterator[bytes], context: Any) -> bytes:
        self.served += 1
        return b"".join([r async for r in requests])

    async def chat(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        self.served += 1
        async for request in requests:
            yield request

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "ops.Echo",
            {
                "Say": grpc.unary_unary_rpc_method_handler(self.say),
                "Many": grpc.unary_stream_rpc_method_handler(self.many),
                "Gather": grpc.stream_unary_rpc_method_handler(self.gather),
                "Chat": grpc.stream_stream_rpc_method_handler(self.chat),
            },
        )


def say(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary("/ops.Echo/Say")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def plain_server(
    address: str,
    echo: Echo,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> grpc.aio.Server:
    """A bare grpc.aio server with health and ``ops.Echo`` (what a plugin server serves)."""
    server = grpc.aio.server(interceptors=list(interceptors) or None)
    server.add_generic_rpc_handlers((HealthService().handler(), echo.handler()))
    if credentials is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, credentials)
    await server.start()
    return server


@contextlib.asynccontextmanager
async def served(
    echo: Echo,
    env: Mapping[str, str] | None = None,
    *,
    shutdown_metadata: Sequence[tuple[str, str]] = (),
    **serve_kwargs: Any,
) -> AsyncIterator[str]:
    """``rpcplugin.serve_async`` in debug mode on 127.0.0.1:<free port>; yields the address
    and stops the plugin through GRPCController/Shutdown afterwards."""
    port = free_port()
    full_env = {
        "RPCPLUGIN_DEBUG": "1",
        "RPCPLUGIN_TRANSPORT": "tcp",
        "PLUGIN_MIN_PORT": str(port),
        "PLUGIN_MAX_PORT": str(port),
        **(env or {}),
    }
    runtime_logger = logging.getLogger("rpcplugin")
    saved = (runtime_logger.level, list(runtime_logger.handlers), runtime_logger.propagate)
    task = asyncio.ensure_future(
        rpcplugin.serve_async(
            HANDSHAKE, {1: [echo.handler()]}, env=full_env, **{"name": "ops", **serve_kwargs}
        )
    )
    address = f"127.0.0.1:{port}"
    try:
        for _ in range(200):
            if task.done():
                raise AssertionError(f"serve_async ended with {task.result()}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.01)
        yield address
    finally:
        if not task.done():
            async with grpc.aio.insecure_channel(address) as channel:
                shutdown = channel.unary_unary("/plugin.GRPCController/Shutdown")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await shutdown(b"", timeout=2.0, metadata=tuple(shutdown_metadata))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 5)
        if not task.done():
            task.cancel()
        runtime_logger.setLevel(saved[0])
        runtime_logger.handlers[:] = saved[1]
        runtime_logger.propagate = saved[2]
