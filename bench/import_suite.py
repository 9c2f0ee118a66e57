"""Import cost: what a plugin pays before it can serve, against ``import grpc``.

Each subject is a fresh interpreter (``python -c CODE``) timed from spawn to exit, interleaved
round by round. ``-X importtime`` then shows where our share goes: every module the plugin side
imports that ``import grpc`` does not, with its self time.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .context import Context
from .stats import Row, median, rotate

IMPORTS = "Import cost (fresh interpreter, spawn → exit)"
WHERE = "Where our import time goes (python -X importtime)"


@dataclass(frozen=True)
class _Probe:
    key: str
    label: str
    python: str
    code: str
    cwd: str | None = None


def _run(probe: _Probe, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user+sys) seconds of one fresh interpreter running ``probe.code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [probe.python, "-c", probe.code],
        env=env,
        cwd=probe.cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace").strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def probes(ctx: Context) -> list[_Probe]:
    py = ctx.python
    messages = f"import sys; sys.path.insert(0, {str(ctx.pb_dir)!r}); " + (
        "from conformance.v1 import conformance_pb2"
    )
    found = [
        _Probe("python", "python -c pass", py, "pass"),
        _Probe("grpc", "import grpc", py, "import grpc"),
        _Probe(
            "ours-plugin",
            "ours, plugin side: import rpcplugin; rpcplugin.serve",
            py,
            "import rpcplugin; rpcplugin.serve",
        ),
        _Probe(
            "ours-host",
            "ours, host side: import rpcplugin; rpcplugin.launch",
            py,
            "import rpcplugin; rpcplugin.launch",
        ),
        _Probe(
            "floor-plugin",
            "floor plugin's imports: grpc + the service's messages",
            py,
            f"import grpc; {messages}",
        ),
        _Probe(
            "ours-plugin-msgs",
            "ours plugin's imports: rpcplugin.serve + the messages",
            py,
            f"import rpcplugin; rpcplugin.serve; {messages}",
        ),
    ]
    if ctx.generated_plugin is not None:
        package = ctx.generated_plugin
        found.append(
            _Probe(
                "ours-gen",
                f"generated plugin's imports: {package.name}.servicer "
                "(messages, servicer base, rpcplugin.serve)",
                py,
                f"import {package.name}.servicer; import rpcplugin; rpcplugin.serve",
                cwd=str(package.parent),
            )
        )
    if ctx.pyvider is not None and ctx.pyvider.python is not None:
        vpy = str(ctx.pyvider.python)
        found += [
            _Probe("pyvider-grpc", "pyvider's venv: import grpc", vpy, "import grpc"),
            _Probe("pyvider", "pyvider: import pyvider.rpcplugin", vpy, "import pyvider.rpcplugin"),
        ]
    return found


BASE_OF = {
    "grpc": "python",
    "ours-plugin": "grpc",
    "ours-host": "grpc",
    "floor-plugin": "grpc",
    "ours-plugin-msgs": "floor-plugin",
    "ours-gen": "floor-plugin",
    "pyvider": "pyvider-grpc",
}
WALL = "spawn → exit (wall)"
CPU = "CPU, user+sys"


def import_suite(ctx: Context) -> None:
    found = probes(ctx)
    if ctx.counts.minimal:
        found = [p for p in found if p.key not in ("ours-host", "ours-plugin-msgs")]
    env = _env()
    wall: dict[str, list[float]] = {p.key: [] for p in found}
    cpu: dict[str, list[float]] = {p.key: [] for p in found}
    errors: dict[str, str] = {}
    for r in range(-ctx.counts.warmup, ctx.counts.import_rounds):
        if r % 5 == 0:
            ctx.say(f"import round {r + 1}/{ctx.counts.import_rounds}")
        for key in rotate([p.key for p in found], r):
            probe = next(p for p in found if p.key == key)
            if key in errors:
                continue
            try:
                elapsed, used = _run(probe, env)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                errors[key] = str(exc)
                continue
            if r >= 0:
                wall[key].append(elapsed * 1000)
                cpu[key].append(used * 1000)
    for measure, data in ((WALL, wall), (CPU, cpu)):
        for probe in found:
            ctx.results.add(
                Row(
                    IMPORTS,
                    measure,
                    probe.key,
                    "ms",
                    data[probe.key],
                    label=probe.label,
                    baseline=BASE_OF.get(probe.key),
                    error=errors.get(probe.key),
                )
            )
    ctx.results.note(
        IMPORTS,
        "The ratio column holds differences here: the subject's time minus its baseline's, "
        "paired by round (the interpreter's own start-up cancels out). Every process runs with "
        "warm cached bytecode, as from an installed wheel.",
    )
    _importtime(ctx, env)


def importtime(
    python: str, code: str, env: dict[str, str], cwd: str | None = None
) -> dict[str, int]:
    """Self time (µs) of each module ``code`` imports, from ``-X importtime``."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
        check=True,
    )
    out: dict[str, int] = {}
    for line in done.stderr.decode().splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|", 2)
        out[name.strip()] = int(self_us)
    return out


def _importtime(ctx: Context, env: dict[str, str]) -> None:
    runs = max(1, ctx.counts.importtime_runs)
    messages = f"import sys; sys.path.insert(0, {str(ctx.pb_dir)!r}); " + (
        "from conformance.v1 import conformance_pb2"
    )
    pairs = [
        ("import rpcplugin; rpcplugin.serve", "import grpc"),
        (f"import rpcplugin; rpcplugin.serve; {messages}", f"import grpc; {messages}"),
    ]
    titles = [
        "`rpcplugin.serve` over `import grpc`",
        "our plugin's imports over the floor plugin's (both with the service's messages)",
    ]
    if ctx.counts.minimal:
        pairs, titles = pairs[1:], titles[1:]
    for (code, base_code), title in zip(pairs, titles, strict=True):
        ours: dict[str, list[int]] = {}
        base: set[str] = set()
        for _ in range(runs):
            base |= set(importtime(ctx.python, base_code, env))
            for name, us in importtime(ctx.python, code, env).items():
                ours.setdefault(name, []).append(us)
        extra = {n: median(t) / 1000 for n, t in ours.items() if n not in base}
        ctx.results.note(WHERE, _extra_table(title, extra, runs))


def _extra_table(title: str, extra: dict[str, float], runs: int) -> str:
    by_package: dict[str, float] = {}
    for name, ms in extra.items():
        top = name.split(".")[0]
        by_package[top] = by_package.get(top, 0.0) + ms
    packages = sorted(by_package.items(), key=lambda kv: -kv[1])
    ours = sorted(
        ((n, ms) for n, ms in extra.items() if n.startswith("rpcplugin")), key=lambda kv: -kv[1]
    )
    return "\n".join(
        [
            f"**{title}**: {len(extra)} more modules, {sum(extra.values()):.1f} ms of self time "
            f"(median of {runs} runs; -X importtime itself adds some). By package: "
            + ", ".join(f"{pkg} {ms:.1f}" for pkg, ms in packages if ms >= 0.1)
            + ". Our modules: "
            + ", ".join(f"{n} {ms:.1f}" for n, ms in ours if ms >= 0.1)
            + "."
        ]
    )


def plugin_modules(python: str, code: str, cwd: Path | None = None) -> list[str]:
    """The modules ``code`` leaves in ``sys.modules`` (for tests and ad-hoc digging)."""
    done = subprocess.run(
        [python, "-c", f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        env=_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()
