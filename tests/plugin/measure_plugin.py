"""Plugin-side numbers, measured in one run: cold start, idle RSS, Shutdown → exit.

Usage: ``.venv/bin/python tests/plugin/measure_plugin.py [ROUNDS]`` (default 20). Prints
medians; asserts nothing (timings are for the record; the P10/P21 tests hold the limits).

Compared, round by round in alternation:

- ``bare``: the least a Python gRPC plugin can do: ``grpc.aio`` server with a hand-coded health
  ``Check`` on a unix socket, one handshake line with ``os.write``. No cookie, no settings, no
  controller, stdio, broker, logging, guard or cleanup.
- ``minimal``: ``rpcplugin.serve`` with one version and no services of its own.
- ``conformance``: ``tests/peers/pyplugin.py`` (plaintext, then AutoMTLS with a P-256 host
  certificate (grpcio's TLS) and a P-521 one (the OpenSSL relay)).

Cold start = exec → handshake line read by the parent. RSS = VmRSS after one health check and
100 ms of idling. Shutdown → exit = ``GRPCController/Shutdown`` sent → process reaped, without
and with a ``StreamStdio`` subscriber (what every go-plugin ≥ 1.1 host keeps open).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from peers.conformance_protos import ensure_importable  # noqa: E402
from peers.harness import (  # noqa: E402
    Identity,
    PluginProcess,
    dial,
    health_check,
    plugin_env,
    python_argv,
    rss_kib,
    short_tmpdir,
    shutdown,
    stdio_stream,
)

BARE = """
import asyncio, os, tempfile
import grpc

async def check(request, context):
    return b"\\x08\\x01"

async def main():
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}),))
    path = os.path.join(tempfile.gettempdir(), f"bare{os.getpid()}")
    server.add_insecure_port("unix:" + path)
    await server.start()
    os.write(1, f"1|1|unix|{path}|grpc|\\n".encode())
    await server.wait_for_termination()

asyncio.run(main())
"""

MINIMAL = """
import rpcplugin
rpcplugin.guard_stdout()
rpcplugin.serve(rpcplugin.Handshake("RPCPLUGIN_CONFORMANCE", "conformance-v1"), versions={1: []})
"""


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms"


async def one(
    argv: list[str], env: dict[str, str], identity: Identity | None, stdio: bool
) -> dict[str, float]:
    started = time.monotonic()
    plugin = PluginProcess(argv, env)
    hs = plugin.read_handshake()
    cold = (plugin.handshake_at or time.monotonic()) - started
    async with dial(hs, identity) as dialed:
        assert await health_check(dialed.channel) == 1
        await asyncio.sleep(0.1)
        rss = rss_kib(plugin.pid)
        stream = stdio_stream(dialed.channel) if stdio else None
        if stream is not None:
            await asyncio.sleep(0.05)
        stop_started = time.monotonic()
        if argv[-1].endswith("bare.py"):
            plugin.proc.kill()
        else:
            await shutdown(dialed.channel)
        await plugin.wait_async(5)
        stopped = time.monotonic() - stop_started
        if stream is not None:
            stream.cancel()
    plugin.stop()
    return {"cold": cold, "rss": rss, "stop": stopped}


async def main(rounds: int) -> None:
    pb_dir = ensure_importable()
    work = Path(tempfile.mkdtemp(prefix="rpt-measure-"))
    (work / "bare.py").write_text(BARE)
    (work / "minimal.py").write_text(MINIMAL)
    keys = short_tmpdir()
    p256, p521 = Identity.make(keys, "secp256r1"), Identity.make(keys, "secp521r1")
    python = sys.executable
    cases: dict[str, Callable[[str], tuple[list[str], dict[str, str], Identity | None, bool]]] = {
        "bare grpc.aio": lambda d: (
            [python, str(work / "bare.py")], plugin_env(pb_dir, d), None, False,
        ),
        "rpcplugin minimal": lambda d: (
            [python, str(work / "minimal.py")], plugin_env(pb_dir, d), None, False,
        ),
        "rpcplugin minimal + stdio subscriber": lambda d: (
            [python, str(work / "minimal.py")], plugin_env(pb_dir, d), None, True,
        ),
        "conformance plaintext": lambda d: (python_argv(), plugin_env(pb_dir, d), None, False),
        "conformance TLS P-256 host (grpcio)": lambda d: (
            python_argv(), plugin_env(pb_dir, d, {"PLUGIN_CLIENT_CERT": p256.pem}), p256, False,
        ),
        "conformance TLS P-521 host (OpenSSL)": lambda d: (
            python_argv(), plugin_env(pb_dir, d, {"PLUGIN_CLIENT_CERT": p521.pem}), p521, False,
        ),
    }  # fmt: skip
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(2):  # warm the page cache
        for make in cases.values():
            await one(*make(short_tmpdir()))
    for _ in range(rounds):
        for name, make in cases.items():
            results[name].append(await one(*make(short_tmpdir())))
    print(f"{rounds} rounds, medians; Python {sys.version.split()[0]}")
    print(f"{'':40} {'exec→handshake':>14} {'idle RSS':>10} {'stop→exit':>10}")
    for name, rows in results.items():
        rss = statistics.median(r["rss"] for r in rows) / 1024
        stop = median_ms([r["stop"] for r in rows]) if "bare" not in name else "(SIGKILL)"
        print(f"{name:40} {median_ms([r['cold'] for r in rows]):>14} {rss:8.1f} MB {stop:>10}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
