"""``plugin.GRPCController/Shutdown`` (docs/protocol.md §6.2): reply, then stop the plugin."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from ..protos import grpc_controller_pb2 as pb

SERVICE_NAME = "plugin.GRPCController"


class ControllerService:
    """Calls ``on_shutdown`` when the host asks the plugin to stop, once the reply is out."""

    def __init__(self, on_shutdown: Callable[[], None]) -> None:
        self._on_shutdown = on_shutdown

    async def shutdown(
        self, request: pb.Empty, context: grpc.aio.ServicerContext[pb.Empty, pb.Empty]
    ) -> pb.Empty:
        # stop when this call has ended (its reply sent), not before and not on a timer.
        # grpc-stubs types the callback as a class of its own that no function can be
        context.add_done_callback(self._replied)  # type: ignore[arg-type]
        return pb.Empty()

    def _replied(self, _context: object) -> None:
        self._on_shutdown()

    def methods(self) -> dict[str, grpc.RpcMethodHandler[pb.Empty, pb.Empty]]:
        """Its method handlers by method name."""
        return {
            "Shutdown": grpc.unary_unary_rpc_method_handler(
                self.shutdown,
                request_deserializer=pb.Empty.FromString,
                response_serializer=pb.Empty.SerializeToString,
            )
        }


async def shutdown(channel: grpc.aio.Channel, timeout: float) -> None:
    """Host side: ask the plugin to stop (raises ``grpc.aio.AioRpcError``)."""
    method = channel.unary_unary(
        f"/{SERVICE_NAME}/Shutdown",
        request_serializer=pb.Empty.SerializeToString,
        response_deserializer=pb.Empty.FromString,
    )
    await method(pb.Empty(), timeout=timeout)
