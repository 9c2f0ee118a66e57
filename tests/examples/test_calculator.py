"""The calculator example, as `make demo` runs it; its host's calls and its own servicer tests
in process (``rpcplugin.testing``: a process is not their point)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from example_tools import import_file, mypy_strict

import rpcplugin.testing

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "calculator"
EXAMPLE_TESTS = EXAMPLE / "test_calculator_servicer.py"
EXAMPLE_TEST_NAMES = [
    node.name
    for node in ast.parse(EXAMPLE_TESTS.read_text()).body
    if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_")
]


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


@pytest.fixture(scope="module")
def in_process(generated: Path) -> Any:
    """The generated package and the example host, importable in this process."""
    sys.path.insert(0, str(generated))
    return import_file(EXAMPLE / "host.py", "calculator_example_host")


@pytest.mark.parametrize("tls", [False, True, "openssl"], ids=["plaintext", "tls", "openssl"])
async def test_host_calls_every_kind_on_the_servicer(in_process: Any, tls: Any) -> None:
    from calculator.calculator_rpc import CalculatorPlugin
    from calculator.servicer import Calculator

    report = in_process.Report()
    async with rpcplugin.testing.serve(CalculatorPlugin, Calculator(), tls=tls) as client:
        await in_process.exercise(client.with_options(timeout=10), report)
    assert report.results == {
        "Add(19, 23)": 42,
        "Fibonacci(10)": [0, 1, 1, 2, 3, 5, 8, 13, 21, 34],
        "Sum(1, 2, 3, 4)": (10, 4),
        "RunningTotal(5, 10, 20)": [5, 15, 35],
    }


@pytest.fixture(scope="module")
def example_tests(in_process: Any) -> ModuleType:
    return import_file(EXAMPLE_TESTS, "calculator_example_tests")


@pytest.mark.parametrize("name", EXAMPLE_TEST_NAMES)
async def test_the_examples_own_tests_pass(example_tests: ModuleType, name: str) -> None:
    await getattr(example_tests, name)()


def test_host_and_generated_package_pass_mypy_strict(generated: Path) -> None:
    files = [EXAMPLE / "host.py", EXAMPLE_TESTS, generated / "calculator"]
    result = mypy_strict("calculator", files, generated)
    assert result.returncode == 0, result.stdout + result.stderr
