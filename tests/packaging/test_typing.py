"""Typing under every install: ``mypy --strict`` and ``pyright`` pass on the examples' user code
(servicer and host, with their generated packages) with the editable install ``make setup``
makes and with the runtime wheel, and both catch a misuse of the runtime (so ``rpcplugin`` was
really resolved, not taken as ``Any``). No MYPYPATH anywhere: the installs alone must do.

The mypy-protobuf ``.pyi`` message stubs are the user's generated code but not checked by pyright
here: pyright reports mypy-protobuf's ``DESCRIPTOR`` overrides against types-protobuf (a matter
between those two projects); pyright still reads them for every import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rpcplugin_gen import cli

from .conftest import REPO, RuntimeVenv, run

EXAMPLES = {
    # example dir: (package, proto, the user's files beside the package)
    "calculator": ("calculator", "calculator.proto", ["host.py", "quickstart.py"]),
    "callback": ("deploy", "deploy.proto", ["host.py"]),
    "scale-out": ("worker", "worker.proto", ["run.py"]),
}
MISUSE = """\
import rpcplugin

rpcplugin.launch(42, handshake=None, versions="1")
"""
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def user_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each example generated as a user would lay it out: ``<tmp>/<example>/<package>/`` with
    the example's servicer.py, and the example's host beside it."""
    root = tmp_path_factory.mktemp("typing")
    for example, (package, proto, files) in EXAMPLES.items():
        source = REPO / "examples" / example
        out = root / example / package
        out.mkdir(parents=True)
        shutil.copy(source / "servicer.py", out / "servicer.py")
        args = ["-q", "-I", str(source), str(source / proto), "-o", str(out)]
        result = CliRunner().invoke(cli.main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        for name in files:
            shutil.copy(source / name, root / example / name)
    (root / "calculator" / "misuse.py").write_text(MISUSE)
    return root


def checkers_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}


def mypy(python: Path, where: Path, files: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "mypy"), "--strict", "--python-executable", str(python)]
    argv += ["--no-color-output", "--cache-dir", str(where / f".mypy-{python.parent.parent.name}")]
    return subprocess.run(
        [*argv, *files], cwd=where, env=checkers_env(), capture_output=True, text=True, check=False
    )


def pyright(python: Path, where: Path, files: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "pyright"), "--pythonpath", str(python), *files]
    return subprocess.run(
        argv, cwd=where, env=checkers_env(), capture_output=True, text=True, check=False
    )


def check_examples(python: Path, user_code: Path) -> None:
    for example, (package, _, files) in EXAMPLES.items():
        where = user_code / example
        sources = [*files, *sorted(str(p.relative_to(where)) for p in where.rglob("*.py"))]
        sources = sorted({s for s in sources if s != "misuse.py"})
        done = mypy(python, where, [package, *files])
        assert done.returncode == 0, f"mypy --strict, {example}:\n{done.stdout}{done.stderr}"
        done = pyright(python, where, sources)
        assert done.returncode == 0, f"pyright, {example}:\n{done.stdout}{done.stderr}"
    # and both see the runtime's real types
    where = user_code / "calculator"
    done = mypy(python, where, ["misuse.py"])
    assert done.returncode == 1 and 'incompatible type "int"' in done.stdout, done.stdout
    done = pyright(python, where, ["misuse.py"])
    assert done.returncode == 1 and '"Literal[42]"' in done.stdout, done.stdout


def test_examples_type_check_under_the_editable_install(user_code: Path) -> None:
    # the contributor venv: rpcplugin comes from its .pth path entry to runtime/
    import rpcplugin

    assert Path(rpcplugin.__file__).resolve().is_relative_to(REPO / "runtime")
    check_examples(Path(sys.executable), user_code)


def test_examples_type_check_under_the_wheel_install(
    runtime_venv: RuntimeVenv, user_code: Path
) -> None:
    # a user's own type stubs for grpcio and protobuf, beside the runtime wheel
    run([str(runtime_venv.python), "-m", "pip", "install", "-q", "types-protobuf", "types-grpcio"])
    check_examples(runtime_venv.python, user_code)
