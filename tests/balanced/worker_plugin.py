"""A plugin for the server-mode and balancing tests (tests/balanced).

``scaletest.Worker/Who(StringValue) -> StringValue`` answers ``WORKER_NAME`` (the process's
environment), after sleeping ``float(request)`` seconds when the request is a number.
Run in server mode: ``RPCPLUGIN_LISTEN=127.0.0.1:0 WORKER_NAME=a python worker_plugin.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

import rpcplugin

HANDSHAKE = rpcplugin.Handshake("SCALETEST_PLUGIN", "worker")
WHO = "/scaletest.Worker/Who"
Str = wrappers_pb2.StringValue


async def who(request: Str, context: Any) -> Str:
    with contextlib.suppress(ValueError):
        await asyncio.sleep(float(request.value))
    return Str(value=os.environ.get("WORKER_NAME", str(os.getpid())))


WORKER = grpc.method_handlers_generic_handler(
    "scaletest.Worker",
    {
        "Who": grpc.unary_unary_rpc_method_handler(
            who, request_deserializer=Str.FromString, response_serializer=Str.SerializeToString
        )
    },
)

if __name__ == "__main__":
    rpcplugin.serve(HANDSHAKE, {1: [WORKER]}, name="worker")
