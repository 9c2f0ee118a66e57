"""A minimal plugin for launch() tests: serves ops.Echo/Say under the ops handshake."""

from __future__ import annotations

from typing import Any

import grpc

import rpcplugin


async def say(request: bytes, context: Any) -> bytes:
    return request


if __name__ == "__main__":
    rpcplugin.serve(
        rpcplugin.Handshake("OPS_TEST_PLUGIN", "ops"),
        {
            1: [
                grpc.method_handlers_generic_handler(
                    "ops.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
                )
            ]
        },
        name="echo",
    )
