"""protoc-gen-rpcplugin emits the same generated files as rpcplugin-gen.

Like ``buf generate``: ``strategy: all`` is one protoc run over every file; ``strategy: directory``
is one run per directory (here with ``package=false``, as the plugin's docs say).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rpcplugin_gen import compiler, protoc_plugin
from rpcplugin_gen.errors import GenerationError

from .conftest import KV, SAMPLE, generate

PLUGIN = Path(sys.executable).with_name("protoc-gen-rpcplugin")
PACKAGE_FILES = {"plugin.py", "__main__.py", "py.typed"}


def _protoc(
    protoc: list[str], root: Path, files: list[str], out: Path, opt: str = ""
) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    includes = [root, compiler.runtime_protos_root(), compiler.well_known_types_dir()]
    args = [
        *protoc,
        *[f"-I{i}" for i in includes],
        f"--plugin=protoc-gen-rpcplugin={PLUGIN}",
        f"--rpcplugin_out={out}",
        *([f"--rpcplugin_opt={opt}"] if opt else []),
        *files,
    ]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


GRPC_TOOLS = [sys.executable, "-m", "grpc_tools.protoc"]
PROTOCS = {"grpc_tools": GRPC_TOOLS}
if shutil.which("protoc"):
    PROTOCS["system"] = [str(shutil.which("protoc"))]


@pytest.mark.parametrize("protoc", sorted(PROTOCS))
def test_strategy_all_matches_the_cli(protoc: str, tmp_path: Path) -> None:
    root, _ = SAMPLE
    files = ["acme/common/v1/common.proto", "acme/svc/v1/svc.proto"]
    generate(SAMPLE, tmp_path / "cli")
    done = _protoc(PROTOCS[protoc], root, files, tmp_path / "plugin")
    assert done.returncode == 0, done.stderr
    cli = _tree(tmp_path / "cli")
    del cli["servicer.py"]  # the plugin writes no scaffold
    assert _tree(tmp_path / "plugin") == cli


def test_strategy_directory_matches_the_cli(tmp_path: Path) -> None:
    root, files = KV
    generate(KV, tmp_path / "cli")
    cli = _tree(tmp_path / "cli")
    plugin = tmp_path / "plugin"
    for file in files:  # one protoc run per directory, as buf does
        done = _protoc(GRPC_TOOLS, root, [file], plugin, "package=false")
        assert done.returncode == 0, done.stderr
    produced = _tree(plugin)
    assert produced
    for path, content in produced.items():
        assert content == cli[path], path
    missing = set(cli) - set(produced)
    assert missing == {"servicer.py", "__init__.py", "kvtest/__init__.py", *PACKAGE_FILES}


def test_unknown_option_is_an_error(tmp_path: Path) -> None:
    root, files = KV
    done = _protoc(GRPC_TOOLS, root, files[:1], tmp_path / "out", "async_only=true")
    assert done.returncode != 0
    assert "unknown plugin option 'async_only'" in done.stderr


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ("package=maybe", "use true or false"),
        ("protocol_version=x", "is not a number"),
        ("cookie_key", "is not key=value"),
    ],
)
def test_bad_option_values(parameter: str, message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        protoc_plugin.parse_parameter(parameter)


def test_versions_and_protocol_version_together_are_an_error(tmp_path: Path) -> None:
    """The same refusal as ``rpcplugin-gen --versions 5,6 --protocol-version 3``."""
    root, files = KV
    done = _protoc(GRPC_TOOLS, root, files[:1], tmp_path / "out", "protocol_version=3,versions=5:6")
    assert done.returncode != 0
    assert "give --versions V,V... or --protocol-version, not both" in done.stderr


def test_options_reach_the_output(tmp_path: Path) -> None:
    root, files = KV
    opt = "cookie_key=MY_COOKIE,cookie_value=abc,protocol_version=7,name=kv-plugin"
    done = _protoc(GRPC_TOOLS, root, [files[0]], tmp_path / "out", opt)
    assert done.returncode == 0, done.stderr
    plugin = (tmp_path / "out" / "plugin.py").read_text()
    assert 'cookie_key="MY_COOKIE"' in plugin
    assert "VERSIONS: _typing.Final = (7,)" in plugin
    assert 'NAME: _typing.Final[str | None] = "kv-plugin"' in plugin
