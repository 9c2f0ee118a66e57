"""``plugin.GRPCController/Shutdown`` (docs/protocol.md §6.2): reply, then stop the plugin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from ..protos import grpc_controller_pb2 as pb

SERVICE_NAME = "plugin.GRPCController"


class ControllerService:
    """Calls ``on_shutdown``, soon after replying, when the host asks the plugin to stop."""

    def __init__(self, on_shutdown: Callable[[], None]) -> None:
        self._on_shutdown = on_shutdown

    async def shutdown(
        self, request: pb.Empty, context: grpc.aio.ServicerContext[pb.Empty, pb.Empty]
    ) -> pb.Empty:
        # let the reply go out first, then stop
        asyncio.get_running_loop().call_later(0.005, self._on_shutdown)
        return pb.Empty()

    def handler(self) -> grpc.GenericRpcHandler:
        """The gRPC handler to register on a server."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Shutdown": grpc.unary_unary_rpc_method_handler(
                    self.shutdown,
                    request_deserializer=pb.Empty.FromString,
                    response_serializer=pb.Empty.SerializeToString,
                )
            },
        )


async def shutdown(channel: grpc.aio.Channel, timeout: float) -> None:
    """Host side: ask the plugin to stop (raises ``grpc.aio.AioRpcError``)."""
    method = channel.unary_unary(
        f"/{SERVICE_NAME}/Shutdown",
        request_serializer=pb.Empty.SerializeToString,
        response_deserializer=pb.Empty.FromString,
    )
    await method(pb.Empty(), timeout=timeout)
