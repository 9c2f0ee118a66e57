"""What the suite needs before it measures: compiled messages, the peers' virtual environments.

Everything lands in ``bench/out/`` (git-ignored). The peers are installed from PyPI into their
own venvs there, never into the project's: ``venv-pyvider`` (pyvider-rpcplugin) and
``venv-bp2c`` (betterproto2-compiler). When an install fails, :func:`peer_venv` returns the
reason, which the results table prints instead of a number.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
PLUGINS = BENCH / "plugins"
PROTO_ROOT = ROOT / "tests" / "protos"
CONFORMANCE = "conformance/v1/conformance.proto"
PY = sys.executable

PYVIDER = "pyvider-rpcplugin==0.5.5"
BP2C = "betterproto2-compiler==0.10.1"


def protoc_include() -> str:
    """grpc_tools' bundled well-known types."""
    from grpc_tools import protoc

    return str(Path(protoc.__file__).parent / "_proto")


def compile_messages() -> Path:
    """``conformance.v1`` messages as ``_pb2`` modules in a content-keyed dir (made once)."""
    source = (PROTO_ROOT / CONFORMANCE).read_bytes()
    out = OUT / f"pb-{hashlib.sha256(source).hexdigest()[:12]}"
    if (out / "conformance" / "v1" / "conformance_pb2.py").exists():
        return out
    from grpc_tools import protoc

    OUT.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pb-", dir=OUT))
    try:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{protoc_include()}",
            f"--python_out={staging}",
            CONFORMANCE,
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {CONFORMANCE}")
        for pkg in ("conformance", "conformance/v1"):
            (staging / pkg / "__init__.py").touch()
        os.replace(staging, out)
    except OSError:
        if not (out / "conformance").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


@dataclass(frozen=True)
class Venv:
    """A peer's venv, or why there is none."""

    name: str
    python: Path | None
    problem: str | None = None

    @property
    def bin(self) -> Path:
        assert self.python is not None
        return self.python.parent


def peer_venv(name: str, requirement: str, *, install: bool) -> Venv:
    """``bench/out/venv-NAME`` with ``requirement`` installed (installing it when asked)."""
    path = OUT / f"venv-{name}"
    python = path / "bin" / "python"
    stamp = path / ".bench-installed"
    if stamp.exists() and stamp.read_text() == requirement:
        return Venv(name, python)
    if not install:
        return Venv(
            name, None, f"not installed (run without --no-install to pip install {requirement})"
        )
    log = OUT / f"venv-{name}.log"
    OUT.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(path)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ],
    ]
    with log.open("w") as out:
        for step in steps:
            print(f"[bench] {' '.join(step)}", file=sys.stderr, flush=True)
            try:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return Venv(name, None, f"`{' '.join(step[-2:])}` failed: {exc}")
            if done.returncode != 0:
                tail = log.read_text().strip().splitlines()[-3:]
                return Venv(
                    name,
                    None,
                    f"`pip install {requirement}` failed (exit {done.returncode}): "
                    + " / ".join(tail),
                )
    stamp.write_text(requirement)
    return Venv(name, python)


def bytecode_cache() -> None:
    """Let every process this run starts cache its bytecode, in ``bench/out/pycache``.

    Installed packages come with compiled bytecode; a plugin whose imports compile from source
    (``PYTHONDONTWRITEBYTECODE`` with an edited or editable work tree) would measure the
    compiler, not the import. The prefix keeps the cache out of the source tree; the suites'
    warm-up rounds fill it, so every subject is measured with warm bytecode alike.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(OUT / "pycache")


def run_dir() -> Path:
    """A fresh private directory for this run's sockets and scratch files."""
    base = Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="rpcplugin-bench-", dir=base))
