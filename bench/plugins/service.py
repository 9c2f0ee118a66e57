"""The one service every benchmarked plugin serves: ``conformance.v1.Conformance``.

Echo (unary) and Count (server stream of ``payload_size``-byte messages), hand-written with
grpcio's generic handlers so that each plugin pays the same for its service and differs only in
what its runtime adds. The ``_pb2`` modules come from ``$BENCH_PB_DIR`` (compiled by
:mod:`bench.prep`). Importing this module imports grpc and the messages, nothing else.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc

sys.path.insert(0, os.environ["BENCH_PB_DIR"])
pb: Any = importlib.import_module("conformance.v1.conformance_pb2")

COOKIE_KEY = "RPCPLUGIN_BENCH"
COOKIE_VALUE = "bench-v1"
SERVICE = "conformance.v1.Conformance"

Context = Any  # grpc.aio.ServicerContext; kept loose so each runtime's context type fits


async def echo(request: Any, context: Context) -> Any:
    return pb.EchoReply(text=request.text, payload=request.payload, version=1)


async def count(request: Any, context: Context) -> AsyncIterator[Any]:
    filler = b"x" * request.payload_size
    for i in range(1, request.n + 1):
        yield pb.CountReply(i=i, payload=filler)


def handler() -> grpc.GenericRpcHandler:
    """The service as a generic handler (what ``rpcplugin.serve`` and grpcio servers take)."""
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                echo, pb.EchoRequest.FromString, pb.EchoReply.SerializeToString
            ),
            "Count": grpc.unary_stream_rpc_method_handler(
                count, pb.CountRequest.FromString, pb.CountReply.SerializeToString
            ),
        },
    )


async def health_check(request: bytes, context: Context) -> bytes:
    """``grpc.health.v1.Health/Check``: SERVING for every service (status field 1 = 1)."""
    return b"\x08\x01"


def health_handler() -> grpc.GenericRpcHandler:
    """The health service go-plugin hosts check, with a hand-written two-byte codec."""
    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {"Check": grpc.unary_unary_rpc_method_handler(health_check, None, None)},
    )
