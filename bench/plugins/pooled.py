"""The pool suite's plugin: ``plugins/ours.py`` plus ``bench.Work/Hash``, a CPU-bound call.

``Hash`` takes an ``EchoRequest`` whose text is an iteration count and chains SHA-256 over 32
bytes that many times, on the event loop thread (small inputs keep the GIL: this is Python work
on one core, what a pool is for); it answers the hex digest in an ``EchoReply``.
"""

from __future__ import annotations

import rpcplugin

rpcplugin.guard_stdout()

import hashlib  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
import service  # noqa: E402

HASH = "/bench.Work/Hash"


def digest(iterations: int) -> str:
    """The work of one Hash call (the suite calibrates ``iterations`` to ~20 ms with it)."""
    value = b"\0" * 32
    sha256 = hashlib.sha256
    for _ in range(iterations):
        value = sha256(value).digest()
    return value.hex()


async def hash_call(request: Any, context: Any) -> Any:
    return service.pb.EchoReply(text=digest(int(request.text)))


def work_handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "bench.Work",
        {
            "Hash": grpc.unary_unary_rpc_method_handler(
                hash_call, service.pb.EchoRequest.FromString, service.pb.EchoReply.SerializeToString
            )
        },
    )


if __name__ == "__main__":
    rpcplugin.serve(
        rpcplugin.Handshake(service.COOKIE_KEY, service.COOKIE_VALUE),
        versions={1: [service.handler(), work_handler()]},
        name="bench",
    )
