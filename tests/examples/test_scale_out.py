"""examples/scale-out: three plugin servers (server mode, mutual TLS) behind one balanced client;
one is SIGKILLed mid-run (calls in flight on it fail, no others), or drained (none fail)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from example_tools import mypy_strict, run_sh_block

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "scale-out"
GEN = Path(sys.executable).parent / "rpcplugin-gen"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("scale-out")
    package = parent / "worker"
    package.mkdir()
    (package / "servicer.py").write_bytes((EXAMPLE / "servicer.py").read_bytes())
    proto = EXAMPLE / "worker.proto"
    subprocess.run([str(GEN), "-q", "-I", str(EXAMPLE), str(proto), "-o", str(package)], check=True)
    return parent


def counts(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w)=(\d+)", line)}


def check(out: str, *, drained: bool) -> int:
    lines = out.splitlines()
    assert lines[0] == "3 worker servers in server mode, mutual TLS:"
    assert lines[4].startswith("one WorkerClient over ipv4:127.0.0.1:")
    assert lines[5] == f"1.0 s: server b {'drained (SIGTERM)' if drained else 'killed (SIGKILL)'}"
    before = counts(lines[6].removeprefix("before: "))
    after = counts(lines[7].removeprefix("after:  "))
    assert set(before) == {"a", "b", "c"} and min(before.values()) > 10, lines[6]
    assert set(after) == {"a", "c"} and min(after.values()) > 10, lines[7]
    failed = int(re.fullmatch(r"failed calls: (\d+)( \(\d+ UNAVAILABLE\))?", lines[9])[1])  # type: ignore[index]
    assert lines[-1] == "OK: b left the rotation; a and c kept serving", out
    return failed


def test_readme_run_one_server_killed(tmp_path: Path) -> None:
    result = run_sh_block(EXAMPLE / "README.md", tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    failed = check(result.stdout, drained=False)
    assert failed <= 8  # only the calls in flight on b: one per caller at most
    print(
        f"scale-out example: server b SIGKILLed mid-run, {failed} failed calls; "
        + (result.stdout.splitlines()[8])
    )


def test_drained_server_fails_no_call(generated: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "run.py"), "--drain"],
        env={**os.environ, "PYTHONPATH": str(generated)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert check(result.stdout, drained=True) == 0


def test_run_servicer_and_generated_package_pass_mypy_strict(generated: Path) -> None:
    (generated / "run.py").write_bytes((EXAMPLE / "run.py").read_bytes())
    result = mypy_strict("scale-out", [generated / "worker", generated / "run.py"], generated)
    assert result.returncode == 0, result.stdout + result.stderr
