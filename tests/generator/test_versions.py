"""Several app protocol versions from one proto: ``--versions`` (and ``versions`` in the
settings) maps a proto file, package or service to versions; ``plugin.py`` serves each, and a
real go-plugin host offering any one of them gets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rpcplugin_gen import project_settings
from rpcplugin_gen.errors import GenerationError

from .conftest import PROTOS, REPO, run_cli

CONFORMANCE = REPO / "tests" / "protos"
PROTO = "conformance/v1/conformance.proto"
SERVICER = """\
from typing import NoReturn

from . import plugin
from .conformance.v1 import conformance_pb2, conformance_rpc


class Conformance(conformance_rpc.ConformanceServicer):
    async def echo(
        self, request: conformance_pb2.EchoRequest, /
    ) -> conformance_pb2.EchoReply:
        return conformance_pb2.EchoReply(text=request.text, payload=request.payload)


def main() -> NoReturn:
    plugin.serve(conformance=Conformance())
"""


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(project_settings.CONFIG_ENV, raising=False)


def _generate(out: Path, *extra: str) -> str:
    args = ["-I", str(CONFORMANCE), str(CONFORMANCE / PROTO), "-o", str(out), "-q", "--no-servicer"]
    result = run_cli([*args, *extra])
    assert result.exit_code == 0, result.stderr
    return (out / "plugin.py").read_text()


@pytest.mark.parametrize(
    "flag", ["conformance.v1=5,6", f"{PROTO}=6,5", "conformance.v1.Conformance=5,6", "5,6"]
)
def test_one_proto_served_as_two_versions(tmp_path: Path, flag: str) -> None:
    plugin = _generate(tmp_path / "pkg", "--versions", flag)
    assert "VERSIONS: _typing.Final = (5, 6)" in plugin
    assert "Version 5: ``conformance.v1.Conformance``." in plugin
    assert "Version 6: ``conformance.v1.Conformance``." in plugin
    served = "            _conformance_rpc.ConformancePlugin.handler(conformance),\n"
    assert plugin.count(served) == 2
    rpc = (tmp_path / "pkg" / "conformance" / "v1" / "conformance_rpc.py").read_text()
    assert "    version=6,\n" in rpc  # the binding's own version: the highest
    assert "app protocol versions 5, 6." in rpc


def test_the_most_specific_target_wins(tmp_path: Path) -> None:
    plugin = _generate(tmp_path / "pkg", "--versions", "1,2", "--versions", f"{PROTO}=3")
    assert "VERSIONS: _typing.Final = (3,)" in plugin


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("versions = [5, 6]", "(5, 6)"),
        (f'versions = {{ "{PROTO}" = [2, 4] }}', "(2, 4)"),
        ('versions = ["conformance.v1=7,8"]', "(7, 8)"),
        ('[tool.rpcplugin-gen.versions]\n"conformance.v1" = [1, 3]', "(1, 3)"),
    ],
)
def test_versions_in_the_settings(tmp_path: Path, settings: str, expected: str) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.rpcplugin-gen]\nprotos = ["{CONFORMANCE / PROTO}"]\n'
        f'proto-path = ["{CONFORMANCE}"]\nout = "pkg"\nservicer = false\n{settings}\n'
    )
    result = run_cli(["-q"], cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert f"VERSIONS: _typing.Final = {expected}" in (tmp_path / "pkg" / "plugin.py").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--versions", "nope.v1=5,6"],
            "--versions nope.v1=5,6: no service, proto file or package",
        ),
        (["--versions", "5,six"], "--versions '5,six': give [TARGET=]V,V..."),
        (["--versions", "0,1"], "versions ≥ 1"),
        (["--versions", "5", "--versions", "6"], "--versions names every service twice"),
        (["--versions", "5,6", "--protocol-version", "2"], "not both"),
        (["--versions", "3", "--host", "terraform"], "terraform speaks 5, 6"),
    ],
)
def test_bad_versions_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    command = ["-I", str(CONFORMANCE), str(CONFORMANCE / PROTO), "-o", str(tmp_path / "pkg")]
    result = run_cli([*command, *args])
    assert result.exit_code == 1
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pkg").exists()


@pytest.fixture(scope="module")
def two_version_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conformance.v1 generated as app protocol versions 5 and 6, implemented; its parent."""
    parent = tmp_path_factory.mktemp("versions")
    _generate(
        parent / "pkg",
        "--versions",
        "conformance.v1=5,6",
        "--cookie-key",
        "RPCPLUGIN_CONFORMANCE",
        "--cookie-value",
        "conformance-v1",
    )
    (parent / "pkg" / "servicer.py").write_text(SERVICER)
    return parent


@pytest.mark.go
@pytest.mark.parametrize(
    ("offered", "negotiated"), [("5", 5), ("6", 6), ("5,6", 6), ("4,5", 5), ("1,2", None)]
)
def test_go_host_offering_each_version(
    two_version_plugin: Path, tmp_path: Path, offered: str, negotiated: int | None
) -> None:
    """go-plugin's host offers its versions; the plugin serves conformance.v1 under each."""
    from gopeers import run_go_host

    env = {**os.environ, "PYTHONPATH": str(two_version_plugin), "TMPDIR": str(tmp_path)}
    env.pop("PLUGIN_PROTOCOL_VERSIONS", None)
    result = run_go_host(
        [sys.executable, "-m", "pkg"], "-versions", offered, "-calls", "ping,echo", env=env
    )
    if negotiated is None:
        assert result.returncode == 1, result
        assert [e["stage"] for e in result.errors] == ["start"], result
        assert "Incompatible API version" in result.errors[0]["error"], result
        return
    assert result.returncode == 0, result
    assert result.one("started")["version"] == negotiated
    assert result.one("ping")["ok"] is True
    assert result.one("echo")["text"] == "hello"


def test_tfplugin_settings_with_versions(tmp_path: Path) -> None:
    """A Terraform-style project: one proto as both of the host's versions."""
    root = tmp_path / "provider"
    (root / "protos").mkdir(parents=True)
    (root / "protos" / "tfplugin6.proto").write_bytes(
        (PROTOS / "tfplugin" / "tfplugin6.proto").read_bytes()
    )
    (root / "pyproject.toml").write_text(
        '[tool.rpcplugin-gen]\nprotos = ["protos/tfplugin6.proto"]\nproto-path = ["protos"]\n'
        'out = "tfprovider"\nhost = "terraform"\nversions = { "tfplugin6.proto" = [5, 6] }\n'
    )
    result = run_cli(["-q"], cwd=root)
    assert result.exit_code == 0, result.stderr
    assert "VERSIONS: _typing.Final = (5, 6)" in (root / "tfprovider" / "plugin.py").read_text()


def test_protoc_plugin_option() -> None:
    from rpcplugin_gen.protoc_plugin import parse_parameter

    assert parse_parameter("versions=5:6").overrides.versions == {"": (5, 6)}
    both = parse_parameter("cookie_key=K,versions=tfplugin6.proto=6:5")
    assert both.overrides.versions == {"tfplugin6.proto": (5, 6)}
    with pytest.raises(GenerationError, match="give \\[TARGET=\\]V:V"):
        parse_parameter("versions=5:x")
    with pytest.raises(GenerationError, match="plugin option '6' is not key=value"):
        parse_parameter("versions=5,6")  # commas separate options


def test_the_binding_serves_every_version_too(tmp_path: Path) -> None:
    """``XPlugin.versions(impl)`` (what hand-written plugins pass to ``rpcplugin.serve``) lists
    the service under each version, as ``plugin.handlers()`` does."""
    _generate(tmp_path / "pkg", "--versions", "5,6")
    code = (
        "from pkg.conformance.v1 import conformance_rpc as m\n"
        "b = m.ConformancePlugin\n"
        "print(b.version, b.app_versions, sorted(b.versions(m.ConformanceServicer())))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["6", "(5,", "6)", "[5,", "6]"]
