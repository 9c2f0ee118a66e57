"""Handshake settings: defaults from the package, the proto option, flags on top."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpcplugin_gen import plugin_settings

from .conftest import run_cli


@pytest.mark.parametrize(
    ("package", "version", "family"),
    [
        ("kv.v1", 1, "kv"),
        ("kv.v2", 2, "kv"),
        ("tfplugin6", 6, "tfplugin"),
        ("tfplugin5", 5, "tfplugin"),
        ("acme.svc.v12", 12, "acme.svc"),
        ("acme.plugin3", 3, "acme.plugin"),
        ("kv", None, "kv"),
        ("a.v1beta1", None, "a.v1beta1"),
        ("", None, "Svc"),
    ],
)
def test_version_and_family(package: str, version: int | None, family: str) -> None:
    assert plugin_settings.package_version(package) == version
    assert plugin_settings.family(package, "Svc") == family


def test_default_cookie_is_stable_and_shared_by_majors() -> None:
    v1 = plugin_settings.default_cookie("kv.v1", "KV")
    v2 = plugin_settings.default_cookie("kv.v2", "KV")
    assert v1 == v2
    assert v1[0] == "KV_PLUGIN_COOKIE"
    assert len(v1[1]) == 64
    assert plugin_settings.default_cookie("tfplugin6", "Provider")[0] == "TFPLUGIN_COOKIE"
    assert plugin_settings.default_cookie("other.v1", "KV") != v1


PROTO = """syntax = "proto3";
package demo.v3;
import "rpcplugin/protos/rpcplugin_options.proto";
option (rpcplugin.options.plugin) = { cookie_key: "FILE_KEY" cookie_value: "file" };
message M {}
service A {
  option (rpcplugin.options.service) = { protocol_version: 9 };
  rpc X(M) returns (M);
}
service B {
  rpc Y(M) returns (M);
}
"""


def test_option_layers_and_flags(tmp_path: Path) -> None:
    (tmp_path / "demo.proto").write_text(PROTO)
    assert run_cli(["demo.proto", "-o", "out", "-q"], cwd=tmp_path).exit_code == 0
    rpc = (tmp_path / "out" / "demo_rpc.py").read_text()
    assert rpc.count('cookie_key="FILE_KEY"') == 2
    assert "version=9," in rpc  # service option beats the package suffix
    assert "version=3," in rpc  # package suffix (demo.v3)
    plugin = (tmp_path / "out" / "plugin.py").read_text()
    assert "VERSIONS: _typing.Final = (3, 9)" in plugin

    flags = ["--cookie-key", "FLAG", "--protocol-version", "4", "--name", "demo", "-q"]
    assert run_cli(["demo.proto", "-o", "out2", *flags], cwd=tmp_path).exit_code == 0
    rpc = (tmp_path / "out2" / "demo_rpc.py").read_text()
    assert rpc.count('cookie_key="FLAG"') == 2
    assert rpc.count('cookie_value="file"') == 2  # not overridden: the option stays
    assert rpc.count("version=4,") == 2
    assert (
        'NAME: _typing.Final[str | None] = "demo"' in (tmp_path / "out2" / "plugin.py").read_text()
    )
