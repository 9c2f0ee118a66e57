"""Where a plugin's start-up time goes: ``python -m bench.profile [--plugin ours] [--tls]``.

Starts one plugin under ``cProfile`` the way a host would (magic cookie, versions, socket dir,
and with ``--tls`` a P-256 ``PLUGIN_CLIENT_CERT``), waits for its handshake line, dials, makes
one Echo and stops it (``GRPCController/Shutdown`` for ours, SIGTERM for the floor). It prints
the plugin's functions by cumulative time — almost all of it start-up, since the plugin is idle
after its first answer — and, with ``--importtime``, the plugin process's imports grouped by
top-level package (``-X importtime``). cProfile slows Python code down, so read shares, not
absolute times.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile  # noqa: F401 - the profiler the plugin runs under
import importlib
import os
import pstats
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import generated, prep
from .context import Context, Counts

PLUGINS = {"ours": "ours.py", "floor": "bare.py"}


def _plugin_argv(plugin: str, python: str, prefix: list[str], ctx: Context) -> list[str]:
    if plugin == "gen":
        assert ctx.generated_plugin is not None
        return [python, *prefix, "-m", ctx.generated_plugin.name]
    return [python, *prefix, str(prep.PLUGINS / PLUGINS[plugin])]


async def _call(target: str, host_key: Any, plugin_cert: bytes | None, shutdown: bool) -> float:
    import grpc

    sys.path.insert(0, str(prep.compile_messages()))
    pb: Any = importlib.import_module("conformance.v1.conformance_pb2")
    if plugin_cert is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ssl.DER_cert_to_PEM_cert(plugin_cert).encode(),
            private_key=host_key.key_pem,
            certificate_chain=host_key.cert_pem,
        )
        channel = grpc.aio.secure_channel(
            target, credentials, options=(("grpc.ssl_target_name_override", "localhost"),)
        )
    echo = channel.unary_unary(
        "/conformance.v1.Conformance/Echo",
        request_serializer=pb.EchoRequest.SerializeToString,
        response_deserializer=pb.EchoReply.FromString,
    )
    started = time.perf_counter()
    await echo(pb.EchoRequest(text="hi"), timeout=30)
    elapsed = time.perf_counter() - started
    if shutdown:
        stop: Any = channel.unary_unary("/plugin.GRPCController/Shutdown")
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stop(b"", timeout=5)
    await channel.close()
    return elapsed


def run(plugin: str, tls: bool, importtime: bool, top: int, save: str | None = None) -> None:
    import asyncio

    prep.bytecode_cache()
    scratch = Path(tempfile.mkdtemp(prefix="rpcplugin-profile-"))
    ctx = Context(Counts(), prep.compile_messages(), scratch, scratch)
    if plugin == "gen":
        generated.prepare(ctx)
        if ctx.generator_problem:
            raise SystemExit(ctx.generator_problem)
    prof = scratch / "plugin.prof"
    profiled = [str(prep.PLUGINS / "profiled.py"), str(prof)]
    prefix = ["-X", "importtime"] if importtime else profiled
    if importtime and plugin == "gen":
        prefix = ["-X", "importtime"]
    env = dict(os.environ)
    env.update(
        RPCPLUGIN_BENCH="bench-v1",
        PLUGIN_PROTOCOL_VERSIONS="1",
        PLUGIN_MIN_PORT="10000",
        PLUGIN_MAX_PORT="25000",
        PLUGIN_UNIX_SOCKET_DIR=str(scratch),
        BENCH_PB_DIR=str(ctx.pb_dir),
    )
    host_key = None
    if tls:
        sys.path.insert(0, str(prep.PLUGINS))
        host_key = importlib.import_module("baretls").generate()
        env["PLUGIN_CLIENT_CERT"] = host_key.cert_pem.decode()
    argv = _plugin_argv(plugin, sys.executable, prefix, ctx)
    cwd = str(ctx.generated_plugin.parent) if plugin == "gen" and ctx.generated_plugin else None
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline().strip()
    at_line = time.perf_counter() - started
    fields = line.split("|")
    if len(fields) < 6:
        proc.kill()
        raise SystemExit(f"no handshake line: {line!r}\n{proc.stderr.read()}")
    cert = base64.b64decode(fields[5] + "=" * (-len(fields[5]) % 4)) if fields[5] else None
    echo = asyncio.run(_call(f"unix:{fields[3]}", host_key, cert, plugin != "floor"))
    total = time.perf_counter() - started
    if plugin == "floor":
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    print(
        f"{plugin}{' TLS' if tls else ''}: handshake line after {at_line * 1000:.0f} ms, "
        f"first Echo answered after {total * 1000:.0f} ms (the Echo itself "
        f"{echo * 1000:.1f} ms), under {'-X importtime' if importtime else 'cProfile'}"
    )
    if importtime:
        if save:
            Path(save).write_text(err)
        _print_importtime(err, top)
    else:
        stats = pstats.Stats(str(prof))
        stats.sort_stats("cumulative").print_stats(os.environ.get("BENCH_PROFILE_FILTER", ""), top)


def _print_importtime(stderr: str, top: int) -> None:
    by_package: dict[str, int] = {}
    modules: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:") :].split("|", 2)
        name = name.strip()
        by_package[name.split(".")[0]] = by_package.get(name.split(".")[0], 0) + int(self_us)
        modules.append((int(self_us), name))
    total = sum(by_package.values())
    print(f"imports: {total / 1000:.1f} ms of self time in {len(modules)} modules")
    for package, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {us / 1000:7.1f} ms  {package}")


def _run_clean(plugin: str, tls: bool, importtime: bool, top: int, save: str | None) -> None:
    before = set(Path(tempfile.gettempdir()).glob("rpcplugin-profile-*"))
    try:
        run(plugin, tls, importtime, top, save)
    finally:
        for path in set(Path(tempfile.gettempdir()).glob("rpcplugin-profile-*")) - before:
            shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--plugin", choices=["ours", "floor", "gen"], default="ours")
    parser.add_argument("--tls", action="store_true", help="serve AutoMTLS (host cert P-256)")
    parser.add_argument(
        "--importtime", action="store_true", help="-X importtime instead of cProfile"
    )
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--save", help="with --importtime: write the raw -X importtime lines here")
    args = parser.parse_args()
    _run_clean(args.plugin, args.tls, args.importtime, args.top, args.save)


if __name__ == "__main__":
    main()
