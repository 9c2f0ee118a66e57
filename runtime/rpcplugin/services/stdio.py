"""``plugin.GRPCStdio`` (docs/protocol.md §6.3): the plugin's ``sys.stdout``/``sys.stderr`` output,
streamed to the host after the handshake.

Writers never block: output goes into a bounded buffer that drops its oldest bytes when full,
whether or not a host is listening (go-plugin 1.0.x hosts never call ``StreamStdio``; a Go plugin
under such a host eventually hangs on a print, ours does not). Structured logs do not come this
way: they go to the real fd 2 as hclog lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TextIO

import grpc

if TYPE_CHECKING:
    from ..protos import grpc_stdio_pb2 as pb

SERVICE_NAME = "plugin.GRPCStdio"
STDOUT, STDERR = 1, 2
"""``StdioData.Channel`` numbers (the buffer and the capture need no protobuf, the service does)."""
CHUNK = 64 * 1024


class StdioBuffer:
    """A thread-safe, bounded queue of ``(channel, bytes)`` chunks with one async reader."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._chunks: deque[tuple[int, bytes]] = deque()
        self._size = 0
        self._lock = threading.Lock()
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._generation = 0
        self._closed = False

    def write(self, channel: int, data: bytes) -> None:
        """Queue ``data``; drop the oldest chunks beyond the limit. Never blocks, any thread."""
        if not data:
            return
        with self._lock:
            for start in range(0, len(data), CHUNK):
                piece = data[start : start + CHUNK]
                self._chunks.append((channel, piece))
                self._size += len(piece)
            while self._size > self.limit and self._chunks:
                _, old = self._chunks.popleft()
                self._size -= len(old)
                self.dropped += len(old)
            waiter = self._waiter
        if waiter is not None:
            loop, event = waiter
            # a closed loop raises RuntimeError: nobody is reading any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def _take(self) -> list[tuple[int, bytes]]:
        with self._lock:
            chunks = list(self._chunks)
            self._chunks.clear()
            self._size = 0
            return chunks

    def close(self) -> None:
        """End the reader once it has sent what is queued (at shutdown, so that the server
        does not spend its grace period waiting for this stream)."""
        with self._lock:
            self._closed = True
            waiter = self._waiter
        if waiter is not None:
            with contextlib.suppress(RuntimeError):
                waiter[0].call_soon_threadsafe(waiter[1].set)

    async def read(self) -> AsyncIterator[tuple[int, bytes]]:
        """Yield chunks as they come. A newer reader takes over and this one ends."""
        event = asyncio.Event()
        with self._lock:
            self._generation += 1
            generation = self._generation
            previous, self._waiter = self._waiter, (asyncio.get_running_loop(), event)
        if previous is not None:  # wake the reader we replace, so that it ends
            with contextlib.suppress(RuntimeError):
                previous[0].call_soon_threadsafe(previous[1].set)
        try:
            while True:
                for chunk in self._take():
                    yield chunk
                if self._generation != generation:
                    return
                await event.wait()
                event.clear()
                if self._closed:  # send what is left, then end
                    for chunk in self._take():
                        yield chunk
                    return
                if self._generation != generation:
                    return
        finally:
            with self._lock:
                if self._generation == generation:
                    self._waiter = None


class _BinaryChannel(io.RawIOBase):
    def __init__(self, buffer: StdioBuffer, channel: int) -> None:
        self._buffer, self._channel = buffer, channel

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buffer.write(self._channel, bytes(data))
        return len(data)


class CapturedStream(io.TextIOBase):
    """A text stream that feeds one stdio channel; installed as ``sys.stdout``/``sys.stderr``."""

    def __init__(self, buffer: StdioBuffer, channel: int, name: str) -> None:
        self._buffer, self._channel, self._name = buffer, channel, name
        self.buffer = _BinaryChannel(buffer, channel)

    encoding = "utf-8"
    errors = "backslashreplace"

    @property
    def name(self) -> str:
        return self._name

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._buffer.write(self._channel, text.encode("utf-8", "backslashreplace"))
        return len(text)


def capture(buffer: StdioBuffer) -> tuple[TextIO, TextIO]:
    """Point ``sys.stdout`` and ``sys.stderr`` at ``buffer``; returns the previous streams."""
    previous = (sys.stdout, sys.stderr)
    sys.stdout = CapturedStream(buffer, STDOUT, "<stdout>")
    sys.stderr = CapturedStream(buffer, STDERR, "<stderr>")
    return previous


class StdioService:
    """Serves ``StreamStdio`` from a :class:`StdioBuffer`."""

    def __init__(self, buffer: StdioBuffer) -> None:
        from ..protos import grpc_stdio_pb2

        self._buffer = buffer
        self._message = grpc_stdio_pb2.StdioData

    async def stream(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, pb.StdioData]
    ) -> AsyncIterator[pb.StdioData]:
        message = self._message
        async for channel, data in self._buffer.read():
            yield message(channel=channel, data=data)  # type: ignore[arg-type]

    def methods(self) -> dict[str, grpc.RpcMethodHandler[bytes, pb.StdioData]]:
        """Its method handlers by method name."""
        return {
            "StreamStdio": grpc.unary_stream_rpc_method_handler(
                self.stream, response_serializer=self._message.SerializeToString
            )
        }
