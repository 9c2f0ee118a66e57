"""The Python host against a real go-plugin 1.0.1 plugin (``plugin.Serve``, P-521 AutoMTLS).

go-plugin 1.0.1 ignores ``PLUGIN_UNIX_SOCKET_DIR``: its sockets go to the temp dir, so these
tests check the announced socket path itself (``socket_gone``) rather than ``sock_dir``.

Lines of docs/protocol.md §10 shown against it: H04 (its P-521 certificate, through the OpenSSL
relay), H06 (close), H07 (its hclog lines) and H08 (reattach to its debug mode).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gopeers import go_plugin_binary
from hostkit import GO_HANDSHAKE, PROMPT, Clock, pid_running
from peers.harness import Conformance

import rpcplugin
from rpcplugin import (
    HandshakeError,
    PluginExitedError,
    StartTimeoutError,
    VersionMismatchError,
)
from rpcplugin.host.attach import reattach

pytestmark = pytest.mark.go


def go_launch(
    sock_dir: str, env: dict[str, str] | None = None, **kw: Any
) -> rpcplugin.host.Opening:
    kw.setdefault("versions", [1])
    return rpcplugin.launch(
        [str(go_plugin_binary())],
        handshake=GO_HANDSHAKE,
        env={"GOPLUGIN_LOG_LEVEL": "debug", **(env or {})},
        unix_socket_dir=sock_dir,  # ignored by go-plugin 1.0.1, used by newer ones
        **kw,
    )


def announced_sockets(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Socket paths the Go plugin logged ("plugin address"), seen through the host's logging."""
    return [
        r.plugin_fields["address"]  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "plugin address"
    ]


def assert_sockets_gone(caplog: pytest.LogCaptureFixture) -> None:
    paths = announced_sockets(caplog)
    assert paths, "the plugin should have logged its address"
    for path in paths:
        assert not os.path.lexists(path), f"socket {path} left behind"


@pytest.fixture(autouse=True)
def _debug_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rpcplugin.plugin.goplugin")


@pytest.mark.parametrize(("auto_mtls", "tls"), [(True, "openssl"), (False, "off")])
async def test_go_plugin_all_call_kinds(
    sock_dir: str, pb: SimpleNamespace, auto_mtls: bool, tls: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with go_launch(sock_dir, auto_mtls=auto_mtls) as conn:
        assert conn.tls == tls
        assert conn.version == 1
        assert conn.endpoint.network == "unix"
        await conn.ping()
        c = Conformance(conn.channel, pb)
        reply = await c.echo(pb.v1.EchoRequest(text="hello", payload=b"\0" * (5 << 20)))
        assert (reply.text, len(reply.payload), reply.version) == ("hello", 5 << 20, 1)
        counted = [r.i async for r in c.count(pb.v1.CountRequest(n=5, payload_size=10))]
        assert counted == [1, 2, 3, 4, 5]

        async def values() -> Any:
            for v in (1, 2, 3):
                yield pb.v1.SumRequest(value=v)

        total = await c.sum(values())
        assert (total.total, total.count) == (6, 3)

        async def chat() -> Any:
            for text in ("a", "b"):
                yield pb.v1.ChatMessage(text=text)

        assert [m.text async for m in c.chat(chat())] == ["a", "b"]
        info = await c.info(pb.v1.InfoRequest(env=["PLUGIN_CLIENT_CERT"]))
        assert info.implementation == "go"
        assert info.pid == conn.pid
        assert ("PLUGIN_CLIENT_CERT" in info.env) is auto_mtls
        clock = Clock().__enter__()
    clock.__exit__()
    assert conn.returncode == 0  # exited on Shutdown: the 2 s kill path would be -9
    print(f"graceful close took {clock.seconds * 1000:.0f} ms")
    assert not pid_running(conn.pid or 0)
    assert_sockets_gone(caplog)


async def test_go_plugin_negotiates_the_highest_common_version(
    sock_dir: str, pb: SimpleNamespace
) -> None:
    async with go_launch(sock_dir, versions=[2, 1]) as conn:
        assert conn.version == 2
        reply = await Conformance(conn.channel, pb).echo2(pb.v2.EchoRequest(text="shout"))
        assert (reply.text, reply.version) == ("SHOUT", 2)


async def test_go_plugin_exits_before_handshake(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Clock() as clock, pytest.raises(PluginExitedError) as info:
        await go_launch(sock_dir, {"GOPLUGIN_EXIT_BEFORE_HANDSHAKE": "3"})
    assert clock.seconds < PROMPT
    assert info.value.returncode == 3
    assert "exiting before the handshake as told" in str(info.value)


async def test_go_plugin_noise_line_before_handshake(sock_dir: str) -> None:
    with pytest.raises(HandshakeError) as info:
        await go_launch(sock_dir, {"GOPLUGIN_HANDSHAKE_TEMPLATE": "junk\\n{line}"})
    assert info.value.line == "junk"
    assert "'junk'" in str(info.value)


async def test_go_plugin_unoffered_version(sock_dir: str) -> None:
    with pytest.raises(VersionMismatchError, match="version 2, but this host offered only 1"):
        await go_launch(sock_dir, {"GOPLUGIN_VERSIONS": "2"}, versions=[1])


async def test_go_plugin_mux_field_true_is_refused_false_accepted(
    sock_dir: str, pb: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(HandshakeError, match="multiplexed broker"):
        await go_launch(sock_dir, {"GOPLUGIN_HANDSHAKE_TEMPLATE": "{line}|true"})
    # 7 fields with the certificate in field 6: the line is split on every '|' (go-plugin <= 1.5
    # glued field 7 onto the certificate and failed to decode it)
    async with go_launch(sock_dir, {"GOPLUGIN_HANDSHAKE_TEMPLATE": "{line}|false"}) as conn:
        assert conn.tls == "openssl"
        reply = await Conformance(conn.channel, pb).echo(pb.v1.EchoRequest(text="seven"))
        assert reply.text == "seven"
    assert_sockets_gone(caplog)


async def test_go_plugin_dies_right_after_handshake(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Clock() as clock, pytest.raises(PluginExitedError) as info:
        await go_launch(sock_dir, {"GOPLUGIN_EXIT_AFTER_HANDSHAKE_MS": "0"})
    assert clock.seconds < PROMPT
    assert info.value.returncode == 3
    assert "exiting after the handshake as told" in info.value.stderr_tail
    assert_sockets_gone(caplog)  # os.Exit left it; the host removed the stale socket


async def test_go_plugin_dies_while_connected(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await go_launch(
        sock_dir, {"GOPLUGIN_EXIT_AFTER_HANDSHAKE_MS": "300", "GOPLUGIN_EXIT_CODE": "9"}
    )
    try:
        assert conn.tls == "openssl"
        assert await asyncio.wait_for(conn.wait_exit(), PROMPT) == 9
        with Clock() as clock, pytest.raises(PluginExitedError, match="exit status 9"):
            await conn.ping()
        assert clock.seconds < PROMPT
    finally:
        await conn.close()
    assert_sockets_gone(caplog)


async def test_go_plugin_ignoring_shutdown_is_killed_within_the_bound(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await go_launch(sock_dir, {"GOPLUGIN_SHUTDOWN": "ignore"})
    await conn.ping()
    with Clock() as clock:
        await conn.close()
    assert 1.9 <= clock.seconds < 1.9 + PROMPT  # the 2 s grace was given, then SIGKILL
    assert conn.returncode == -9
    assert any("ignoring Shutdown as told" in r.getMessage() for r in caplog.records)
    assert_sockets_gone(caplog)


async def test_go_plugin_slow_start_hits_the_start_timeout(sock_dir: str) -> None:
    with Clock() as clock, pytest.raises(StartTimeoutError, match=r"within 0\.3 s"):
        await go_launch(sock_dir, {"GOPLUGIN_SLOW_START_MS": "5000"}, start_timeout=0.3)
    assert clock.seconds < 5.0  # before the plugin's handshake: the 0.3 s timeout fired


async def test_go_plugin_hclog_lines_become_records(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with go_launch(sock_dir) as conn:
        await conn.ping()
    records = [r for r in caplog.records if r.name == "rpcplugin.plugin.goplugin"]
    by_message = {r.getMessage(): r for r in records}
    assert by_message["configuring server automatic mTLS"].levelno == logging.INFO
    registering = by_message["registering conformance services"]
    assert registering.levelno == logging.DEBUG
    assert registering.plugin_fields == {"version": 1}  # type: ignore[attr-defined]
    assert registering.plugin_module == "goplugin"  # type: ignore[attr-defined]


# -- reattach (go-plugin's debug mode: Test=true) ------------------------------------------
class DebugPlugin:
    """A Go plugin started by the test in debug mode (not by the host)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [str(go_plugin_binary())],
            env={**os.environ, "GOPLUGIN_DEBUG": "1", "GOPLUGIN_LOG_LEVEL": "off"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        self.config_text = self.process.stdout.readline().decode()
        self.process.stdout.close()
        self.config: dict[str, Any] = json.loads(self.config_text)
        self.socket = self.config["Addr"]["String"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def debug_plugin() -> Any:
    plugin = DebugPlugin()
    yield plugin
    plugin.stop()


async def test_reattach_to_go_debug_plugin_test_mode_leaves_it_running(
    debug_plugin: DebugPlugin, pb: SimpleNamespace
) -> None:
    config = debug_plugin.config
    assert config["Test"] is True
    for _ in range(2):  # Test=true: it survives each host's close
        async with reattach(debug_plugin.config_text) as conn:
            assert conn.mode == "reattached"
            assert (conn.pid, conn.version, conn.tls) == (config["Pid"], 2, "off")
            reply = await Conformance(conn.channel, pb).echo2(pb.v2.EchoRequest(text="again"))
            assert reply.text == "AGAIN"
        await asyncio.sleep(0.05)
        assert debug_plugin.process.poll() is None
        assert os.path.exists(debug_plugin.socket)


async def test_reattach_without_test_flag_shuts_the_plugin_down(
    debug_plugin: DebugPlugin,
) -> None:
    config = dict(debug_plugin.config, Test=False)
    reaper = asyncio.ensure_future(asyncio.to_thread(debug_plugin.process.wait))  # its parent
    async with reattach({"acme/conformance": config}, name="acme/conformance") as conn:
        await conn.ping()
        clock = Clock().__enter__()
    clock.__exit__()
    assert await asyncio.wait_for(reaper, PROMPT) == 0  # Shutdown → the debug server exits 0
    print(f"reattached close took {clock.seconds * 1000:.0f} ms")  # exit 0: not the kill path
    assert not Path(debug_plugin.socket).exists()
