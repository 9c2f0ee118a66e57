"""The user's servicer outside the generated package (``--servicer-file``): the skeleton, the
drift check and ``--add-stubs`` work on it, ``python -m`` the generated package serves it, and
``rpcplugin-gen pack`` ships both; so OUT can stay out of version control."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import rpcplugin
from rpcplugin_gen import cli
from rpcplugin_gen.servicer_placement import Placement

from .conftest import REPO, run_cli

EXAMPLE = REPO / "examples" / "calculator"


def generate(project: Path, *extra: str) -> tuple[int, str]:
    args = ["-I", str(EXAMPLE), str(EXAMPLE / "calculator.proto"), "-o", "myplugin/gen"]
    result = run_cli([*args, "--servicer-file", "myplugin/servicer.py", *extra], cwd=project)
    return result.exit_code, result.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "myplugin").mkdir()
    (tmp_path / "myplugin" / "__init__.py").write_text("")
    return tmp_path


def test_skeleton_outside_imports_the_generated_package_and_check_passes(project: Path) -> None:
    status, err = generate(project, "-q")
    assert status == 0, err
    servicer = (project / "myplugin" / "servicer.py").read_text()
    assert "from .gen import calculator_pb2, calculator_rpc, plugin\n" in servicer
    assert not (project / "myplugin" / "gen" / "servicer.py").exists()
    assert generate(project, "--check", "-q") == (0, "")
    # the generated folder alone is regenerated; the servicer is not rewritten
    (project / "myplugin" / "servicer.py").write_text(servicer + "# mine\n")
    assert generate(project, "-q")[0] == 0
    assert (project / "myplugin" / "servicer.py").read_text().endswith("# mine\n")


def example_servicer() -> str:
    """The calculator example's servicer, as a user keeps it beside ``gen/``."""
    text = (EXAMPLE / "servicer.py").read_text()
    return text.replace("from . import calculator_pb2", "from .gen import calculator_pb2")


def test_drift_and_add_stubs_see_through_the_prefix(project: Path) -> None:
    text = example_servicer()
    start = text.index("    async def running_total(")
    end = text.index("\n\ndef main()")
    own = "from .helpers import unused  # noqa: F401\n"
    cut = text[:start].rstrip() + "\n" + text[end:]
    cut = cut.replace("from .gen import", own + "from .gen import", 1)
    (project / "myplugin" / "servicer.py").write_text(cut)
    status, err = generate(project, "--check")
    assert status == 1
    assert "myplugin/servicer.py: + Calculator.running_total: rpc RunningTotal" in err, err
    status, err = generate(project, "--add-stubs", "-q")
    assert status == 0, err
    after = (project / "myplugin" / "servicer.py").read_text()
    assert "async def running_total(" in after
    assert own in after  # the user's own relative import is untouched
    assert "from .gen import calculator_pb2, calculator_rpc, plugin" in after
    assert generate(project, "--check", "-q") == (0, "")


async def test_python_m_the_generated_package_serves_the_outside_servicer(
    project: Path,
) -> None:
    (project / "myplugin" / "servicer.py").write_text(example_servicer())
    assert generate(project, "-q")[0] == 0
    sys.path.insert(0, str(project))
    try:
        from myplugin.gen import plugin  # type: ignore[import-not-found]
        from myplugin.gen.calculator_pb2 import AddRequest  # type: ignore[import-not-found]
        from myplugin.gen.calculator_rpc import CalculatorClient  # type: ignore[import-not-found]

        env = {"PYTHONPATH": str(project)}
        command = [sys.executable, "-m", "myplugin.gen"]
        async with rpcplugin.launch(
            command, handshake=plugin.HANDSHAKE, versions=plugin.VERSIONS, env=env
        ) as conn:
            reply = await CalculatorClient(conn, timeout=30).add(AddRequest(a=19, b=23))
        assert reply.sum == 42
    finally:
        sys.path.remove(str(project))
        for name in [m for m in sys.modules if m == "myplugin" or m.startswith("myplugin.")]:
            del sys.modules[name]


def test_pack_ships_the_whole_package_around_the_generated_one(project: Path) -> None:
    (project / "myplugin" / "servicer.py").write_text(example_servicer())
    assert generate(project, "-q")[0] == 0
    args = ["pack", str(project / "myplugin" / "gen"), "-o", str(project / "dist")]
    result = CliRunner().invoke(cli.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    launcher = project / "dist" / "myplugin"  # named after the top package
    text = launcher.read_text()
    assert f"PYTHONPATH={project}" in text and "-m myplugin.gen" in text
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["RPCPLUGIN_DEBUG"] = "1"  # serve without a host: the reattach line proves it runs
    proc = subprocess.Popen([str(launcher)], env=env, stdout=subprocess.PIPE, cwd="/")
    try:
        assert proc.stdout is not None
        assert b'"myplugin.gen"' in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.mark.parametrize(
    ("servicer", "message"),
    [
        ("elsewhere/servicer.py", "in a package that contains it"),
        ("servicer.py", "is not a package (no __init__.py)"),
        ("myplugin/servicer.txt", "not a Python module file name"),
    ],
)
def test_a_servicer_the_package_cannot_import_is_refused(
    project: Path, servicer: str, message: str
) -> None:
    args = ["-I", str(EXAMPLE), str(EXAMPLE / "calculator.proto"), "-o", "myplugin/gen"]
    result = run_cli([*args, "--servicer-file", servicer], cwd=project)
    assert result.exit_code == 1
    assert message in result.stderr, result.stderr
    assert not (project / "myplugin" / "gen").exists()


def test_import_translation_round_trips() -> None:
    placement = Placement(Path("myplugin/servicer.py"), ("gen", "v1"))
    user = (
        "from __future__ import annotations\n"
        "from .gen.v1 import plugin\n"
        "from .gen.v1.kv import kv_rpc as rpc\n"
        "from .helpers import h\n"
        "from . import sibling\n"
        "from ..up import u\n"
    )
    internal = placement.from_user(user)
    assert internal.splitlines()[1:] == [
        "from . import plugin",
        "from .kv import kv_rpc as rpc",
        "from ..helpers import h",
        "from .. import sibling",
        "from ...up import u",
    ]
    assert placement.to_user(internal) == user
    assert placement.module == "...servicer"
