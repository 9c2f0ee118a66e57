"""``plugin.GRPCBroker/StartStream`` (PROTOCOL.md §5.5).

The host opens this stream right after connecting and keeps it for the session. The service
records every ``ConnInfo`` the host announces, so brokered dials can find them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc

from .protos import grpc_broker_pb2 as pb

SERVICE_NAME = "plugin.GRPCBroker"


class BrokerService:
    """Keeps the broker stream open and records the host's announcements."""

    def __init__(self) -> None:
        self.announced: dict[int, tuple[pb.ConnInfo, float]] = {}
        self._outgoing: asyncio.Queue[pb.ConnInfo] = asyncio.Queue()
        self._closed = asyncio.Event()

    def close(self) -> None:
        """End the stream now (at shutdown), rather than holding the server's grace period."""
        self._closed.set()

    async def start_stream(
        self,
        requests: AsyncIterator[pb.ConnInfo],
        context: grpc.aio.ServicerContext[pb.ConnInfo, pb.ConnInfo],
    ) -> AsyncIterator[pb.ConnInfo]:
        reader = asyncio.ensure_future(self._read(requests))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while not reader.done() and not closed.done():
                getter = asyncio.ensure_future(self._outgoing.get())
                done, _ = await asyncio.wait(
                    {getter, reader, closed}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
        finally:
            reader.cancel()
            closed.cancel()

    async def _read(self, requests: AsyncIterator[pb.ConnInfo]) -> None:
        async for info in requests:
            self.announced[info.service_id] = (info, time.monotonic())

    def handler(self) -> grpc.GenericRpcHandler:
        """The gRPC handler to register on a server."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "StartStream": grpc.stream_stream_rpc_method_handler(
                    self.start_stream,
                    request_deserializer=pb.ConnInfo.FromString,
                    response_serializer=pb.ConnInfo.SerializeToString,
                )
            },
        )


class HostBroker:
    """The host's end of the broker stream: opened right after connecting (H05), it records
    the plugin's announcements. A plugin without a broker is fine (the error is ignored, as
    go-plugin does)."""

    def __init__(self) -> None:
        self.announced: dict[int, tuple[pb.ConnInfo, float]] = {}
        self._call: grpc.aio.StreamStreamCall[pb.ConnInfo, pb.ConnInfo] | None = None

    async def run(self, channel: grpc.aio.Channel) -> None:
        """Read the stream until the channel closes or :meth:`stop` is called."""
        method: grpc.aio.StreamStreamMultiCallable[pb.ConnInfo, pb.ConnInfo]
        method = channel.stream_stream(
            f"/{SERVICE_NAME}/StartStream",
            request_serializer=pb.ConnInfo.SerializeToString,
            response_deserializer=pb.ConnInfo.FromString,
        )
        self._call = call = method()
        try:
            while True:
                info = await call.read()
                if info is grpc.aio.EOF:
                    return
                assert isinstance(info, pb.ConnInfo)
                self.announced[info.service_id] = (info, time.monotonic())
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            return

    async def announce(self, info: pb.ConnInfo) -> None:
        """Send a ``ConnInfo`` to the plugin."""
        if self._call is None:
            raise RuntimeError("the broker stream is not open")
        await self._call.write(info)

    def stop(self) -> None:
        """End the stream."""
        if self._call is not None:
            self._call.cancel()
