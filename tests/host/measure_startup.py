"""Launch → ready and close → reaped: our host against a bare grpcio host, in one run.

Usage: ``.venv/bin/python tests/host/measure_startup.py [ROUNDS]`` (default 30). Prints medians
and 90th percentiles; asserts nothing (timings are for the record, not for CI).

The bare host is the least any Python host can do: ``Popen``, read one stdout line, a
``grpc.aio`` insecure channel, one health check (ready); ``GRPCController/Shutdown``, close the
channel, ``wait()`` (reaped). It drains nothing, checks nothing and cannot do TLS to a Go
plugin. Ours (``rpcplugin.launch``) does everything issue 3 asks for; rows with AutoMTLS show
what TLS adds. Both drive the same minimal plugins, alternating round by round:

- ``go``: the go-plugin 1.0.1 plugin from ``tests/gopeers.py`` (logging off);
- ``py``: ``tests/peers/misbehaving.py ok`` (grpc.aio, hand-rolled handshake).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gopeers import go_plugin_binary  # noqa: E402

import rpcplugin  # noqa: E402

Timings = tuple[float, float]  # (launch → ready, close → reaped), seconds
Runner = Callable[[], Awaitable[Timings]]


class Plugin:
    def __init__(self, name: str, argv: list[str], cookie: tuple[str, str], env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.handshake = rpcplugin.Handshake(*cookie)
        self.env = env


def plugins() -> list[Plugin]:
    return [
        Plugin(
            "go",
            [str(go_plugin_binary())],
            ("RPCPLUGIN_CONFORMANCE", "conformance-v1"),
            {"GOPLUGIN_LOG_LEVEL": "off"},
        ),
        Plugin(
            "py",
            [sys.executable, str(HERE.parent / "peers" / "misbehaving.py"), "ok"],
            ("MISBEHAVE_PLUGIN", "yes"),
            {},
        ),
    ]


async def bare_host(plugin: Plugin) -> Timings:
    start = time.perf_counter()
    env = {
        **os.environ,
        **plugin.env,
        plugin.handshake.cookie_key: plugin.handshake.cookie_value,
        "PLUGIN_PROTOCOL_VERSIONS": "1",
        "PLUGIN_MIN_PORT": "10000",
        "PLUGIN_MAX_PORT": "25000",
    }
    process = subprocess.Popen(
        plugin.argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.to_thread(process.stdout.readline)).decode().strip()
    fields = line.split("|")
    target = f"unix:{fields[3]}" if fields[2] == "unix" else fields[3]
    channel = grpc.aio.insecure_channel(target)
    check: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/grpc.health.v1.Health/Check"
    )
    assert await check(b"\n\x06plugin", timeout=10) == b"\x08\x01"
    ready = time.perf_counter() - start

    start = time.perf_counter()
    shutdown: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/plugin.GRPCController/Shutdown"
    )
    with contextlib.suppress(grpc.aio.AioRpcError):  # Go plugins may stop before replying
        await shutdown(b"", timeout=2)
    await channel.close()
    await asyncio.to_thread(process.wait)
    process.stdout.close()
    return ready, time.perf_counter() - start


async def our_host(plugin: Plugin, auto_mtls: bool) -> Timings:
    start = time.perf_counter()
    conn = await rpcplugin.launch(
        plugin.argv,
        handshake=plugin.handshake,
        versions=[1],
        env=plugin.env,
        auto_mtls=auto_mtls,
    )
    ready = time.perf_counter() - start
    start = time.perf_counter()
    await conn.close()
    assert conn.returncode == 0, conn.returncode
    return ready, time.perf_counter() - start


def row(name: str, samples: list[Timings]) -> str:
    def ms(values: list[float]) -> str:
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        return f"{statistics.median(values) * 1000:7.1f} {p90 * 1000:7.1f}"

    return f"{name:<26} {ms([s[0] for s in samples])}   {ms([s[1] for s in samples])}"


async def main(rounds: int) -> None:
    logging.disable(logging.WARNING)
    runners: dict[str, Runner] = {}
    for plugin in plugins():
        runners[f"{plugin.name}  bare grpcio host"] = functools.partial(bare_host, plugin)
        runners[f"{plugin.name}  rpcplugin, plaintext"] = functools.partial(our_host, plugin, False)
        runners[f"{plugin.name}  rpcplugin, AutoMTLS"] = functools.partial(our_host, plugin, True)
    results: dict[str, list[Timings]] = {name: [] for name in runners}
    for runner in runners.values():  # warm-up: page cache, imports, gRPC's first init
        await runner()
    for _ in range(rounds):
        for name, runner in runners.items():
            results[name].append(await runner())
    print(f"{rounds} rounds, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"grpcio {grpc.__version__}")  # fmt: skip
    print(f"{'':<26} {'launch -> ready (ms)':>15}   {'close -> reaped (ms)':>15}")
    print(f"{'':<26} {'median':>7} {'p90':>7}   {'median':>7} {'p90':>7}")
    for name, samples in results.items():
        print(row(name, samples))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
