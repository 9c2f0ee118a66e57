"""The benchmark suite still runs: ``python -m bench --smoke`` with tiny counts.

Timings are not asserted (they are noise at these counts); what is checked is that every suite
ran, every subject produced a number and the results file has its tables. The full suite is
``make bench`` (minutes, not part of CI's pass/fail).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    text = out.read_text()
    for heading in (
        "## Goals (issues 6 and 15)",
        "## Import cost",
        "## Cold start",
        "## Start to handshake line",
        "## Plugin memory and teardown",
        "## Per call",
        "## TLS paths",
        "## Generation, end to end",
        "## Where our import time goes",
        "## Pool of launched plugins",
    ):
        assert heading in text, f"{heading!r} missing from the results:\n{text}"
    assert "| failed |" not in text, text
    for subject in (
        "bare grpcio floor",
        "rpcplugin (ours)",
        "generated plugin, pack launcher",
        "grpc_tools.protoc + mypy-protobuf",
        "pool of 2",
        "pool of 4",
        "round_robin channel over the same 2",
    ):
        assert subject in text, f"{subject!r} missing from the results:\n{text}"
