"""``python -m bench.sync_handlers --smoke`` still runs and reports its three subjects (timings
are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sync_handler_bench_runs() -> None:
    command = [sys.executable, "-m", "bench.sync_handlers", "--smoke"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and "µs" not in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "bare grpcio (async handler)",
        "ours, async def",
        "ours, def (worker pool)",
    ]
