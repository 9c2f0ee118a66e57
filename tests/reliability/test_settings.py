"""Malformed settings (issue 18 §3): each bad input fails at once with one line that names the
thing, on the host (``connect``, ``reattach``, ``launch``) and in the plugin (its exit status
and its one stderr line); port settings the unix transport never uses are ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

import rpcplugin
from rpcplugin.errors import ConfigError

from .figures import record
from .kit import REL_ARGV, REL_HANDSHAKE


# -- ports outside 1-65535, everywhere ----------------------------------------------------
@pytest.mark.parametrize("port", ["0", "65536", "99999"])
async def test_connect_refuses_a_port_outside_the_range(port: str) -> None:
    """Before: ``127.0.0.1:99999`` dialled port 34463 (99999 mod 65536) without a word."""
    address = f"127.0.0.1:{port}"
    with pytest.raises(ConfigError) as caught:
        await rpcplugin.connect(address)
    assert str(caught.value) == f"address={address!r} is invalid: port {port} is outside 1-65535"
    record("settings", cases=1, faults=1)


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_reattach_refuses_a_port_outside_the_range(port: str) -> None:
    addr = {"Network": "tcp", "String": f"127.0.0.1:{port}"}
    text = json.dumps({"Protocol": "grpc", "Addr": addr})
    with pytest.raises(ConfigError) as caught:
        rpcplugin.parse_reattach(text)
    assert str(caught.value) == (
        f"reattach configuration Addr={addr!r} is invalid: a tcp String of the form host:port, the "
        "port 1-65535"
    )
    record("settings", cases=1, faults=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_port": 0}, "min_port=0 is invalid: a TCP port, 1-65535"),
        ({"max_port": 65536}, "max_port=65536 is invalid: a TCP port, 1-65535"),
        (
            {"min_port": 20000, "max_port": 10000},
            "min_port=20000 is invalid: at most max_port=10000",
        ),
    ],
    ids=["min-0", "max-65536", "min-over-max"],
)
@pytest.mark.parametrize("pooled", [False, True], ids=["launch", "launch_pool"])
def test_launch_refuses_a_port_range_the_plugin_would_refuse(
    kwargs: dict[str, Any], message: str, pooled: bool
) -> None:
    """Refused before anything runs, not by the plugin's exit; a pool checks as launch does."""
    with pytest.raises(ConfigError) as caught:
        if pooled:
            rpcplugin.launch_pool(REL_ARGV, size=2, handshake=REL_HANDSHAKE, versions=[1], **kwargs)
        else:
            rpcplugin.launch(REL_ARGV, handshake=REL_HANDSHAKE, versions=[1], **kwargs)
    assert str(caught.value) == message
    record("settings", cases=1, faults=1)


# -- the plugin's side: exit status and its one line ------------------------------------
def run_plugin(env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Start :mod:`.relplugin` as a host would (cookie set), with ``env``; it must exit."""
    full = {
        **os.environ,
        REL_HANDSHAKE.cookie_key: REL_HANDSHAKE.cookie_value,
        "PLUGIN_PROTOCOL_VERSIONS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return subprocess.run(
        REL_ARGV, env=full, capture_output=True, text=True, timeout=timeout, check=False
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stdout == "", "no handshake line"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"PLUGIN_MIN_PORT": "0", "PLUGIN_MAX_PORT": "10"},
            "PLUGIN_MIN_PORT='0' is invalid: a whole number from 1 to 65535",
        ),
        (
            {"PLUGIN_MIN_PORT": "10", "PLUGIN_MAX_PORT": "99999"},
            "PLUGIN_MAX_PORT='99999' is invalid: a whole number from 1 to 65535",
        ),
        (
            {"PLUGIN_MIN_PORT": "20000", "PLUGIN_MAX_PORT": "10000"},
            "PLUGIN_MIN_PORT='20000' is invalid: must not exceed PLUGIN_MAX_PORT=10000",
        ),
    ],
    ids=["min-0", "max-99999", "min-over-max"],
)
def test_a_tcp_plugin_exits_2_on_a_bad_port_setting(env: dict[str, str], line: str) -> None:
    result = run_plugin({**env, "RPCPLUGIN_TRANSPORT": "tcp"})
    assert result.returncode == 2, result.stderr
    assert one_line(result) == f"[ERROR] rpcplugin: plugin configuration: {line}"
    record("settings", cases=1, faults=1)


def test_a_socket_dir_that_is_a_file_is_not_a_directory(short_dir: str) -> None:
    """Before: reported as "does not exist"."""
    path = os.path.join(short_dir, "file")
    with open(path, "w") as handle:
        handle.write("a file\n")
    result = run_plugin({"PLUGIN_UNIX_SOCKET_DIR": path})
    assert result.returncode == 4, result.stderr
    assert (
        one_line(result) == f"[ERROR] rpcplugin: unix socket directory {path!r} is not a directory"
    )
    record("settings", cases=1, faults=1)


@pytest.mark.parametrize(
    "ports",
    [("20000", "10000"), ("junk", ""), ("0", "99999")],
    ids=["reversed", "garbage", "out-of-range"],
)
def test_port_settings_are_ignored_by_a_unix_plugin(short_dir: str, ports: tuple[str, str]) -> None:
    """go-plugin reads the port range only for a TCP listener: a unix plugin given a reversed,
    nonsensical or out-of-range one starts and prints its handshake line."""
    env = {
        **os.environ,
        REL_HANDSHAKE.cookie_key: REL_HANDSHAKE.cookie_value,
        "PLUGIN_PROTOCOL_VERSIONS": "1",
        "PLUGIN_UNIX_SOCKET_DIR": short_dir,
        "PLUGIN_MIN_PORT": ports[0],
        "PLUGIN_MAX_PORT": ports[1],
    }
    plugin = subprocess.Popen(
        REL_ARGV, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert plugin.stdout is not None
        line = plugin.stdout.readline()
    finally:
        plugin.kill()
        _, stderr = plugin.communicate(timeout=30)
    assert line.startswith("1|1|unix|"), (line, stderr)
    record("settings", cases=1, faults=1)


async def test_ignored_port_settings_are_noted_at_debug_level(
    warm_grpc: None, short_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The host always passes its port range; a unix plugin says at debug level that it
    ignores it (its stderr lines arrive as the host's log records)."""
    import logging

    from .kit import launch_rel

    caplog.set_level(logging.DEBUG)
    async with launch_rel(unix_socket_dir=short_dir, env={"RPCPLUGIN_LOG_LEVEL": "debug"}) as conn:
        await conn.ping()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("rpcplugin.plugin.")]
    expected = "PLUGIN_MIN_PORT and PLUGIN_MAX_PORT ignored: the unix transport uses no TCP port"
    assert any(expected in line for line in lines), lines
    record("settings", cases=1)


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("the plugin's exit statuses are checked on Linux")


# -- logging scope ---------------------------------------------------------------------------
@pytest.mark.parametrize("library_level", [None, "debug"], ids=["default", "libraries-debug"])
async def test_log_level_debug_covers_the_runtime_and_the_plugin_code_not_grpc(
    warm_grpc: None, short_dir: str, caplog: pytest.LogCaptureFixture, library_level: str | None
) -> None:
    """``RPCPLUGIN_LOG_LEVEL=debug``: the runtime's debug lines and the plugin code's own
    reach the host; grpc's (a line per call, 107 for 100 calls before) do not, unless
    ``RPCPLUGIN_LIBRARY_LOG_LEVEL`` asks for them."""
    import logging

    from .kit import launch_rel, unary

    caplog.set_level(logging.DEBUG)
    env = {"RPCPLUGIN_LOG_LEVEL": "debug"}
    if library_level is not None:
        env["RPCPLUGIN_LIBRARY_LOG_LEVEL"] = library_level
    async with launch_rel(unix_socket_dir=short_dir, env=env) as conn:
        for _ in range(20):
            await unary(conn, "Echo", b"x")
        await unary(conn, "Echo", b"log-me")
        await conn.ping()
    plugin = [r for r in caplog.records if r.name.startswith("rpcplugin.plugin.")]
    modules = [str(getattr(r, "plugin_module", "")) for r in plugin]
    messages = [r.getMessage() for r in plugin]
    grpc_lines = [
        m
        for m, mod in zip(messages, modules, strict=True)
        if "cygrpc" in m or mod.startswith("grpc")
    ]
    print(f"\n{len(plugin)} plugin lines, {len(grpc_lines)} of grpc's ({library_level or 'warn'})")
    assert any("echo was asked to log" in m for m in messages), messages  # the plugin code's
    assert any("ignored: the unix transport" in m for m in messages), messages  # the runtime's
    if library_level is None:
        assert grpc_lines == []
    else:
        assert len(grpc_lines) >= 20, grpc_lines  # the control: they exist, one per call
    record("settings", cases=1)
