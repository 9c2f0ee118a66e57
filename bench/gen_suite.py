"""Generation time, end to end: each generator as a user runs it, on the same inputs.

Inputs: a typical plugin proto (``tests/protos/conformance/v1``) and the synthetic set
(:mod:`bench.synth`: 40 files, 1,200 messages, 400 RPCs). Subjects, each a fresh process into a
fresh output directory, interleaved round by round:

- ``grpc_tools.protoc`` + mypy-protobuf: ``--python_out --grpc_python_out --mypy_out
  --mypy_grpc_out`` (typed messages and typed grpc stubs; the baseline);
- ``grpc_tools.protoc --python_out`` alone (protoc's built-in generator; for scale);
- betterproto2-compiler (its own venv; run by the same ``grpc_tools.protoc``);
- ``rpcplugin-gen`` (ours: messages, stubs, typed clients, servicer bases, the plugin package).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import prep, synth
from .context import Context
from .stats import Row, rotate

GEN = "Generation, end to end (fresh process, fresh output directory)"


@dataclass(frozen=True)
class _Generator:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class _Input:
    name: str
    root: Path
    protos: list[str]


def generators(ctx: Context, out: Path) -> list[_Generator]:
    bindir = Path(ctx.python).parent
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    protoc = [ctx.python, "-m", "grpc_tools.protoc", f"-I{prep.protoc_include()}"]
    found = [
        _Generator(
            "protoc-mypy",
            "grpc_tools.protoc + mypy-protobuf (python, grpc, mypy, mypy_grpc)",
            [
                *protoc,
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
                f"--mypy_out={out}",
                f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
                f"--mypy_grpc_out={out}",
            ],
            env,
        ),
        _Generator(
            "protoc-python",
            "grpc_tools.protoc --python_out only",
            [*protoc, f"--python_out={out}"],
            env,
        ),
    ]
    if ctx.bp2c is not None and ctx.bp2c.python is not None:
        bp_env = dict(env)
        bp_env["PATH"] = f"{ctx.bp2c.bin}{os.pathsep}{env.get('PATH', '')}"  # it runs `ruff`
        found.append(
            _Generator(
                "bp2c",
                "betterproto2-compiler 0.10.1",
                [
                    *protoc,
                    f"--plugin=protoc-gen-python_betterproto2="
                    f"{ctx.bp2c.bin / 'protoc-gen-python_betterproto2'}",
                    f"--python_betterproto2_out={out}",
                ],
                bp_env,
            )
        )
    if ctx.generator_problem is None:
        found.append(
            _Generator(
                "ours",
                "rpcplugin-gen (ours)",
                [
                    str(bindir / "rpcplugin-gen"),
                    "-q",
                    "-o",
                    str(out / "pkg"),
                    "--cookie-key",
                    "RPCPLUGIN_BENCH",
                    "--cookie-value",
                    "bench-v1",
                ],
                env,
            )
        )
    return found


def _argv(gen: _Generator, source: _Input) -> list[str]:
    if gen.key == "ours":
        return [*gen.argv, "-I", str(source.root), *source.protos]
    return [*gen.argv, f"-I{source.root}", *source.protos]


def _run(gen: _Generator, source: _Input, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    done = subprocess.run(
        _argv(gen, source),
        env=gen.env,
        cwd=source.root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=600,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        text = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"exit {done.returncode}: {text[-1] if text else ''}")
    return elapsed


def inputs(ctx: Context) -> list[tuple[_Input, int]]:
    synth_root = ctx.scratch / "synth-in"
    protos = synth.write(synth_root, ctx.counts.synth_files)
    messages, rpcs = synth.counts(ctx.counts.synth_files)
    return [
        (
            _Input(
                "typical plugin proto (conformance/v1, 1 file, 5 RPCs)",
                prep.PROTO_ROOT,
                [prep.CONFORMANCE],
            ),
            ctx.counts.gen_rounds_typical,
        ),
        (
            _Input(
                f"synthetic set ({len(protos)} files, {messages} messages, {rpcs} RPCs)",
                synth_root,
                protos,
            ),
            ctx.counts.gen_rounds_synth,
        ),
    ]


def gen_suite(ctx: Context) -> None:
    out = ctx.scratch / "gen-out"
    gens = generators(ctx, out)
    for index, (source, rounds) in enumerate(inputs(ctx)):
        samples: dict[str, list[float]] = {g.key: [] for g in gens}
        errors: dict[str, str] = {}
        # the typical input's warm-up rounds fill every generator's bytecode cache; the
        # synthetic set (a betterproto2 run takes ~15 s) needs none of its own
        warmup = ctx.counts.warmup if index == 0 else 0
        for r in range(-warmup, rounds):
            ctx.say(f"generation, {source.name.split(' (')[0]}: round {r + 1}/{rounds}")
            for key in rotate([g.key for g in gens], r):
                gen = next(g for g in gens if g.key == key)
                if key in errors:
                    continue
                try:
                    elapsed = _run(gen, source, out)
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                    errors[key] = str(exc)
                    continue
                if r >= 0:
                    samples[key].append(elapsed * 1000)
        for gen in gens:
            ctx.results.add(
                Row(
                    GEN,
                    source.name,
                    gen.key,
                    "ms",
                    samples[gen.key],
                    baseline=None if gen.key == "protoc-mypy" else "protoc-mypy",
                    error=errors.get(gen.key),
                    label=gen.label,
                )
            )
    if ctx.generator_problem is not None:
        ctx.results.note(GEN, f"rpcplugin-gen not measured: {ctx.generator_problem}")
    shutil.rmtree(out, ignore_errors=True)
