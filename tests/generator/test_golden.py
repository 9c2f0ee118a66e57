"""Golden files: the generator's own output for the corpus, byte for byte.

Our modules (``*_rpc.py``, ``plugin.py``, ``__main__.py``, the ``servicer.py`` skeleton) are
compared in full. Of protoc's ``_pb2.py`` and mypy-protobuf's ``.pyi`` only the import lines are
pinned (in ``IMPORTS``): their bodies belong to those tools and change with their versions.
``MANIFEST`` lists every file generated.

After an intended change: ``RPCPLUGIN_UPDATE_GOLDEN=1 pytest tests/generator/test_golden.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CALLBACK, GOLDEN, KV, LONGNAMES, SAMPLE, generate

UPDATE = bool(os.environ.get("RPCPLUGIN_UPDATE_GOLDEN"))
CORPORA = {"sample": SAMPLE, "kv": KV, "callback": CALLBACK, "longnames": LONGNAMES}


def _snapshot(out: Path) -> dict[str, str]:
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    snapshot = {"MANIFEST": "".join(f"{f}\n" for f in files)}
    imports: list[str] = []
    for name in files:
        text = (out / name).read_text(encoding="utf-8")
        if name.endswith(("_pb2.py", "_pb2.pyi")):
            lines = [
                line
                for line in text.splitlines()
                if line.startswith(("from ", "import ")) or "BuildTopDescriptors" in line
            ]
            imports += [f"# {name}", *lines, ""]
        else:
            snapshot[name] = text
    snapshot["IMPORTS"] = "\n".join(imports)
    return snapshot


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_golden(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    generate(CORPORA[name], out)
    actual = _snapshot(out)
    golden = GOLDEN / name
    if UPDATE:
        for path, content in actual.items():
            (golden / path).parent.mkdir(parents=True, exist_ok=True)
            (golden / path).write_text(content, encoding="utf-8")
    expected = {
        p.relative_to(golden).as_posix(): p.read_text(encoding="utf-8")
        for p in golden.rglob("*")
        if p.is_file()
    }
    assert sorted(actual) == sorted(expected)
    for path in sorted(actual):
        assert actual[path] == expected[path], f"{name}/{path} differs from the golden file"


def test_output_is_deterministic(tmp_path: Path) -> None:
    generate(SAMPLE, tmp_path / "a")
    generate(SAMPLE, tmp_path / "b")
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*.py*")}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*.py*")}
    assert a == b


def test_our_modules_are_formatted_and_lint_clean(
    sample_out: Path, kv_out: Path, tmp_path: Path
) -> None:
    """``ruff format`` would change nothing; ``ruff check`` with the project's rules passes,
    E501 included: no line over 100 columns, long names too."""
    generate(LONGNAMES, tmp_path / "longnames")
    generate(CALLBACK, tmp_path / "callback")
    ours = [
        str(p)
        for out in (sample_out, kv_out, tmp_path / "longnames", tmp_path / "callback")
        for p in out.rglob("*.py")
        if not p.name.endswith("_pb2.py")
    ]
    ruff = [sys.executable, "-m", "ruff"]
    settings = ["--isolated", "--line-length", "100", "--target-version", "py311"]
    done = subprocess.run(
        [*ruff, "format", *settings, "--check", "--diff", *ours],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(
        [*ruff, "check", *settings, "--select", "E,F,W,I,UP,B,SIM,RUF", *ours],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_generated_sources_compile(sample_out: Path) -> None:
    for path in sample_out.rglob("*.py*"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_synthetic_set_parallel_equals_sequential(tmp_path: Path) -> None:
    """40 files / 400 RPCs: the forked stub workers give the same bytes as one process."""
    from . import synth

    names = synth.write(tmp_path / "protos")
    outputs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        command = [sys.executable, "-m", "rpcplugin_gen", "-q", "-I", str(tmp_path / "protos")]
        command += [str(tmp_path / "protos" / n) for n in names] + ["-o", str(out)]
        env = {**os.environ, "RPCPLUGIN_GEN_WORKERS": workers}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        outputs[workers] = {
            p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()
        }
    assert outputs["1"] == outputs["2"]
    assert len([p for p in outputs["2"] if p.name.endswith("_rpc.py")]) == synth.FILES
