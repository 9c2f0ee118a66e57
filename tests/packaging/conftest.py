"""Shared by the packaging tests: both wheels (built once per session), a fresh venv holding only
the runtime wheel, and a generated conformance plugin (Echo implemented) for the Go host.

The wheels are built with the contributor venv's setuptools (``--no-build-isolation``: no index
needed, ~2 s); the venv installs the runtime wheel and lets pip find grpcio, grpcio-reflection,
protobuf and cryptography as it would for a user (its cache makes that a few seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from rpcplugin_gen import cli

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = REPO / "tests" / "protos"
COOKIE = ("RPCPLUGIN_CONFORMANCE", "conformance-v1")  # gohost's default
GENERATOR_ONLY = ("grpcio-tools", "mypy-protobuf", "jinja2", "click")

SERVICER = '''\
"""The conformance plugin's implementation: Echo; every other RPC answers UNIMPLEMENTED."""

from __future__ import annotations

from typing import NoReturn

from . import plugin
from .conformance.v1 import conformance_pb2, conformance_rpc


class Conformance(conformance_rpc.ConformanceServicer):
    async def echo(self, request: conformance_pb2.EchoRequest, /) -> conformance_pb2.EchoReply:
        return conformance_pb2.EchoReply(text=request.text, payload=request.payload, version=1)


def main() -> NoReturn:
    plugin.serve(conformance=Conformance())
'''


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; its output is in the assertion message when it fails."""
    done = subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Wheels:
    runtime: Path
    generator: Path


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    out = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    run([*pip, "-w", str(out), str(REPO / "runtime"), str(REPO)])
    (runtime,) = out.glob("rpcplugin-*.whl")
    (generator,) = out.glob("rpcplugin_gen-*.whl")
    return Wheels(runtime, generator)


@dataclass(frozen=True)
class RuntimeVenv:
    root: Path
    python: Path
    installed: dict[str, str]
    """``pip list`` right after installing the runtime wheel: name (lower case) → version."""
    size: int
    """Bytes on disk then."""


def du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink())


def pip_list(python: Path) -> dict[str, str]:
    done = run(
        [str(python), "-m", "pip", "list", "--format", "freeze", "--disable-pip-version-check"]
    )
    pairs = (line.split("==", 1) for line in done.stdout.splitlines() if "==" in line)
    return {name.lower().replace("_", "-"): version for name, version in pairs}


@pytest.fixture(scope="session")
def runtime_venv(wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> RuntimeVenv:
    """A fresh venv with only ``pip install <runtime wheel>`` (and what pip pulls in for it)."""
    root = tmp_path_factory.mktemp("runtime-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    python = root / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", str(wheels.runtime)])
    return RuntimeVenv(root, python, pip_list(python), du(root))


@pytest.fixture(scope="session")
def conformance_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/conformance_plugin``: conformance.v1 generated with gohost's cookie around the
    user's servicer (Echo; the other RPCs answer UNIMPLEMENTED)."""
    out = tmp_path_factory.mktemp("generated") / "conformance_plugin"
    out.mkdir()
    (out / "servicer.py").write_text(SERVICER)  # the user's, written first: generation keeps it
    args = ["-I", str(CONFORMANCE), str(CONFORMANCE / "conformance/v1/conformance.proto")]
    args += ["-o", str(out), "--cookie-key", COOKIE[0], "--cookie-value", COOKIE[1], "-q"]
    result = CliRunner().invoke(cli.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert (out / "servicer.py").read_text() == SERVICER
    return out


def host_env(tmp: Path) -> dict[str, str]:
    """gohost's environment: no inherited cookie or Python path; a private TMPDIR and SHIV_ROOT."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (COOKIE[0], "PYTHONPATH", "PLUGIN_PROTOCOL_VERSIONS", "VIRTUAL_ENV")
    }
    env["TMPDIR"] = str(tmp)
    env["SHIV_ROOT"] = str(tmp / "shiv")
    return env
