"""Fixtures shared by the whole suite: compiled conformance protos and a launcher for the Python
conformance plugin (``tests/peers/pyplugin.py``). The machinery lives in ``tests/peers/harness.py``;
tests import its types and helpers from there.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from peers.conformance_protos import compile_protos
from peers.harness import Launcher


@pytest.fixture(scope="session")
def pb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The conformance ``_pb2`` modules, compiled once per session and put on ``sys.path``."""
    out = compile_protos(tmp_path_factory.mktemp("conformance-pb") / "out")
    sys.path.insert(0, str(out))
    return out


@pytest.fixture(scope="session")
def pb(pb_dir: Path) -> SimpleNamespace:
    """``pb.v1`` and ``pb.v2``: the conformance message modules."""
    return SimpleNamespace(
        v1=importlib.import_module("conformance.v1.conformance_pb2"),
        v2=importlib.import_module("conformance.v2.conformance_pb2"),
    )


@pytest.fixture
def launch(pb_dir: Path) -> Iterator[Launcher]:
    """Launch conformance plugins: ``launch({"PLUGIN_PROTOCOL_VERSIONS": "1,2"})``."""
    launcher = Launcher(pb_dir)
    yield launcher
    problems = launcher.cleanup()
    assert not problems, "\n".join(problems)
