"""Import cost: what a plugin pays before it can serve, against ``import grpc``.

Each subject is a fresh interpreter (``python -c CODE``) timed from spawn to exit, interleaved
round by round. ``-X importtime`` then shows where our share goes: every module the plugin side
imports that ``import grpc`` does not, with its self time.
"""

from __future__ import annotations

import os
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


def _run(probe: _Probe, env: dict[str, str]) -> float:
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
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace").strip().splitlines()[-1])
    return elapsed


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def probes(ctx: Context) -> list[_Probe]:
    py = ctx.python
    found = [
        _Probe("python", "python -c pass", py, "pass"),
        _Probe("grpc", "import grpc", py, "import grpc"),
        _Probe(
            "ours-plugin",
            "ours, plugin side: rpcplugin.serve",
            py,
            "import rpcplugin; rpcplugin.serve",
        ),
        _Probe(
            "ours-host",
            "ours, host side: rpcplugin.launch",
            py,
            "import rpcplugin; rpcplugin.launch",
        ),
    ]
    if ctx.generated_plugin is not None:
        package = ctx.generated_plugin
        found.append(
            _Probe(
                "ours-gen",
                f"ours, generated plugin: import {package.name}.plugin",
                py,
                f"import rpcplugin; rpcplugin.serve; import {package.name}.plugin",
                cwd=str(package.parent),
            )
        )
    if ctx.pyvider is not None and ctx.pyvider.python is not None:
        vpy = str(ctx.pyvider.python)
        found += [
            _Probe("pyvider-grpc", "pyvider venv: import grpc", vpy, "import grpc"),
            _Probe("pyvider", "pyvider: import pyvider.rpcplugin", vpy, "import pyvider.rpcplugin"),
        ]
    return found


def import_suite(ctx: Context) -> None:
    found = probes(ctx)
    env = _env()
    samples: dict[str, list[float]] = {p.key: [] for p in found}
    errors: dict[str, str] = {}
    for r in range(-ctx.counts.warmup, ctx.counts.import_rounds):
        if r % 5 == 0:
            ctx.say(f"import round {r + 1}/{ctx.counts.import_rounds}")
        for key in rotate([p.key for p in found], r):
            probe = next(p for p in found if p.key == key)
            if key in errors:
                continue
            try:
                elapsed = _run(probe, env)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                errors[key] = str(exc)
                continue
            if r >= 0:
                samples[key].append(elapsed * 1000)
    base_of = {
        "grpc": "python",
        "ours-plugin": "grpc",
        "ours-host": "grpc",
        "ours-gen": "grpc",
        "pyvider": "pyvider-grpc",
    }
    for probe in found:
        ctx.results.add(
            Row(
                IMPORTS,
                probe.label,
                probe.key,
                "ms",
                samples[probe.key],
                baseline=base_of.get(probe.key),
                error=errors.get(probe.key),
            )
        )
    ctx.results.note(
        IMPORTS,
        "Ratios here are differences: the subject's time minus its baseline's, paired by round "
        "(the interpreter's own start-up cancels out).",
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
    code = "import rpcplugin; rpcplugin.serve"
    ours: dict[str, list[int]] = {}
    grpc_modules: set[str] = set()
    for _ in range(runs):
        grpc_modules |= set(importtime(ctx.python, "import grpc", env))
        for name, us in importtime(ctx.python, code, env).items():
            ours.setdefault(name, []).append(us)
    extra = {name: median(times) / 1000 for name, times in ours.items() if name not in grpc_modules}
    total = sum(extra.values())
    by_package: dict[str, float] = {}
    for name, ms in extra.items():
        top = name.split(".")[0]
        by_package[top] = by_package.get(top, 0.0) + ms
    ranked = sorted(extra.items(), key=lambda kv: -kv[1])[:12]
    lines = [
        f"`{code}` imports {len(extra)} modules that `import grpc` does not, "
        f"{total:.1f} ms of self time in all (median of {runs} runs; -X importtime inflates "
        "absolute times somewhat):",
        "",
        "| package | self ms |",
        "|---|---:|",
        *(
            f"| {pkg} | {ms:.1f} |"
            for pkg, ms in sorted(by_package.items(), key=lambda kv: -kv[1])
            if ms >= 0.05
        ),
        "",
        "| heaviest modules | self ms |",
        "|---|---:|",
        *(f"| {name} | {ms:.2f} |" for name, ms in ranked),
    ]
    ctx.results.note(WHERE, "\n".join(lines))


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
