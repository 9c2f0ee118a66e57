"""Generation time: rpcplugin-gen against grpc_tools.protoc + mypy-protobuf alone.

Run ``python tests/generator/bench_generation.py [RUNS]`` (default 5). Each figure is the median
wall time of a fresh process, end to end, as a user would run it:

- ``protoc+mypy``: ``python -m grpc_tools.protoc --python_out --mypy_out`` (mypy-protobuf as a
  protoc plugin), the baseline: messages only, absolute imports, no services;
- ``rpcplugin-gen``: the CLI (messages, stubs, relative imports, services, package files);
- ``protoc-gen-rpcplugin``: our protoc plugin through ``grpc_tools.protoc``.

Inputs: the sample corpus (3 files, 2 services) and the synthetic set (``synth.py``: 40 files,
1,200 messages, 400 RPCs).
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synth  # noqa: E402

from rpcplugin_gen import compiler  # noqa: E402

BIN = Path(sys.executable).parent


def _time(commands: dict[str, list[str]], out: Path, runs: int) -> dict[str, tuple[float, float]]:
    """Median wall time and median CPU time (user+sys, all processes) per command.

    Runs are interleaved so background load hits all commands alike; CPU time is the figure
    to trust on a busy machine, wall time the one a user sees (it includes our parallelism).
    """
    wall: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            wall[label].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[label].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {
        label: (statistics.median(wall[label]), statistics.median(cpu[label])) for label in commands
    }


def bench(name: str, root: Path, files: list[str], work: Path, runs: int) -> None:
    includes = [f"-I{root}", f"-I{compiler.runtime_protos_root()}"]
    includes.append(f"-I{compiler.well_known_types_dir()}")
    protoc = [sys.executable, "-m", "grpc_tools.protoc", *includes]
    out = work / "out"
    rows = {
        "protoc+mypy": [
            *protoc,
            f"--python_out={out}",
            f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
            f"--mypy_out=quiet:{out}",
            *files,
        ],
        "rpcplugin-gen": [
            str(BIN / "rpcplugin-gen"),
            "-q",
            "-I",
            str(root),
            *[str(root / f) for f in files],
            "-o",
            str(out / "pkg"),
        ],
        "protoc-gen-rpcplugin": [
            *protoc,
            f"--plugin=protoc-gen-rpcplugin={BIN / 'protoc-gen-rpcplugin'}",
            f"--rpcplugin_out={out}",
            *files,
        ],
    }
    for label, (wall, cpu) in _time(rows, out, runs).items():
        print(
            f"{name:8} {label:22} wall {wall * 1000:6.0f} ms   cpu {cpu * 1000:6.0f} ms", flush=True
        )


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sample_root = HERE / "protos" / "sample"
        sample = ["acme/common/v1/common.proto", "acme/svc/v1/svc.proto"]
        bench("sample", sample_root, sample, work, runs)
        synth_root = work / "synth"
        bench("synth", synth_root, synth.write(synth_root), work, runs)


if __name__ == "__main__":
    main()
