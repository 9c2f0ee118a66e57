"""For the record: a real go-plugin 1.0.1 host (``tests/gopeers.py``'s gohost) starting plugins.

gohost reports ``plugin.Client.Start()`` (which, with AutoMTLS, includes go-plugin generating
its P-521 certificate) and the first Echo separately; we add the two. With AutoMTLS our plugin
sees a P-521 host certificate, so it serves TLS through the OpenSSL relay.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from . import prep
from .context import Context
from .stats import Row, rotate

GO = "Go host (go-plugin 1.0.1) → plugin, for the record"


def _gopeers() -> Any:
    sys.path.insert(0, str(prep.ROOT / "tests"))
    try:
        import gopeers
    finally:
        sys.path.pop(0)
    return gopeers


def go_suite(ctx: Context) -> None:
    try:
        gopeers = _gopeers()
        goplugin = str(gopeers.go_plugin_binary())
        gopeers.go_host_binary()
    except (RuntimeError, ImportError) as exc:
        ctx.results.note(GO, f"not measured: {exc}")
        return
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(BENCH_PB_DIR=str(ctx.pb_dir), PLUGIN_UNIX_SOCKET_DIR=str(ctx.socket_dir))
    env.update(GOPLUGIN_COOKIE_KEY="RPCPLUGIN_BENCH", GOPLUGIN_COOKIE_VALUE="bench-v1")
    ours = [ctx.python, str(prep.PLUGINS / "ours.py")]
    bare = [ctx.python, str(prep.PLUGINS / "bare.py")]
    configs: dict[str, tuple[str, list[str], bool]] = {
        "ours, TLS off": ("ours", ours, False),
        "ours, AutoMTLS (OpenSSL relay)": ("ours", ours, True),
        "floor, TLS off": ("floor", bare, False),
        "Go plugin, TLS off": ("go", [goplugin], False),
        "Go plugin, AutoMTLS": ("go", [goplugin], True),
    }
    start: dict[str, list[float]] = {k: [] for k in configs}
    total: dict[str, list[float]] = {k: [] for k in configs}
    kill: dict[str, list[float]] = {k: [] for k in configs}
    errors: dict[str, str] = {}
    for r in range(-ctx.counts.warmup, ctx.counts.go_rounds):
        ctx.say(f"go host round {r + 1}/{ctx.counts.go_rounds}")
        for key in rotate(list(configs), r):
            if key in errors:
                continue
            _, argv, tls = configs[key]
            flags = [
                "-cookie-key",
                "RPCPLUGIN_BENCH",
                "-cookie-value",
                "bench-v1",
                "-versions",
                "1",
                "-calls",
                "echo",
                "-deadline",
                "30s",
            ]
            if tls:
                flags.append("-automtls")
            run = gopeers.run_go_host(argv, *flags, env=env, timeout=60)
            if run.returncode != 0 or run.errors:
                errors[key] = "; ".join(e.get("error", "") for e in run.errors) or str(run)[-300:]
                continue
            if r < 0:
                continue
            started = float(run.one("started")["ms"])
            echo = float(run.one("echo")["ms"])
            start[key].append(started)
            total[key].append(started + echo)
            kill[key].append(float(run.one("killed")["ms"]))
    for key in configs:
        ctx.results.add(
            Row(
                GO,
                "Start() + first Echo",
                key,
                "ms",
                total[key],
                label=key,
                error=errors.get(key),
            )
        )
    for key in configs:
        ctx.results.add(
            Row(GO, "Start() alone", key, "ms", start[key], label=key, error=errors.get(key))
        )
    for key in configs:
        note = ""
        if key.startswith("floor"):
            note = "the floor has no GRPCController: go-plugin waits 2 s, then kills it"
        ctx.results.add(
            Row(
                GO,
                "Kill() (Shutdown RPC, wait for the exit)",
                key,
                "ms",
                kill[key],
                label=key,
                error=errors.get(key),
                note=note,
            )
        )
