"""Helpers for the generator's tests: run the CLI in process, locate the proto corpus."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from rpcplugin_gen import cli

HERE = Path(__file__).resolve().parent
PROTOS = HERE / "protos"
REPO = HERE.parent.parent
GOLDEN = REPO / "tests" / "golden"

SAMPLE = (PROTOS / "sample", ["acme/svc/v1/svc.proto"])
"""The notes' sample: every call kind, nested/enum/oneof/map/optional, WKTs, keyword names, two
services in one file, a cross-package import, the handshake option."""
KV = (PROTOS / "kv", ["kvtest/v1/kv.proto", "kvtest/v2/kv.proto"])
"""Two majors of one service, negotiated by one package."""
CALLBACK = (PROTOS / "callback", ["deploy/v1/deploy.proto"])
"""A plugin service next to a host-provided one (a callback through the broker)."""
LONGNAMES = (PROTOS / "longnames", ["acme/inventory/v1/inventory.proto"])
"""Long names: signatures, unions, subscripts and docstrings that must be split to fit."""


@dataclass
class Result:
    exit_code: int
    stderr: str


def run_cli(args: Sequence[str], cwd: Path | None = None) -> Result:
    """``rpcplugin-gen ARGS`` in this process."""
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)
    return Result(result.exit_code, result.stderr)


def generate(corpus: tuple[Path, list[str]], out: Path, *extra: str) -> Result:
    root, files = corpus
    args = ["-I", str(root), *[str(root / f) for f in files], "-o", str(out), "-q", *extra]
    result = run_cli(args)
    assert result.exit_code == 0, result.stderr
    return result


def copy_corpus(corpus: tuple[Path, list[str]], into: Path) -> tuple[Path, list[str]]:
    """A writable copy of a corpus (for tests that change a proto)."""
    root, files = corpus
    shutil.copytree(root, into)
    return into, files


def mypy(paths: Sequence[str], cwd: Path) -> list[str]:
    """``mypy --strict``; the error lines. No MYPYPATH: the runtime is found as a user's mypy
    finds it, through the install (here the editable one, a plain path entry)."""
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--no-error-summary",
        "--show-error-codes",
        "--no-color-output",
        "--cache-dir",
        str(cwd / ".mypy_cache"),
        *paths,
    ]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr + done.stdout
    return [line for line in done.stdout.splitlines() if ": error:" in line]


@pytest.fixture(scope="session")
def sample_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample generated once per session into ``<tmp>/app/gen/sample`` (a sub-package)."""
    root = tmp_path_factory.mktemp("sample")
    for package in ("app", "app/gen"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    generate(SAMPLE, root / "app" / "gen" / "sample")
    return root / "app" / "gen" / "sample"


@pytest.fixture(scope="session")
def kv_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kv")
    generate(KV, root / "kvplugin")
    return root / "kvplugin"
