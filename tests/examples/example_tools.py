"""What the example tests share: running a README's shell block, and mypy --strict.

``run_sh_block``: run the shell block of an example's README, so the build-by-hand steps cannot
drift. The block is the ```` ```sh ```` block right after a ``<!-- run by tests/... -->`` line.
Its first line must set ``B=$PWD/build/<something>`` (where everything is built); the test points
``B`` at a temporary directory instead, and ``.venv/bin/`` at the running interpreter's
directory. The Go build cache is the one ``tests/gopeers.py`` keeps warm, so a run costs one
link, not a rebuild of grpc-go.

``import_file``: import an example's file in this process under a name of its own (several
examples have a ``host.py``, and ``tests/`` has test modules named like the examples' own).

``mypy_strict``: type-check an example's Python files together with its generated package, with a
persistent cache per example (``.mypy_cache/examples/<name>``, git-ignored): mypy validates
cached modules by content hash, so a warm run takes well under a second instead of ~8 s (most of
it grpc's and protobuf's stubs), while a changed file is still checked afresh.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from gopeers import BIN_DIR

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"<!-- run by tests/[^>]*-->\n```sh\n(?P<body>.*?)```", re.S)
_FIRST = re.compile(r"B=\$PWD/build/[\w.-]+(?=\s|$)")


def sh_block(readme: Path) -> str:
    """The README's one runnable ``sh`` block."""
    blocks = _BLOCK.findall(readme.read_text())
    assert len(blocks) == 1, f"{readme}: want one runnable sh block, found {len(blocks)}"
    body: str = blocks[0]
    assert _FIRST.match(body), f"{readme}: the block must start with B=$PWD/build/..."
    return body


def run_sh_block(
    readme: Path, out_dir: Path, *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the block from the repository root with ``B=out_dir``; stdout and stderr captured."""
    body = _FIRST.sub(lambda _: f"B={out_dir}", sh_block(readme), count=1)
    body = body.replace(".venv/bin/", f"{Path(sys.executable).parent}{os.sep}")
    env = {**os.environ, "GOCACHE": str(BIN_DIR / ".cache")}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", body],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def import_file(path: Path, name: str) -> ModuleType:
    """Import ``path`` as the module ``name`` (its own imports resolve through ``sys.path``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look their module up by name
    spec.loader.exec_module(module)
    return module


def mypy_strict(
    name: str, files: Sequence[Path], generated_parent: Path
) -> subprocess.CompletedProcess[str]:
    """``mypy --strict files`` run in ``generated_parent``; the runtime comes from the install
    (no MYPYPATH), as it does for a user."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(ROOT / ".mypy_cache" / "examples" / name),
            *(str(f) for f in files),
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MYPYPATH"},
        cwd=generated_parent,
        timeout=300,
    )
