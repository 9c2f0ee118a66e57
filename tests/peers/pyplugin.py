"""The Python conformance plugin: ``rpcplugin.serve`` with hand-written handlers.

Serves ``tests/protos/conformance`` like the Go peer (``tests/go/src/rpcpeers/goplugin``), so the
same host and the same tests can drive either:

- version 1, ``conformance.v1.Conformance``: Echo returns text and payload; Count streams
  ``i = 1..n`` with ``payload_size`` bytes of ``x``; Sum adds up; Chat answers each message with
  its text; Info reports the pid, the negotiated version, the requested environment variables
  that are set, and implementation ``python``.
- version 2, ``conformance.v2.Conformance``: Echo returns the text upper-cased.

Run it as ``python tests/peers/pyplugin.py``. The ``_pb2`` modules come from ``PYTHONPATH``
(the test suite compiles them once per session) or are compiled into a cache directory.

Environment (all optional):

``CONFORMANCE_COOKIE_KEY`` / ``CONFORMANCE_COOKIE_VALUE``
    the magic cookie, default ``RPCPLUGIN_CONFORMANCE=conformance-v1`` (gohost's default).
``CONFORMANCE_VERSIONS``
    versions served, default ``1,2``.
``CONFORMANCE_V2_WITH_V1=1``
    version 2 also serves the v1 service (its replies then report version 2).
``CONFORMANCE_NAME``
    the plugin name (debug mode's reattach JSON), default ``conformance``.
``CONFORMANCE_PRINT_BEFORE_SERVE=TEXT``
    misbehave: ``print(TEXT)`` and ``os.write(1, TEXT)`` before serving; the stdout guard must
    keep both off the handshake.

Info: an ``env`` name ``module:NAME`` reports ``loaded`` or ``absent`` for ``sys.modules``;
``peer:FIELD`` reports a field of the call's ``rpcplugin.peer.Peer`` (``security``,
``tls_backend``, ``fingerprint``, ``address``) as text.

Echo (v1) commands, for tests that need the plugin to do something on cue; the reply's text is
the result:

``!print TEXT`` / ``!eprint TEXT``
    ``print`` to ``sys.stdout`` / ``sys.stderr``.
``!write N``
    write N bytes (lines of ``o``) to ``sys.stdout`` in 64 KiB pieces; replies the seconds taken.
``!sleep S``
    ``await asyncio.sleep(S)``.
``!log LEVEL TEXT``
    log TEXT at LEVEL (trace, debug, info, warning, error) through :mod:`logging`, with extra
    fields of several types.
``!spawn``
    start ``sleep 30`` as a child process (inheriting the usual fds); replies its pid.
"""

from __future__ import annotations

import rpcplugin

rpcplugin.guard_stdout()  # first thing: nothing may reach the host's stdout before the handshake

import asyncio  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402

sys.path.insert(1, str(Path(__file__).resolve().parent))
import conformance_protos  # noqa: E402

conformance_protos.ensure_importable()

from conformance.v1 import conformance_pb2 as v1  # noqa: E402
from conformance.v2 import conformance_pb2 as v2  # noqa: E402

log = logging.getLogger("conformance")
Context = grpc.aio.ServicerContext[Any, Any]
WRITE_PIECE = 64 * 1024
LEVELS = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40}


class V1:
    """``conformance.v1.Conformance``, reporting ``version`` in its replies."""

    def __init__(self, version: int) -> None:
        self.version = version

    async def echo(self, request: v1.EchoRequest, context: Context) -> v1.EchoReply:
        text = request.text
        if text.startswith("!"):
            text = await command(text[1:], context)
        return v1.EchoReply(text=text, payload=request.payload, version=self.version)

    async def count(
        self, request: v1.CountRequest, context: Context
    ) -> AsyncIterator[v1.CountReply]:
        if request.n < 0 or request.payload_size < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "n and payload_size must be >= 0")
        filler = b"x" * request.payload_size
        for i in range(1, request.n + 1):
            yield v1.CountReply(i=i, payload=filler)

    async def sum(self, requests: AsyncIterator[v1.SumRequest], context: Context) -> v1.SumReply:
        total = count = 0
        async for request in requests:
            total += request.value
            count += 1
        return v1.SumReply(total=total, count=count)

    async def chat(
        self, requests: AsyncIterator[v1.ChatMessage], context: Context
    ) -> AsyncIterator[v1.ChatMessage]:
        async for message in requests:
            yield v1.ChatMessage(text=message.text)

    async def info(self, request: v1.InfoRequest, context: Context) -> v1.InfoReply:
        env: dict[str, str] = {}
        for name in request.env:
            if name.startswith("module:"):
                env[name] = "loaded" if name[len("module:") :] in sys.modules else "absent"
            elif name.startswith("peer:"):
                from rpcplugin.peer import peer_of

                env[name] = str(getattr(peer_of(context), name[len("peer:") :]))
            elif name in os.environ:
                env[name] = os.environ[name]
        return v1.InfoReply(pid=os.getpid(), version=self.version, env=env, implementation="python")

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "conformance.v1.Conformance",
            {
                "Echo": grpc.unary_unary_rpc_method_handler(
                    self.echo, v1.EchoRequest.FromString, v1.EchoReply.SerializeToString
                ),
                "Count": grpc.unary_stream_rpc_method_handler(
                    self.count, v1.CountRequest.FromString, v1.CountReply.SerializeToString
                ),
                "Sum": grpc.stream_unary_rpc_method_handler(
                    self.sum, v1.SumRequest.FromString, v1.SumReply.SerializeToString
                ),
                "Chat": grpc.stream_stream_rpc_method_handler(
                    self.chat, v1.ChatMessage.FromString, v1.ChatMessage.SerializeToString
                ),
                "Info": grpc.unary_unary_rpc_method_handler(
                    self.info, v1.InfoRequest.FromString, v1.InfoReply.SerializeToString
                ),
            },
        )


async def v2_echo(request: v2.EchoRequest, context: Context) -> v2.EchoReply:
    return v2.EchoReply(text=request.text.upper(), version=2)


def v2_handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "conformance.v2.Conformance",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                v2_echo, v2.EchoRequest.FromString, v2.EchoReply.SerializeToString
            )
        },
    )


async def command(text: str, context: Context) -> str:
    """Run one ``!`` command from Echo (see the module docstring)."""
    name, _, arg = text.partition(" ")
    if name == "print":
        print(arg)
        return "ok"
    if name == "eprint":
        print(arg, file=sys.stderr)
        return "ok"
    if name == "write":
        remaining = int(arg)
        line = b"o" * 63 + b"\n"
        piece = (line * (WRITE_PIECE // len(line))).decode()
        started = time.monotonic()
        while remaining > 0:
            chunk = piece[:remaining]
            sys.stdout.write(chunk)
            remaining -= len(chunk)
        sys.stdout.flush()
        return f"{time.monotonic() - started:.6f}"
    if name == "sleep":
        await asyncio.sleep(float(arg))
        return "ok"
    if name == "log":
        level, _, message = arg.partition(" ")
        log.log(
            LEVELS[level],
            message,
            extra={"count": 3, "ratio": 0.5, "flag": True, "nothing": None, "items": [1, "2"]},
        )
        return "ok"
    if name == "spawn":
        child = subprocess.Popen(["sleep", "30"])
        return str(child.pid)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown command {name!r}")
    raise AssertionError("unreachable")


def main() -> None:
    early = os.environ.get("CONFORMANCE_PRINT_BEFORE_SERVE")
    if early is not None:
        print(early, flush=True)
        os.write(1, f"{early} (fd 1)\n".encode())
    served = [int(v) for v in os.environ.get("CONFORMANCE_VERSIONS", "1,2").split(",") if v]
    versions: dict[int, list[grpc.GenericRpcHandler]] = {}
    for version in served:
        if version == 1:
            versions[1] = [V1(1).handler()]
        elif version == 2:
            versions[2] = [v2_handler()]
            if os.environ.get("CONFORMANCE_V2_WITH_V1"):
                versions[2].append(V1(2).handler())
        else:
            versions[version] = []  # a version with no services of its own: health etc. only
    rpcplugin.serve(
        rpcplugin.Handshake(
            os.environ.get("CONFORMANCE_COOKIE_KEY", "RPCPLUGIN_CONFORMANCE"),
            os.environ.get("CONFORMANCE_COOKIE_VALUE", "conformance-v1"),
        ),
        versions=versions,
        name=os.environ.get("CONFORMANCE_NAME", "conformance"),
    )


if __name__ == "__main__":
    main()
