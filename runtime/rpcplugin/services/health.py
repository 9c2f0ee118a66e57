"""``grpc.health.v1.Health`` on both sides, with a tiny hand codec (docs/protocol.md §6.1).

The messages are two fields in all (``service`` in the request, ``status`` in the reply), so
they are encoded by hand rather than through a generated module: that keeps the import cheap
and can never clash in the descriptor pool with another copy of ``grpc/health/v1/health.proto``
(grpcio-health-checking's, say) loaded into the same process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

SERVICE_NAME = "grpc.health.v1.Health"
PLUGIN_SERVICE = "plugin"
"""The service name go-plugin hosts check (Go's ``GRPCServiceName``)."""

UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN = 0, 1, 2, 3


def encode_request(service: str) -> bytes:
    """``HealthCheckRequest{service}`` on the wire."""
    data = service.encode()
    return (b"\x0a" + _varint(len(data)) + data) if data else b""


def decode_request(data: bytes) -> str:
    """The ``service`` field of a ``HealthCheckRequest``; unknown fields are skipped."""
    value = _field(data, 1, wire_type=2)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def encode_response(status: int) -> bytes:
    """``HealthCheckResponse{status}`` on the wire."""
    return (b"\x08" + _varint(status)) if status else b""


def decode_response(data: bytes) -> int:
    """The ``status`` field of a ``HealthCheckResponse``."""
    value = _field(data, 1, wire_type=0)
    return value if isinstance(value, int) else UNKNOWN


class HealthService:
    """Serves ``Check`` and ``Watch``; ``plugin`` and ``""`` are SERVING from the start.

    ``Watch`` streams every change, which is what gRPC's client-side health checking
    (service config ``healthCheckConfig``) follows: a server that turns NOT_SERVING leaves its
    clients' ``round_robin`` rotation before it stops (server mode drains this way).
    """

    def __init__(self) -> None:
        self._status = {PLUGIN_SERVICE: SERVING, "": SERVING}
        self._watchers: dict[str, set[asyncio.Queue[int]]] = {}

    def set(self, service: str, status: int) -> None:
        """Change the status reported for ``service`` (and tell its watchers)."""
        self._status[service] = status
        for queue in self._watchers.get(service, ()):
            queue.put_nowait(status)

    def set_all(self, status: int) -> None:
        """Change the status of every service this server reports."""
        for service in list(self._status):
            self.set(service, status)

    async def check(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        service = decode_request(request)
        status = self._status.get(service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
        return encode_response(status or UNKNOWN)

    async def watch(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        service = decode_request(request)
        queue: asyncio.Queue[int] = asyncio.Queue()
        self._watchers.setdefault(service, set()).add(queue)
        try:
            last = self._status.get(service, SERVICE_UNKNOWN)
            yield encode_response(last)
            while True:  # until the client cancels
                status = await queue.get()
                if status != last:
                    last = status
                    yield encode_response(status)
        finally:
            self._watchers[service].discard(queue)

    def methods(self) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        """Its method handlers by method name."""
        return {
            "Check": grpc.unary_unary_rpc_method_handler(self.check),
            "Watch": grpc.unary_stream_rpc_method_handler(self.watch),
        }

    def handler(self) -> grpc.GenericRpcHandler:
        """The gRPC handler to register on a server."""
        return grpc.method_handlers_generic_handler(SERVICE_NAME, self.methods())


async def check(
    channel: grpc.aio.Channel, service: str = PLUGIN_SERVICE, timeout: float | None = 5.0
) -> int:
    """Call ``Health/Check`` and return the status number (raises ``grpc.aio.AioRpcError``)."""
    method: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        f"/{SERVICE_NAME}/Check"
    )
    reply = await method(encode_request(service), timeout=timeout)
    return decode_response(reply)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _field(data: bytes, number: int, *, wire_type: int) -> int | bytes | None:
    """The last value of field ``number`` in a serialized message (proto3 semantics)."""
    found: int | bytes | None = None
    pos = 0
    try:
        while pos < len(data):
            tag, pos = _read_varint(data, pos)
            field_no, kind = tag >> 3, tag & 7
            value: int | bytes
            if kind == 0:
                value, pos = _read_varint(data, pos)
            elif kind == 2:
                length, pos = _read_varint(data, pos)
                value, pos = data[pos : pos + length], pos + length
            elif kind == 1:
                value, pos = 0, pos + 8
            elif kind == 5:
                value, pos = 0, pos + 4
            else:
                return found
            if field_no == number and kind == wire_type:
                found = value
    except ValueError:
        return found
    return found
