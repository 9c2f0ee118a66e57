"""Start to handshake line: what a host (a Go one included) waits for on every launch, per form.

The floor plugin, our generated plugin run as ``python -m``, and the same package as the two
executables ``rpcplugin-gen pack`` makes for Go hosts (a launcher script, and a ``--onefile``
shiv zipapp), TLS off and on, interleaved round by round. Each sample execs the plugin with a
host's environment, reads its first stdout line and SIGKILLs it there; the CPU figure is the
plugin's and its reaped children's (``wait4``), so ``openssl req`` making our certificate
counts. No host library is involved: this is the plugin's side of a cold start alone.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import prep
from .context import Context
from .stats import Row, rotate

START = "Start to handshake line (exec → the line a host waits for; plugin killed there)"
CPU_NOTE = "CPU: the plugin's and its reaped children's (wait4)"


def _forms(ctx: Context) -> tuple[dict[str, tuple[list[str], str | None]], dict[str, str]]:
    """argv and cwd per subject, and the subjects that could not be built (with why)."""
    forms: dict[str, tuple[list[str], str | None]] = {
        "floor": ([ctx.python, str(prep.PLUGINS / "bare.py")], None),
    }
    problems: dict[str, str] = {}
    package = ctx.generated_plugin
    if package is None:
        problems["ours-gen"] = ctx.generator_problem or "no generated plugin"
        return forms, problems
    forms["ours-gen"] = ([ctx.python, "-m", package.name], str(package.parent))
    tool = Path(ctx.python).parent / "rpcplugin-gen"
    dist = ctx.scratch / "pack"
    packs: list[tuple[str, list[str]]] = [("ours-launcher", [])]
    if not ctx.counts.minimal:  # --smoke: the zipapp takes seconds to build
        packs.append(("ours-onefile", ["--onefile"]))
    for subject, extra in packs:
        argv = [str(tool), "pack", str(package), "-o", str(dist), "--name", subject, *extra]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            problems[subject] = f"rpcplugin-gen pack failed: {' '.join(tail)}"
            continue
        forms[subject] = ([str(dist / subject)], None)
    return forms, problems


def _env(ctx: Context) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGIN_", "RPCPLUGIN_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        BENCH_PB_DIR=str(ctx.pb_dir),
        RPCPLUGIN_BENCH="bench-v1",
        PLUGIN_PROTOCOL_VERSIONS="1",
        PLUGIN_MIN_PORT="10000",
        PLUGIN_MAX_PORT="25000",
        SHIV_ROOT=str(ctx.scratch / "shiv"),
    )
    return env


def _one(argv: list[str], cwd: str | None, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds from exec to the first stdout line, and the CPU seconds the plugin (and
    the children it reaped) used by then."""
    sockets = tempfile.mkdtemp(prefix="start-", dir=env.get("TMPDIR"))
    env = {**env, "PLUGIN_UNIX_SOCKET_DIR": sockets}
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGKILL)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = -signal.SIGKILL
        proc.stdout.close() if proc.stdout is not None else None
        shutil.rmtree(sockets, ignore_errors=True)
    if not line.startswith(b"1|"):
        raise RuntimeError(f"no handshake line from {argv[0]} (got {line[:80]!r})")
    return elapsed, usage.ru_utime + usage.ru_stime


def start_suite(ctx: Context) -> None:
    """exec → handshake line, wall and CPU, for the floor and our forms, TLS off and on."""
    forms, problems = _forms(ctx)
    env = _env(ctx)
    sys.path.insert(0, str(prep.PLUGINS))
    host_cert = importlib.import_module("baretls").generate().cert_pem.decode()
    subjects = list(forms)
    wall: dict[tuple[str, str], list[float]] = {(s, t): [] for s in subjects for t in ("off", "on")}
    cpu: dict[tuple[str, str], list[float]] = {(s, t): [] for s in subjects for t in ("off", "on")}
    errors: dict[tuple[str, str], str] = {}
    for r in range(-ctx.counts.warmup, ctx.counts.cold_rounds):
        ctx.say(f"start to handshake round {r + 1}/{ctx.counts.cold_rounds}")
        for tls in ("off", "on"):
            tls_env = env if tls == "off" else {**env, "PLUGIN_CLIENT_CERT": host_cert}
            for subject in rotate(subjects, r):
                if (subject, tls) in errors:
                    continue
                argv, cwd = forms[subject]
                try:
                    seconds, used = _one(argv, cwd, tls_env)
                except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                    errors[subject, tls] = str(exc)
                    continue
                if r >= 0:
                    wall[subject, tls].append(seconds * 1000)
                    cpu[subject, tls].append(used * 1000)
    labels = {
        "floor": "bare grpcio floor",
        "ours-gen": "generated plugin, python -m",
        "ours-launcher": "generated plugin, pack launcher",
        "ours-onefile": "generated plugin, pack --onefile (shiv, unpacked)",
    }
    measures = (("exec → handshake line", wall, "ms"), ("CPU until then", cpu, "ms"))
    for measure, data, unit in measures:
        for tls in ("off", "on"):
            for subject in [*subjects, *problems]:
                ctx.results.add(
                    Row(
                        START,
                        f"{measure}, TLS {tls}",
                        subject,
                        unit,
                        data.get((subject, tls), []),
                        baseline=None if subject == "floor" else "floor",
                        label=labels[subject],
                        error=problems.get(subject) or errors.get((subject, tls)),
                        note=CPU_NOTE if data is cpu else "",
                    )
                )
