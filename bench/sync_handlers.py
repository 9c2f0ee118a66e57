"""Unary p50 of a plain ``def`` servicer method against an ``async def`` one, and bare grpcio.

``python -m bench.sync_handlers [--calls N] [--rounds R] [--smoke]``

One server process (``grpc.aio`` on a unix socket) serves three methods answering the same
``StringValue`` echo: a hand-written ``grpc.aio`` handler (the bare grpcio floor), and
``rpcplugin.servicer.Service`` over an ``async def`` and over a plain ``def`` method (the latter
run on the worker pool). One client process calls them one at a time over one channel with the
same raw multicallables, in interleaved rounds (round r starts with subject r); each cell is the
median over rounds of each round's per-call median, and each ratio is the median of the per-round
ratios against the floor (or the async method). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .stats import median, rotate

SUBJECTS = {
    "bare grpcio (async handler)": "/bench.Bare/Echo",
    "ours, async def": "/bench.Ours/EchoAsync",
    "ours, def (worker pool)": "/bench.Ours/EchoSync",
}


def _serve(socket: str) -> None:
    import grpc
    import grpc.aio
    from google.protobuf import wrappers_pb2 as w

    from rpcplugin.calls import Method, RpcKind
    from rpcplugin.servicer import Service

    class Ours:
        async def echo_async(self, request: w.StringValue, /) -> w.StringValue:
            return w.StringValue(value=request.value)

        def echo_sync(self, request: w.StringValue, /) -> w.StringValue:
            return w.StringValue(value=request.value)

    async def bare(request: w.StringValue, context: Any) -> w.StringValue:
        return w.StringValue(value=request.value)

    service: Service[Ours] = Service(
        "bench.Ours",
        {
            "echo_async": Method(
                "/bench.Ours/EchoAsync", RpcKind.UNARY, w.StringValue, w.StringValue
            ),
            "echo_sync": Method(
                "/bench.Ours/EchoSync", RpcKind.UNARY, w.StringValue, w.StringValue
            ),
        },
    )
    bare_handler = grpc.method_handlers_generic_handler(
        "bench.Bare",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                bare, w.StringValue.FromString, w.StringValue.SerializeToString
            )
        },
    )

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((bare_handler, service.handler(Ours())))
        server.add_insecure_port(f"unix:{socket}")
        await server.start()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.stop(None)

    asyncio.run(main())


async def _measure(socket: str, calls: int, rounds: int) -> dict[str, list[float]]:
    import grpc.aio
    from google.protobuf import wrappers_pb2 as w

    per_round: dict[str, list[float]] = {name: [] for name in SUBJECTS}
    async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
        stubs = {
            name: channel.unary_unary(
                path,
                request_serializer=w.StringValue.SerializeToString,
                response_deserializer=w.StringValue.FromString,
            )
            for name, path in SUBJECTS.items()
        }
        request = w.StringValue(value="x" * 32)
        names = list(SUBJECTS)
        for r in range(-1, rounds):  # round -1 warms up every subject
            for name in rotate(names, r):
                stub = stubs[name]
                samples = []
                for _ in range(calls):
                    start = time.perf_counter()
                    await stub(request, timeout=10)
                    samples.append(time.perf_counter() - start)
                if r >= 0:
                    per_round[name].append(median(samples) * 1e6)
    return per_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="tiny counts (checks it runs)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    calls, rounds = (50, 2) if args.smoke else (args.calls, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        socket = str(Path(tmp) / "s.sock")
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.sync_handlers", "--serve", socket],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "RPCPLUGIN_STALL_WARNING": "0"},
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            per_round = asyncio.run(_measure(socket, calls, rounds))
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(10)
    floor = per_round["bare grpcio (async handler)"]
    asyncs = per_round["ours, async def"]
    print(f"Unary p50, µs (median of {rounds} rounds of {calls} sequential calls; ratios paired")
    print("per round)\n")
    print("| subject | p50 µs | vs bare grpcio | vs ours async def |")
    print("|---|---|---|---|")
    for name, values in per_round.items():
        to_floor = median([v / f for v, f in zip(values, floor, strict=True)])
        to_async = median([v / a for v, a in zip(values, asyncs, strict=True)])
        print(f"| {name} | {median(values):.0f} | {to_floor:.2f}x | {to_async:.2f}x |")


if __name__ == "__main__":
    main()
