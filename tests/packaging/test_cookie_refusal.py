"""A host whose cookie the plugin refuses learns that the two sides' handshake settings differ,
and which variable: against a generated Python plugin and a real go-plugin plugin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from gopeers import go_plugin_binary

import rpcplugin

from .conftest import COOKIE


async def refusal(argv: list[str], handshake: rpcplugin.Handshake, env: dict[str, str]) -> str:
    with pytest.raises(rpcplugin.PluginExitedError) as info:
        async with rpcplugin.launch(argv, handshake=handshake, versions=[1], env=env):
            pass
    assert info.value.returncode == 1
    return str(info.value)


@pytest.mark.parametrize(
    ("handshake", "says"),
    [
        (
            rpcplugin.Handshake(COOKIE[0], "not-the-value"),
            f"the plugin checks {COOKIE[0]} too, so the cookie values differ",
        ),
        (
            rpcplugin.Handshake("OTHER_COOKIE", COOKIE[1]),
            f"the host set OTHER_COOKIE; the plugin checks {COOKIE[0]}",
        ),
    ],
    ids=["value", "key"],
)
async def test_python_plugin_refusal_names_the_variable(
    conformance_package: Path, handshake: rpcplugin.Handshake, says: str
) -> None:
    argv = [sys.executable, "-m", conformance_package.name]
    message = await refusal(argv, handshake, {"PYTHONPATH": str(conformance_package.parent)})
    assert "refused the magic cookie: this host's handshake settings and the plugin's differ" in (
        message
    )
    assert says in message
    assert "'conformance_plugin'" in message  # named after the package, not python3


@pytest.mark.go
async def test_go_plugin_refusal_names_the_hosts_variable() -> None:
    handshake = rpcplugin.Handshake("GOPLUGIN_TEST_COOKIE", "wrong")
    message = await refusal([str(go_plugin_binary())], handshake, {})
    assert "this host's handshake settings and the plugin's differ" in message
    assert "the host set GOPLUGIN_TEST_COOKIE; the plugin does not say" in message
