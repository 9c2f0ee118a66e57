"""A plugin served by the project's own runtime (``rpcplugin.serve``), for the host tests.

Service ``hosttest.Probe``, raw bytes (no protobuf, so it starts fast and needs no generated
code):

``Info``
    JSON ``{"pid", "env"}`` (the whole environment the plugin received).
``Print``
    request JSON ``{"stdout": TEXT, "stderr": TEXT}``: written to ``sys.stdout`` and
    ``sys.stderr``, which the runtime streams to the host over ``GRPCStdio``.
``Log``
    request JSON ``{"level": NAME, "message": TEXT}``: logged through :mod:`logging` with an
    extra field ``probe=1``; the runtime writes it to the real stderr as an hclog line.
``Raw``
    the request bytes written straight to file descriptor 2 (the host parses them as log lines).
``Echo``
    the request.

Run with ``RPCPLUGIN_LOG_LEVEL=trace`` to let every level through. Debug mode
(``RPCPLUGIN_DEBUG=1``) prints go-plugin's reattach JSON, as the runtime does.
"""

from __future__ import annotations

import rpcplugin

rpcplugin.guard_stdout()

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import grpc  # noqa: E402

HANDSHAKE = rpcplugin.Handshake("HOSTTEST_PLUGIN", "served")
log = logging.getLogger("probe")
Context = grpc.aio.ServicerContext[bytes, bytes]


async def info(request: bytes, context: Context) -> bytes:
    return json.dumps({"pid": os.getpid(), "env": dict(os.environ)}).encode()


async def print_(request: bytes, context: Context) -> bytes:
    what = json.loads(request)
    if what.get("stdout"):
        sys.stdout.write(what["stdout"])
        sys.stdout.flush()
    if what.get("stderr"):
        sys.stderr.write(what["stderr"])
        sys.stderr.flush()
    return b"{}"


async def log_(request: bytes, context: Context) -> bytes:
    what = json.loads(request)
    level = {"trace": 5, "debug": 10, "info": 20, "warn": 30, "error": 40}[what["level"]]
    log.log(level, "%s", what["message"], extra={"probe": 1})
    return b"{}"


async def raw(request: bytes, context: Context) -> bytes:
    view = memoryview(request)
    while view:
        view = view[os.write(2, view) :]
    return b"{}"


async def echo(request: bytes, context: Context) -> bytes:
    return request


def handler() -> grpc.GenericRpcHandler:
    methods = {
        "Info": info,
        "Print": print_,
        "Log": log_,
        "Raw": raw,
        "Echo": echo,
    }
    return grpc.method_handlers_generic_handler(
        "hosttest.Probe",
        {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in methods.items()},
    )


if __name__ == "__main__":
    rpcplugin.serve(HANDSHAKE, {1: [handler()], 2: [handler()]}, name="probe")
