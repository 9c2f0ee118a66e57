"""Where a launched plugin's output goes: stderr lines become log records (H07), and
``GRPCStdio`` chunks go to the caller's sinks."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from typing import IO, Any

import grpc

from .. import hclog
from ..protos import grpc_stdio_pb2

log = logging.getLogger("rpcplugin.host")

StdioSink = Callable[[bytes], object] | IO[bytes] | IO[str]
"""Where ``GRPCStdio`` output goes: a callable taking bytes, or a binary or text file."""


def stderr_logger(logger: logging.Logger, name: str) -> Callable[[bytes], None]:
    """H07: each plugin stderr line becomes a :mod:`logging` record; nothing here can raise."""

    def on_line(raw: bytes) -> None:
        entry = hclog.parse_line(raw.decode("utf-8", "replace"))
        if not logger.isEnabledFor(entry.level):
            return
        extra = {"plugin": name, "plugin_fields": entry.fields}
        if entry.module:
            extra["plugin_module"] = entry.module
        logger.log(entry.level, "%s", entry.message, extra=extra)

    return on_line


def sink_writer(sink: StdioSink | None, default: IO[str]) -> Callable[[bytes], object]:
    """A function writing bytes to ``sink`` (``default`` when None), whatever kind it is."""
    target: StdioSink = default if sink is None else sink
    if callable(target):
        return target
    stream = target

    def write(data: bytes) -> None:
        binary: Any = getattr(stream, "buffer", None)
        if binary is None and (
            isinstance(stream, io.RawIOBase | io.BufferedIOBase)
            or "b" in getattr(stream, "mode", "")
        ):
            binary = stream
        if binary is not None:
            binary.write(data)
        else:
            text: Any = stream
            text.write(data.decode("utf-8", "replace"))
        with contextlib.suppress(Exception):
            stream.flush()

    return write


async def copy_stdio(
    channel: grpc.aio.Channel,
    stdout: Callable[[bytes], object] | None,
    stderr: Callable[[bytes], object] | None,
) -> None:
    """Copy the plugin's GRPCStdio stream to the sinks; tolerate plugins without it."""
    method: grpc.aio.UnaryStreamMultiCallable[bytes, grpc_stdio_pb2.StdioData]
    method = channel.unary_stream(
        "/plugin.GRPCStdio/StreamStdio",
        request_serializer=None,
        response_deserializer=grpc_stdio_pb2.StdioData.FromString,
    )
    try:
        async for chunk in method(b""):
            if not isinstance(chunk, grpc_stdio_pb2.StdioData) or not chunk.data:
                continue
            sink = {
                grpc_stdio_pb2.StdioData.STDOUT: stdout,
                grpc_stdio_pb2.StdioData.STDERR: stderr,
            }.get(chunk.channel)
            if sink is not None:
                try:
                    sink(chunk.data)
                except Exception:
                    log.exception("plugin stdio sink failed")
    except grpc.aio.AioRpcError as exc:
        log.debug("plugin stdio stream ended: %s", exc.code().name)
