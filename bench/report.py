"""The markdown the suite writes: the machine, the goals (met or missed), then every table."""

from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from . import prep
from .context import SUBJECTS, Context
from .gen_suite import GEN
from .import_suite import IMPORTS
from .pool_suite import POOL
from .runtime_suites import CALLS, COLD, MEMORY, TLS
from .stats import Ratio, Results, Row, difference, ratio


def num(value: float) -> str:
    if math.isnan(value):
        return "–"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine(ctx: Context) -> list[tuple[str, str]]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=prep.ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "runtime", "generator")
    rows = [
        ("date (UTC)", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")),
        ("machine", f"{os.cpu_count()} cores (nproc), {cpu}, Linux {platform.release()}"),
        ("Python", platform.python_version()),
        ("grpcio / protobuf", f"{version('grpcio')} / {version('protobuf')}"),
        ("cryptography", version("cryptography")),
        ("mypy-protobuf / grpcio-tools", f"{version('mypy-protobuf')} / {version('grpcio-tools')}"),
        ("load average (1 min) at start / end", _load(ctx)),
        ("commit", commit + (" (runtime/generator modified in the work tree)" if dirty else "")),
    ]
    if ctx.pyvider is not None:
        rows.append(
            (
                "pyvider-rpcplugin",
                "0.5.5, own venv" if ctx.pyvider.python else f"not measured: {ctx.pyvider.problem}",
            )
        )
    if ctx.bp2c is not None:
        rows.append(
            (
                "betterproto2-compiler",
                "0.10.1, own venv" if ctx.bp2c.python else f"not measured: {ctx.bp2c.problem}",
            )
        )
    c = ctx.counts
    rows.append(
        (
            "counts",
            f"cold {c.cold_rounds} rounds; calls {c.call_rounds} rounds × {c.unary_calls} unary / "
            f"{c.inflight_calls} in flight / {c.stream_msgs} streamed; imports {c.import_rounds}; "
            f"generation {c.gen_rounds_typical} + {c.gen_rounds_synth}; go {c.go_rounds}; "
            f"pool {c.pool_rounds} rounds × {c.pool_hash_calls} Hash",
        )
    )
    return rows


def _load(ctx: Context) -> str:
    start = f"{ctx.load_at_start[0]:.1f}" if ctx.load_at_start else "?"
    return f"{start} / {os.getloadavg()[0]:.1f} (other processes share these 2 cores)"


@dataclass(frozen=True)
class Goal:
    text: str
    target: str
    measured: str
    verdict: str


def _check(
    text: str,
    target: str,
    value: Ratio | None,
    ok: Callable[[float], bool],
    unit: str,
    miss: Callable[[float], str],
    why: str = "",
) -> Goal:
    """A goal's verdict from the median, qualified by where the run's p10–p90 lies."""
    if value is None:
        return Goal(text, target, "–", f"not measured{': ' + why if why else ''}")
    spread = "" if not value.paired else f" (p10–p90 {num(value.p10)}–{num(value.p90)})"
    measured = f"{num(value.median)}{unit}{spread}"
    both = ok(value.p10) == ok(value.p90) == ok(value.median)
    if ok(value.median):
        verdict = "met" if both or not value.paired else "met (within this run's noise)"
    else:
        verdict = f"**missed**: {miss(value.median)}"
        if value.paired and not both:
            verdict += " (within this run's noise)"
    return Goal(text, target, measured, verdict)


def goals(res: Results, ctx: Context) -> list[Goal]:
    def row(section: str, measure_start: str, subject: str) -> Row | None:
        for r in res.rows:
            if (
                r.section == section
                and r.measure.startswith(measure_start)
                and (r.subject == subject)
            ):
                return r
        return None

    def rat(section: str, measure: str, subject: str, base: str) -> Ratio | None:
        a, b = row(section, measure, subject), row(section, measure, base)
        return ratio(a, b) if a and b else None

    def pct_over(limit: float) -> Callable[[float], str]:
        return lambda v: f"{(v / limit - 1) * 100:.1f} % over the limit"

    def pct_under(limit: float) -> Callable[[float], str]:
        return lambda v: f"{(1 - v / limit) * 100:.1f} % short"

    out: list[Goal] = []
    for tls in ("off", "on"):
        m = f"exec → first answer, TLS {tls}"
        out.append(
            _check(
                f"cold start, TLS {tls}: ours vs floor",
                "≤ 1.10×",
                rat(COLD, m, "ours", "floor"),
                lambda v: v <= 1.10,
                "×",
                pct_over(1.10),
            )
        )
        if ctx.generated_plugin is not None:
            out.append(
                _check(
                    f"cold start, TLS {tls}: generated plugin vs floor",
                    "≤ 1.10×",
                    rat(COLD, m, "ours-gen", "floor"),
                    lambda v: v <= 1.10,
                    "×",
                    pct_over(1.10),
                )
            )
        out.append(
            _check(
                f"cold start, TLS {tls}: pyvider / ours",
                "≥ 2.5× faster",
                rat(COLD, m, "pyvider", "ours"),
                lambda v: v >= 2.5,
                "×",
                pct_under(2.5),
                why="pyvider not installed",
            )
        )
    from .import_suite import CPU, WALL

    for measure, how in ((CPU, "CPU"), (WALL, "wall")):
        base = res.find(IMPORTS, measure, "grpc")
        floor = res.find(IMPORTS, measure, "floor-plugin")
        for subject, text, against in (
            ("ours-plugin", "plugin-side import (rpcplugin.serve) over `import grpc`", base),
            (
                "ours-plugin-msgs",
                "a plugin's imports with its messages: ours over the floor's",
                floor,
            ),
            ("ours-gen", "generated plugin's imports over the floor's", floor),
        ):
            mine = res.find(IMPORTS, measure, subject)
            if mine is None or against is None:
                continue
            out.append(
                _check(
                    f"{text} ({how})",
                    "≤ +15 ms",
                    difference(mine, against),
                    lambda v: v <= 15,
                    " ms",
                    lambda v: f"{v - 15:.0f} ms over",
                )
            )
    typed_why = ctx.generator_problem or ""
    out.append(
        _check(
            "unary p50: generated client vs raw stub, same channel",
            "≤ 1.05×",
            rat(CALLS, "unary p50", "ours-typed", "ours"),
            lambda v: v <= 1.05,
            "×",
            pct_over(1.05),
            why=typed_why,
        )
    )
    for measure, label in (
        ("64 in flight", "64 in-flight unary"),
        ("server stream", "server stream 1 KiB"),
    ):
        out.append(
            _check(
                f"{label}: ours vs floor",
                "≥ 0.95×",
                rat(CALLS, measure, "ours", "floor"),
                lambda v: v >= 0.95,
                "×",
                pct_under(0.95),
            )
        )
        out.append(
            _check(
                f"{label}: generated client vs raw stub",
                "≥ 0.95×",
                rat(CALLS, measure, "ours-typed", "ours"),
                lambda v: v >= 0.95,
                "×",
                pct_under(0.95),
                why=typed_why,
            )
        )
    native = "grpcio TLS both sides"
    for subject, where in (
        ("OpenSSL relay in the plugin (Go host path)", "in the plugin"),
        ("OpenSSL relay in the host (Go plugin path)", "in the host"),
    ):
        out.append(
            _check(
                f"OpenSSL relay {where} vs grpcio TLS: unary p50",
                "≤ 1.3×",
                rat(TLS, "unary p50", subject, native),
                lambda v: v <= 1.3,
                "×",
                pct_over(1.3),
            )
        )
        out.append(
            _check(
                f"OpenSSL relay {where} vs grpcio TLS: stream msgs/s",
                "≥ 0.7×",
                rat(TLS, "server stream", subject, native),
                lambda v: v >= 0.7,
                "×",
                pct_under(0.7),
            )
        )
    for tls in ("off", "on"):
        out.append(
            _check(
                f"plugin RSS idle, TLS {tls}: ours vs floor",
                "≤ 1.10×",
                rat(MEMORY, f"plugin RSS idle, TLS {tls}", "ours", "floor"),
                lambda v: v <= 1.10,
                "×",
                pct_over(1.10),
            )
        )
    out += _close_goals(row, 50, "(ours)")
    out.append(
        _check(
            "pool of 2 vs one plugin: CPU-bound throughput (issue 16)",
            "≥ 1.7×",
            rat(POOL, "CPU-bound throughput", "pool2", "one"),
            lambda v: v >= 1.7,
            "×",
            pct_under(1.7),
        )
    )
    out.append(
        _check(
            "pool of 2 vs one plugin: unary p50 (issue 16)",
            "≤ 1.05×",
            rat(POOL, "unary p50", "pool2", "one"),
            lambda v: v <= 1.05,
            "×",
            pct_over(1.05),
        )
    )
    synth = next(
        (r for r in res.rows if r.section == GEN and r.measure.startswith("synthetic")), None
    )
    gen_ratio = None
    if synth is not None:
        gen_ratio = rat(GEN, synth.measure, "ours", "protoc-mypy")
    out.append(
        _check(
            "generation, synthetic set: rpcplugin-gen vs protoc + mypy-protobuf",
            "≤ 1.25×",
            gen_ratio,
            lambda v: v <= 1.25,
            "×",
            pct_over(1.25),
            why=ctx.generator_problem or "",
        )
    )
    out += _cold_start_goals(res, ctx, rat, row)
    return out


def _cold_start_goals(
    res: Results,
    ctx: Context,
    rat: Callable[[str, str, str, str], Ratio | None],
    row: Callable[[str, str, str], Row | None],
) -> list[Goal]:
    """Issue 15's tighter start-up goals (the rows above keep issue 6's)."""
    from .import_suite import CPU

    out: list[Goal] = []
    for tls in ("off", "on"):
        out.append(
            _check(
                f"cold start, TLS {tls}: generated plugin vs floor (issue 15)",
                "≤ 1.05×",
                rat(COLD, f"exec → first answer, TLS {tls}", "ours-gen", "floor"),
                lambda v: v <= 1.05,
                "×",
                lambda v: f"{(v / 1.05 - 1) * 100:.1f} % over the limit",
                why=ctx.generator_problem or "",
            )
        )
    mine, base = res.find(IMPORTS, CPU, "ours-plugin"), res.find(IMPORTS, CPU, "grpc")
    out.append(
        _check(
            "plugin-side import (rpcplugin.serve) over `import grpc`, CPU (issue 15)",
            "≤ +10 ms",
            difference(mine, base) if mine and base else None,
            lambda v: v <= 10,
            " ms",
            lambda v: f"{v - 10:.0f} ms over",
        )
    )
    return out + _close_goals(row, 25, "ours (issue 15)")


def _close_goals(row: Callable[[str, str, str], Row | None], limit: float, who: str) -> list[Goal]:
    out = []
    for tls in ("off", "on"):
        r = row(MEMORY, f"close → process reaped, TLS {tls}", "ours")
        value = None if r is None or not r.samples else Ratio(r.median, r.p10, r.p90, True)
        out.append(
            _check(
                f"close → process reaped, TLS {tls} {who}",
                f"≤ {limit:g} ms",
                value,
                lambda v: v <= limit,
                " ms",
                lambda v: f"{v - limit:.0f} ms over",
            )
        )
    return out


def _ratio_cell(row: Row, res: Results) -> str:
    if row.baseline is None:
        return ""
    base = res.find(row.section, row.measure, row.baseline)
    if base is None:
        return ""
    diff = row.section == IMPORTS
    value = difference(row, base) if diff else ratio(row, base)
    if value is None:
        return "–"
    name = base.label or SUBJECTS.get(base.subject, base.subject)
    text = f"{value.median:+.1f} ms vs {name}" if diff else f"{num(value.median)}× {name}"
    if value.paired and len(row.rounds) > 2:
        if diff:
            text += f" ({value.p10:+.1f}…{value.p90:+.1f})"
        else:
            text += f" ({num(value.p10)}–{num(value.p90)})"
    return text


def render(ctx: Context) -> str:
    res = ctx.results
    lines = ["# rpcplugin benchmark results", ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine(ctx)]
    lines += [
        "",
        "Medians with p10–p90 in brackets. Ratios are per-round ratios against the baseline named "
        "in the cell (rounds interleave the subjects, so drift hits both sides alike), and their "
        "median. A verdict is the median's; *within this run's noise* means the p10–p90 of the "
        "paired ratios straddles the target, so another run may well decide otherwise. How each "
        "figure is measured: `bench/README.md`.",
        "",
        "## Goals (issues 6 and 15)",
        "",
        "| goal | target | measured | verdict |",
        "|---|---|---|---|",
    ]
    lines += [f"| {g.text} | {g.target} | {g.measured} | {g.verdict} |" for g in goals(res, ctx)]
    for section in res.sections():
        lines += ["", f"## {section}", ""]
        rows = [r for r in res.rows if r.section == section]
        if rows:
            lines += [
                "| measure | subject | median | p10–p90 | n | ratio |",
                "|---|---|---:|---:|---:|---|",
            ]
            for r in rows:
                name = r.label or SUBJECTS.get(r.subject, r.subject)
                if r.error:
                    lines.append(f"| {r.measure} | {name} | failed | | | {_cell(r.error)} |")
                    continue
                if not r.samples:
                    lines.append(f"| {r.measure} | {name} | – | | 0 | |")
                    continue
                lines.append(
                    f"| {r.measure} | {name} | {num(r.median)} {r.unit} | "
                    f"{num(r.p10)}–{num(r.p90)} | {len(r.samples)} | {_ratio_cell(r, res)} |"
                )
            notes = sorted({r.note for r in rows if r.note})
            if notes:
                lines.append("")
                lines += [f"- {n}" for n in notes]
        for text in res.notes.get(section, []):
            lines += ["", text]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:400]


def write(ctx: Context, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(ctx))
