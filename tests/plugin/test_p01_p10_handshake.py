"""docs/protocol.md §3, P01–P10: startup and the handshake line, checked on the raw process."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import stat
import time
from types import SimpleNamespace

import grpc
import pytest
from peers.harness import (
    COOKIE_KEY,
    H2_PREFACE,
    Conformance,
    Handshake,
    Launcher,
    client_context,
    dial,
    shutdown,
    tls_probe,
)


def assert_h2_served(hs: Handshake) -> None:
    """One connect, no retry: the server must already answer HTTP/2 (its SETTINGS frame)."""
    with hs.connect_socket() as sock:
        sock.sendall(H2_PREFACE)
        data = b""
        while len(data) < 9:
            chunk = sock.recv(9 - len(data))
            assert chunk, f"EOF from {hs.address} before the server's SETTINGS frame"
            data += chunk
    assert data[3] == 0x04, data


# ---- P01 ----


@pytest.mark.parametrize(
    "cookie", [None, "", "conformance-v2", "conformance-v1 "], ids=["unset", "empty", "wrong", "ws"]
)
def test_p01_cookie_mismatch_exits_1_with_one_line_on_stderr(
    launch: Launcher, cookie: str | None
) -> None:
    plugin = launch({COOKIE_KEY: cookie}, handshake=False)
    assert plugin.wait(15) == 1
    assert plugin.read_rest_of_stdout(2) == b"", "nothing may reach stdout"
    lines = plugin.stderr_lines()
    assert len(lines) == 1, lines
    message = lines[0]
    assert "plugin" in message and COOKIE_KEY in message, message
    assert not message.startswith("{"), "a human sentence, not a log object"


# ---- P02 ----


async def test_p02_stray_output_never_reaches_stdout_and_the_line_is_alone(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch({"CONFORMANCE_PRINT_BEFORE_SERVE": "stray noise"})
    assert plugin.hs is not None
    assert plugin.hs.raw.startswith(b"1|1|unix|/"), plugin.hs.raw
    assert plugin.running(), "the line must be flushed while the plugin runs, not at exit"
    # both the print() and the raw os.write(1, ...) went to stderr instead
    plugin.wait_stderr(lambda line: line == "stray noise")
    plugin.wait_stderr(lambda line: line == "stray noise (fd 1)")
    async with dial(plugin.hs) as dialed:
        stub = Conformance(dialed.channel, pb)
        assert await stub.command("print printed after the handshake") == "ok"
        assert await stub.command("write 100000") != ""
        assert await shutdown(dialed.channel) in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)
    assert plugin.wait(5) == 0
    assert plugin.read_rest_of_stdout(2) == b"", "exactly one line on stdout"


# ---- P03 ----


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("tls", ["plaintext", "grpc-p256", "openssl-p521"])
def test_p03_listener_serves_when_the_line_arrives(
    launch: Launcher, transport: str, tls: str
) -> None:
    env = {"RPCPLUGIN_TRANSPORT": transport}
    identity = None
    if tls != "plaintext":
        identity = launch.identity("secp256r1" if tls == "grpc-p256" else "secp521r1")
        env["PLUGIN_CLIENT_CERT"] = identity.pem
    plugin = launch(env)
    assert plugin.hs is not None
    if identity is None:
        assert_h2_served(plugin.hs)
    else:
        result = tls_probe(plugin.hs, client_context(plugin.hs, identity))
        assert result.served, result


# ---- P04 ----


def test_p04_core_version_1_and_protocol_grpc(launch: Launcher) -> None:
    plugin = launch()
    assert plugin.hs is not None
    assert plugin.hs.fields[0] == "1"
    assert plugin.hs.fields[4] == "grpc"
    assert len(plugin.hs.fields) == 6


# ---- P05 ----


@pytest.mark.parametrize(
    ("offered", "served", "expected"),
    [
        ("1,2", "1,2", 2),
        ("2,1", "1,2", 2),
        ("1", "1,2", 1),
        ("2", "1,2", 2),
        ("1,2", "1", 1),
        ("9,2,7", "1,2", 2),
        ("7,x,1", "1,2", 1),
        ("3", "1,2", 1),
        ("5,3", "2,3,5", 5),
    ],
)
async def test_p05_negotiates_highest_common_else_lowest(
    launch: Launcher, pb: SimpleNamespace, offered: str, served: str, expected: int
) -> None:
    plugin = launch({"PLUGIN_PROTOCOL_VERSIONS": offered, "CONFORMANCE_VERSIONS": served})
    assert plugin.hs is not None
    assert plugin.hs.version == expected
    if "x" in offered:
        line = plugin.wait_stderr(lambda text: "PLUGIN_PROTOCOL_VERSIONS" in text)
        assert "'x'" in line and '"@level": "warn"' in line, line
    if expected not in (1, 2):
        return
    # only the negotiated version's services are registered
    async with dial(plugin.hs) as dialed:
        stub = Conformance(dialed.channel, pb)
        if expected == 1:
            reply = await stub.echo(pb.v1.EchoRequest(text="hi"), timeout=10)
            assert (reply.text, reply.version) == ("hi", 1)
            missing = stub.echo2(pb.v2.EchoRequest(text="hi"), timeout=10)
        else:
            reply = await stub.echo2(pb.v2.EchoRequest(text="hi"), timeout=10)
            assert (reply.text, reply.version) == ("HI", 2)
            missing = stub.echo(pb.v1.EchoRequest(text="hi"), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await missing
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ---- P06 ----


def test_p06_unix_address_is_an_absolute_socket_path(launch: Launcher) -> None:
    plugin = launch()
    assert plugin.hs is not None
    assert plugin.hs.network == "unix"
    assert os.path.isabs(plugin.hs.address)
    assert stat.S_ISSOCK(os.stat(plugin.hs.address).st_mode)


def test_p06_tcp_address_is_loopback_host_port(launch: Launcher) -> None:
    plugin = launch({"RPCPLUGIN_TRANSPORT": "tcp"})
    assert plugin.hs is not None
    assert plugin.hs.network == "tcp"
    assert re.fullmatch(r"127\.0\.0\.1:[1-9][0-9]*", plugin.hs.address), plugin.hs.address
    with plugin.hs.connect_socket() as sock:
        assert sock.family == socket.AF_INET


# ---- P07 / P08 ----


@pytest.mark.parametrize("curve", ["secp256r1", "secp521r1"])
def test_p07_cert_field_is_unpadded_standard_base64_of_the_served_der(
    launch: Launcher, curve: str
) -> None:
    identity = launch.identity(curve)
    plugin = launch({"PLUGIN_CLIENT_CERT": identity.pem})
    assert plugin.hs is not None
    field = plugin.hs.cert_field
    assert re.fullmatch(r"[A-Za-z0-9+/]{51,}", field), field  # no '=', no URL alphabet
    der = base64.b64decode(field + "=" * (-len(field) % 4), validate=True)
    assert der[0] == 0x30, "DER, not PEM"
    result = tls_probe(plugin.hs, client_context(plugin.hs, identity))
    assert result.served, result
    assert result.peer_der == der, "the announced certificate is the one served"


@pytest.mark.parametrize("cert", [None, ""], ids=["unset", "empty"])
def test_p08_no_client_cert_means_empty_field_6_and_plaintext(
    launch: Launcher, cert: str | None
) -> None:
    plugin = launch({"PLUGIN_CLIENT_CERT": cert})
    assert plugin.hs is not None
    assert plugin.hs.raw.endswith(b"|grpc|\n")
    assert plugin.hs.cert_field == ""
    assert_h2_served(plugin.hs)


# ---- P09 ----


@pytest.mark.parametrize(
    ("mux", "fields"),
    [(None, 6), ("", 6), ("true", 7), ("false", 7), ("1", 7)],
    ids=["unset", "empty", "true", "false", "one"],
)
def test_p09_seventh_field_only_when_asked_and_never_true(
    launch: Launcher, mux: str | None, fields: int
) -> None:
    plugin = launch({"PLUGIN_MULTIPLEX_GRPC": mux})
    assert plugin.hs is not None
    assert len(plugin.hs.fields) == fields, plugin.hs.raw
    if fields == 7:
        # yamux multiplexing is not implemented, so the answer must be a false spelling
        assert plugin.hs.fields[6] == "false", plugin.hs.raw


# ---- P10 ----


async def test_p10_handshake_is_quick_and_plaintext_skips_cryptography(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    started = time.monotonic()
    plain = launch()
    elapsed = time.monotonic() - started
    print(f"exec → handshake took {elapsed:.2f} s")  # a figure: bench/ measures start-up
    identity = launch.identity()
    tls = launch({"PLUGIN_CLIENT_CERT": identity.pem})
    asked = ["module:cryptography", "module:grpc"]
    assert plain.hs is not None and tls.hs is not None
    async with dial(plain.hs) as dialed:
        info = await Conformance(dialed.channel, pb).info(pb.v1.InfoRequest(env=asked))
        assert dict(info.env) == {"module:cryptography": "absent", "module:grpc": "loaded"}
    async with dial(tls.hs, identity) as dialed:
        info = await Conformance(dialed.channel, pb).info(pb.v1.InfoRequest(env=asked))
        # with TLS too, where `openssl req` makes the certificate (rpcplugin._wire.early_cert)
        expected = "absent" if shutil.which("openssl") else "loaded"
        assert info.env["module:cryptography"] == expected
