"""A real go-plugin host (Debian's go-plugin 1.0.1, ``tests/gopeers.py``) drives the Python
conformance plugin: unix and tcp, AutoMTLS on and off, version negotiation, all four call kinds
plus a >4 MiB payload, and a graceful kill (Shutdown, exit < 2 s, socket gone).

With AutoMTLS the host's certificate is P-521/SHA-512 under TLS 1.3, so these runs go through
the runtime's OpenSSL relay (P15/P17 against the real thing). Also P02 (stray prints), P05
(negotiation), P22 (a 1.0.1 host never reads stdio) and P32 (reattach to debug mode).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest
from gopeers import GoHostRun, run_go_host
from peers.harness import COOKIE_KEY, Launcher, leftovers, python_argv

pytestmark = pytest.mark.go

ALL_CALLS = "ping,echo,bigecho,count,sum,chat,info,echo2"


def host_env(launch: Launcher) -> dict[str, str]:
    """gohost's environment: the plugin inherits it, go-plugin adds its own variables."""
    return launch.env({COOKIE_KEY: None, "PLUGIN_PROTOCOL_VERSIONS": None})


def run(launch: Launcher, *flags: str, env: dict[str, str] | None = None) -> GoHostRun:
    return run_go_host(python_argv(), *flags, env=env or host_env(launch), timeout=120)


def assert_graceful_kill(result: GoHostRun, env: dict[str, str]) -> dict[str, Any]:
    killed = result.one("killed")
    assert killed["graceful"] is True, result
    assert killed["exited"] is True, result
    assert killed["ms"] < 2000, result
    assert result.events[-1]["event"] == "killed", result
    assert leftovers(env["TMPDIR"]) == [], "socket left behind"
    return killed


@pytest.mark.parametrize("automtls", [False, True], ids=["plaintext", "automtls"])
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_go_host_calls_every_kind_and_kills_gracefully(
    launch: Launcher, transport: str, automtls: bool
) -> None:
    env = host_env(launch)
    flags = ["-versions", "1,2", "-calls", ALL_CALLS, "-count-n", "7", "-count-payload", "1000"]
    flags += ["-env", "CONFORMANCE_V2_WITH_V1=1", "-env", "RPCPLUGIN_LOG_LEVEL=debug"]
    flags += ["-env", f"RPCPLUGIN_TRANSPORT={transport}"]
    if automtls:
        flags.append("-automtls")
    result = run(launch, *flags, env=env)
    assert result.returncode == 0, result
    assert not result.unparsed, result
    assert [e["event"] for e in result.events] == [
        "started", "ping", "echo", "bigecho", "count", "sum", "chat", "info", "echo2", "killed",
    ], result  # fmt: skip

    started = result.one("started")
    assert started["version"] == 2
    assert started["network"] == transport
    assert started["server_cert"] is automtls
    if transport == "unix":
        assert started["addr"].startswith(env["TMPDIR"] + "/plugin")
    else:
        host, _, port = started["addr"].rpartition(":")
        assert host == "127.0.0.1" and 10000 <= int(port) <= 25000  # go-plugin's default range
    # the plugin's debug log names the TLS path: go-plugin's P-521 certificate needs OpenSSL
    assert f'"tls": "{"openssl" if automtls else "off"}"' in result.stderr, result

    assert result.one("ping")["ok"] is True
    echo = result.one("echo")
    assert (echo["text"], echo["version"]) == ("hello", 2)
    assert result.one("bigecho")["size"] == 5 << 20  # over grpc's 4 MiB default, both ways
    count = result.one("count")
    assert count["values"] == list(range(1, 8)) and count["payload_bytes"] == 7000
    assert (result.one("sum")["total"], result.one("sum")["count"]) == (15, 5)
    assert result.one("chat")["replies"] == ["a", "b", "c"]
    info = result.one("info")
    assert info["implementation"] == "python" and info["version"] == 2
    assert sorted(info["env"]["PLUGIN_PROTOCOL_VERSIONS"].split(",")) == ["1", "2"]
    assert info["env"][COOKIE_KEY] == "conformance-v1"
    assert result.one("echo2")["text"] == "HELLO"
    killed = assert_graceful_kill(result, env)
    print(f"go host kill ({transport}, automtls={automtls}): {killed['ms']:.0f} ms")


@pytest.mark.parametrize(
    ("offered", "served", "expected"),
    [("1,2", "1,2", 2), ("1", "1,2", 1), ("1,2", "1", 1), ("2", "2", 2)],
)
def test_go_host_negotiates_the_version(
    launch: Launcher, offered: str, served: str, expected: int
) -> None:
    env = host_env(launch)
    result = run(launch, "-versions", offered, "-env", f"CONFORMANCE_VERSIONS={served}", env=env)
    assert result.returncode == 0, result
    assert result.one("started")["version"] == expected
    if expected == 1:
        assert result.one("echo")["version"] == 1
        assert result.one("info")["implementation"] == "python"
    else:
        assert result.one("echo2") | {"ms": 0} == {
            "event": "echo2",
            "text": "HELLO",
            "version": 2,
            "ms": 0,
        }
    assert_graceful_kill(result, env)


def test_go_host_rejects_a_plugin_without_a_common_version(launch: Launcher) -> None:
    result = run(launch, "-versions", "2", "-env", "CONFORMANCE_VERSIONS=1")
    assert result.returncode == 1, result
    error = result.one("error")
    assert error["stage"] == "start"
    assert "Incompatible API version" in error["error"], error  # we announced our lowest (1)
    assert "Plugin version: 1" in error["error"], error


def test_go_host_sees_only_the_handshake_despite_stray_prints(launch: Launcher) -> None:
    result = run(
        launch,
        *("-versions", "1", "-calls", "ping,echo"),
        *("-env", "CONFORMANCE_PRINT_BEFORE_SERVE=Unrecognized? not me"),
    )
    assert result.returncode == 0, result
    assert "Unrecognized remote plugin message" not in result.stderr
    assert "Unrecognized? not me" in result.stderr  # the print went to stderr instead


def test_go_host_1_0_never_reads_stdio_and_the_plugin_never_blocks(launch: Launcher) -> None:
    # go-plugin 1.0.x hosts never call StreamStdio: 10 MB of prints must not wedge the plugin
    result = run(
        launch, *("-versions", "1", "-calls", "echo,ping,echo"), *("-text", "!write 10000000")
    )
    assert result.returncode == 0, result
    for echo in result.of("echo"):
        assert float(echo["text"]) < 3.0, result
    assert result.one("ping")["ok"] is True


def test_go_host_reattaches_to_a_debug_mode_plugin(launch: Launcher) -> None:
    plugin = launch(
        {"RPCPLUGIN_DEBUG": "1", COOKIE_KEY: None, "PLUGIN_PROTOCOL_VERSIONS": None},
        handshake=False,
    )
    config = plugin.read_line().decode()
    address = json.loads(config)["conformance"]["Addr"]["String"]
    # reap it as soon as it exits, as the developer's shell would: go-plugin polls the pid and
    # would take a zombie for a live process
    reaper = threading.Thread(target=plugin.proc.wait, daemon=True)
    reaper.start()
    result = run_go_host(
        None, "-reattach", config.strip(), "-versions", "2", "-calls", "ping,echo2", timeout=60
    )
    assert result.returncode == 0, result
    started = result.one("started")
    assert started["reattach"] is True and started["addr"] == address
    assert result.one("echo2")["text"] == "HELLO"
    # go-plugin 1.0.1 knows no Test flag, so its Kill sends Shutdown: a clean exit
    killed = result.one("killed")
    assert killed["graceful"] is True and killed["exited"] is True, result
    assert plugin.wait(5) == 0
    assert not os.path.exists(address)
