"""Bad input never produces a traceback (issue 2, "Done when").

Each case: its own clear one-line message on stderr naming the variable and the value, the
right exit status (1 cookie, 2 setting, 3 PLUGIN_CLIENT_CERT, 4 no listener), nothing on
stdout, and no socket file left behind (the ``launch`` fixture checks every socket directory
the plugin was given once it is gone). P17: forcing grpcio's TLS on a P-521 host certificate
is refused (exit 2), never weakened.
"""

from __future__ import annotations

import os
import re

import pytest
from peers.harness import (
    COOKIE_KEY,
    Launcher,
    PluginProcess,
    assert_no_traceback,
    free_port_run,
    leftovers,
    occupied_ports,
)


def assert_one_line_exit(plugin: PluginProcess, status: int, *needles: str) -> str:
    assert plugin.wait(15) == status, plugin.stderr_text()
    assert plugin.read_rest_of_stdout(1) == b"", "nothing on stdout"
    text = plugin.stderr_text()
    assert_no_traceback(text)
    lines = plugin.stderr_lines()
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---- wrong cookie (P01 covers the variants) ----


def test_wrong_cookie_exits_1(launch: Launcher) -> None:
    plugin = launch({COOKIE_KEY: "not-the-cookie"}, handshake=False)
    assert_one_line_exit(plugin, 1, COOKIE_KEY)


# ---- PLUGIN_PROTOCOL_VERSIONS: warn, then announce the lowest version (docs/protocol.md §3.3) ----


@pytest.mark.parametrize(
    ("versions", "warning"),
    [
        (None, "offered no app protocol versions"),
        ("", "offered no app protocol versions"),
        ("x,y", "'x', 'y'"),
        ("1.5,,two", "'1.5', 'two'"),
    ],
    ids=["unset", "empty", "garbage", "mixed-garbage"],
)
def test_empty_or_garbage_protocol_versions_warn_and_announce_the_lowest(
    launch: Launcher, versions: str | None, warning: str
) -> None:
    plugin = launch({"PLUGIN_PROTOCOL_VERSIONS": versions, "CONFORMANCE_VERSIONS": "2,1"})
    assert plugin.hs is not None
    assert plugin.hs.version == 1
    line = plugin.wait_stderr(lambda text: '"@level": "warn"' in text)
    assert warning in line, line
    assert_no_traceback(plugin.stderr_text())


# ---- settings: exit 2 ----

TCP = {"RPCPLUGIN_TRANSPORT": "tcp"}
"""The port settings are only read (and checked) where a TCP listener uses them."""


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RPCPLUGIN_TRANSPORT": "udp"}, "RPCPLUGIN_TRANSPORT"),
        ({"RPCPLUGIN_TLS_BACKEND": "boringssl"}, "RPCPLUGIN_TLS_BACKEND"),
        ({"RPCPLUGIN_LOG_LEVEL": "loud"}, "RPCPLUGIN_LOG_LEVEL"),
        ({"RPCPLUGIN_LOG_FORMAT": "xml"}, "RPCPLUGIN_LOG_FORMAT"),
        ({"RPCPLUGIN_STDIO_BUFFER": "-1"}, "RPCPLUGIN_STDIO_BUFFER"),
        ({"RPCPLUGIN_STDIO_BUFFER": "1MB"}, "RPCPLUGIN_STDIO_BUFFER"),
        ({"RPCPLUGIN_PARENT_WATCH": "maybe"}, "RPCPLUGIN_PARENT_WATCH"),
        ({"RPCPLUGIN_DEBUG": "perhaps"}, "RPCPLUGIN_DEBUG"),
        ({**TCP, "PLUGIN_MIN_PORT": "abc", "PLUGIN_MAX_PORT": "25000"}, "PLUGIN_MIN_PORT"),
        ({**TCP, "PLUGIN_MIN_PORT": "10000", "PLUGIN_MAX_PORT": "70000"}, "PLUGIN_MAX_PORT"),
        ({**TCP, "PLUGIN_MIN_PORT": "10000"}, "PLUGIN_MIN_PORT"),
        ({**TCP, "PLUGIN_MAX_PORT": "25000"}, "PLUGIN_MAX_PORT"),
        ({**TCP, "PLUGIN_MIN_PORT": "25000", "PLUGIN_MAX_PORT": "10000"}, "PLUGIN_MIN_PORT"),
        ({"PLUGIN_UNIX_SOCKET_DIR": "relative/dir"}, "PLUGIN_UNIX_SOCKET_DIR"),
        ({"PLUGIN_UNIX_SOCKET_GROUP": "no-such-group-x"}, "PLUGIN_UNIX_SOCKET_GROUP"),
    ],
    ids=lambda value: (
        "-".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else None
    ),
)
def test_bad_setting_exits_2_naming_variable_and_value(
    launch: Launcher, env: dict[str, str], variable: str
) -> None:
    plugin = launch(env, handshake=False)
    line = assert_one_line_exit(plugin, 2, variable, repr(env[variable]))
    assert "invalid" in line


def test_grpc_tls_backend_with_a_p521_host_cert_exits_2(launch: Launcher) -> None:
    identity = launch.identity("secp521r1")
    plugin = launch(
        {"PLUGIN_CLIENT_CERT": identity.pem, "RPCPLUGIN_TLS_BACKEND": "grpc"}, handshake=False
    )
    assert_one_line_exit(plugin, 2, "RPCPLUGIN_TLS_BACKEND", "secp521r1")


# ---- PLUGIN_CLIENT_CERT: exit 3 (P19 covers more shapes) ----


def test_unparsable_client_cert_exits_3(launch: Launcher) -> None:
    plugin = launch({"PLUGIN_CLIENT_CERT": "-----BEGIN CERTIFICATE-----\nAAAA\n"}, handshake=False)
    assert_one_line_exit(plugin, 3, "PLUGIN_CLIENT_CERT")


# ---- no listener: exit 4 ----


@pytest.mark.parametrize("backend", ["plaintext", "openssl-p521"])
def test_port_range_with_no_free_port_exits_4(launch: Launcher, backend: str) -> None:
    env = {"RPCPLUGIN_TRANSPORT": "tcp"}
    if backend != "plaintext":
        env["PLUGIN_CLIENT_CERT"] = launch.identity("secp521r1").pem
    first = free_port_run(3)
    with occupied_ports([first, first + 1, first + 2]):
        plugin = launch(
            {**env, "PLUGIN_MIN_PORT": str(first), "PLUGIN_MAX_PORT": str(first + 2)},
            handshake=False,
        )
        assert_one_line_exit(plugin, 4, f"PLUGIN_MIN_PORT={first}", f"PLUGIN_MAX_PORT={first + 2}")


@pytest.mark.parametrize("backend", ["plaintext", "openssl-p521"])
@pytest.mark.parametrize("kind", ["missing", "a-file", "read-only"])
def test_unusable_socket_dir_exits_4(launch: Launcher, backend: str, kind: str) -> None:
    env: dict[str, str] = {}
    if backend != "plaintext":
        env["PLUGIN_CLIENT_CERT"] = launch.identity("secp521r1").pem
    base = launch.tmpdir()
    target = os.path.join(base, "sockets")
    if kind == "a-file":
        with open(target, "w") as handle:
            handle.write("not a directory\n")
    elif kind == "read-only":
        if os.geteuid() == 0:
            # root may write anywhere (os.access says yes and bind succeeds): the missing and
            # not-a-directory cases are what an unwritable directory looks like to root
            pytest.skip("running as root: a 0500 directory is writable")
        os.mkdir(target, 0o500)
    plugin = launch({**env, "PLUGIN_UNIX_SOCKET_DIR": target}, handshake=False)
    line = assert_one_line_exit(plugin, 4, repr(target))
    assert re.search(r"does not exist|not writable|not a directory", line), line
    assert leftovers(base) in ([], ["sockets"])
