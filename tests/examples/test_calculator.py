"""The calculator example, as `make demo` runs it, and its host against the generated package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from example_tools import mypy_strict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "calculator"


def test_make_demo_runs_every_call_kind_with_mutual_tls() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "negotiated app protocol version: 1" in out
    assert "TLS:                             on: mutual (AutoMTLS)" in out
    assert "Add(19, 23)                42" in out
    assert "[0, 1, 1, 2, 3, 5, 8, 13, 21, 34]" in out
    assert "(10, 4)" in out and "[5, 15, 35]" in out
    assert "exit status                0" in out
    assert "Traceback" not in result.stderr
    # the README shows this output: its stable lines (no pids, paths or timings) must be real
    readme = (ROOT / "README.md").read_text().split("<!-- demo-output")[1].split("```text\n")[1]
    shown = readme.split("```")[0].splitlines()
    volatile = ("transport:", "plugin pid:", "rpcplugin-gen: ")
    for line in shown:
        if line.strip() and not line.startswith(volatile):
            assert line in out.splitlines(), f"README demo output line not produced: {line!r}"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(EXAMPLE))
    import demo

    parent = tmp_path_factory.mktemp("calc")
    demo.generate(str(parent))
    return parent


def test_readme_quickstart_runs_as_shown(generated: Path) -> None:
    # the README's launch example, whole: run from the directory holding calculator/
    script = generated / "quickstart.py"
    script.write_bytes((EXAMPLE / "quickstart.py").read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=generated,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("19 + 23 = 42 (plugin pid "), result.stdout


@pytest.mark.parametrize("auto_mtls", [True, False])
def test_host_against_generated_package(generated: Path, auto_mtls: bool) -> None:
    code = (
        "import asyncio, sys, host\n"
        f"r = asyncio.run(host.run({str(generated)!r}, auto_mtls={auto_mtls}))\n"
        "print(r.tls, r.results)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(generated), str(EXAMPLE)])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    tls, _, results = result.stdout.strip().partition(" ")
    assert tls == ("grpc" if auto_mtls else "off")
    assert "'Add(19, 23)': 42" in results and "'exit status': 0" in results


def test_host_and_generated_package_pass_mypy_strict(generated: Path) -> None:
    files = [EXAMPLE / "host.py", generated / "calculator"]
    result = mypy_strict("calculator", files, generated)
    assert result.returncode == 0, result.stdout + result.stderr
