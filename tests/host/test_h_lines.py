"""The host lines of docs/protocol.md §10, one section each: H01 environment, H02/H03 the
handshake line, H04 AutoMTLS (our certificate, pinning theirs), H05 the stdio and broker streams,
H06 close, H08 reattach, H09 checksums. (More of H05, and H07 stderr parsing:
``test_python_plugin.py``, ``test_go_plugin.py``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from gopeers import go_plugin_binary
from hostkit import (
    MB_HANDSHAKE,
    PROMPT,
    Clock,
    event_names,
    mb,
    pid_running,
    probe,
    probe_json,
    read_events,
)

import rpcplugin
from rpcplugin import (
    ChecksumError,
    ConfigError,
    HandshakeError,
    PluginError,
    ReattachConfig,
    SecurityError,
    TransportError,
)
from rpcplugin.host.attach import reattach


def launch(argv: list[str], sock_dir: str, **kw: Any) -> rpcplugin.host.Opening:
    kw.setdefault("versions", [1])
    return rpcplugin.launch(argv, handshake=MB_HANDSHAKE, unix_socket_dir=sock_dir, **kw)


# -- H01: the environment -----------------------------------------------------------------
@pytest.mark.parametrize("auto_mtls", [True, False])
async def test_h01_environment(
    sock_dir: str, monkeypatch: pytest.MonkeyPatch, auto_mtls: bool
) -> None:
    monkeypatch.setenv("HOSTTEST_INHERITED", "from the host")
    monkeypatch.setenv("PLUGIN_MULTIPLEX_GRPC", "true")  # our own host's settings never leak
    monkeypatch.setenv("PLUGIN_CLIENT_CERT", "not ours to pass on")
    monkeypatch.setenv("PLUGIN_UNIX_SOCKET_GROUP", "wheel")
    gid = str(os.getgid())
    async with launch(
        mb("ok"),
        sock_dir,
        versions=[3, 1, 2],
        min_port=20100,
        max_port=20200,
        unix_socket_group=gid,
        auto_mtls=auto_mtls,
        env={"MISBEHAVE_PLUGIN": "overridden?", "HOSTTEST_GIVEN": "given"},
    ) as conn:
        env = (await probe_json(conn, "Info"))["env"]
    assert env["MISBEHAVE_PLUGIN"] == "yes"  # the cookie wins over env=
    assert env["PLUGIN_PROTOCOL_VERSIONS"] == "3,1,2"
    assert (env["PLUGIN_MIN_PORT"], env["PLUGIN_MAX_PORT"]) == ("20100", "20200")
    # a per-launch directory inside the one we gave, so nothing can be left behind in it
    assert os.path.dirname(env["PLUGIN_UNIX_SOCKET_DIR"]) == sock_dir
    assert env["PLUGIN_UNIX_SOCKET_GROUP"] == gid
    assert "PLUGIN_MULTIPLEX_GRPC" not in env
    if auto_mtls:
        assert env["PLUGIN_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----\n")
    else:
        assert "PLUGIN_CLIENT_CERT" not in env
    assert env["HOSTTEST_INHERITED"] == "from the host"
    assert env["HOSTTEST_GIVEN"] == "given"


async def test_h01_defaults_and_no_inherited_environment(
    sock_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTTEST_INHERITED", "from the host")
    async with rpcplugin.launch(
        mb("ok"), handshake=MB_HANDSHAKE, versions=[1], inherit_env=False, env={"A": "b"}
    ) as conn:
        env = (await probe_json(conn, "Info"))["env"]
        # by default each plugin gets a private 0700 socket directory, removed after the reap
        private = env["PLUGIN_UNIX_SOCKET_DIR"]
        assert os.stat(private).st_mode & 0o777 == 0o700
    assert not os.path.exists(private)
    assert (env["PLUGIN_MIN_PORT"], env["PLUGIN_MAX_PORT"]) == ("10000", "25000")
    assert "PLUGIN_UNIX_SOCKET_GROUP" not in env
    assert "HOSTTEST_INHERITED" not in env and "PATH" not in env
    assert env["A"] == "b"


# -- H02/H03: the handshake line ----------------------------------------------------------
ACCEPTED = {
    "five-fields": ("1|{version}|{network}|{addr}|grpc", False, "off"),
    "six-fields-empty-cert": ("1|{version}|{network}|{addr}|grpc|", False, "off"),
    "short-field-6-ignored": ("1|{version}|{network}|{addr}|grpc|not-a-certificate", False, "off"),
    "seven-fields-cert-and-false": ("{line}|false", True, "grpc"),
    "crlf-and-blanks-trimmed": ("  {line}  \r", True, "grpc"),
    "only-the-first-line": ("{line}\\n1|1|unix|/nonexistent/other|grpc|", True, "grpc"),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
async def test_h02_h03_accepted_lines(sock_dir: str, case: str) -> None:
    template, auto_mtls, tls = ACCEPTED[case]
    async with launch(mb("line", template), sock_dir, auto_mtls=auto_mtls) as conn:
        assert conn.tls == tls
        assert await probe(conn, "Echo", b"x") == b"x"


async def test_h02_tcp_address(sock_dir: str) -> None:
    async with launch(mb("ok"), sock_dir, env={"MISBEHAVE_TCP": "1"}) as conn:
        assert conn.endpoint.network == "tcp"
        assert conn.endpoint.address.startswith("127.0.0.1:")
        await conn.ping()


REFUSED: dict[str, tuple[str, type[Exception], str]] = {
    "three-fields": ("1|{version}|{network}", HandshakeError, "unrecognized plugin handshake"),
    "eight-fields": ("{line}|false|extra", HandshakeError, "8 fields"),
    "mux-not-asked": ("{line}|true", HandshakeError, "multiplexed broker"),
    "udp": ("1|{version}|udp|{addr}|grpc|{cert}", HandshakeError, "unknown network 'udp'"),
    "relative-path": ("1|{version}|unix|plugin.sock|grpc|{cert}", HandshakeError, "absolute"),
    "empty-line": ("", HandshakeError, "empty handshake line"),
    "not-a-number": ("1|one|{network}|{addr}|grpc|{cert}", HandshakeError, "app protocol"),
    "bad-base64": ("1|{version}|{network}|{addr}|grpc|" + "!" * 60, HandshakeError, "base64"),
    "not-der": ("1|{version}|{network}|{addr}|grpc|" + "QUFB" * 20, SecurityError, "DER"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_h02_h03_refused_lines(unchecked_sock_dir: str, case: str) -> None:
    template, error, text = REFUSED[case]
    with Clock() as clock, pytest.raises(error, match=text):
        await launch(mb("line", template), unchecked_sock_dir)
    assert clock.seconds < PROMPT  # refused, not left to the start timeout


def test_h02_default_start_timeout_is_60_s() -> None:
    assert rpcplugin.LaunchOptions.__dataclass_fields__["start_timeout"].default == 60.0


# -- H04: AutoMTLS ------------------------------------------------------------------------
async def test_h04_host_certificate_profile_and_freshness(sock_dir: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pems = []
    for _ in range(2):
        async with launch(mb("ok"), sock_dir) as conn:
            pems.append((await probe_json(conn, "Info"))["env"]["PLUGIN_CLIENT_CERT"])
    assert pems[0] != pems[1], "a fresh certificate per launch"
    certs = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
    assert certs[0].serial_number != certs[1].serial_number
    cert = certs[0]
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == []
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.digital_signature
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    now = datetime.datetime.now(datetime.UTC)
    assert now - datetime.timedelta(minutes=5) < cert.not_valid_before_utc <= now
    assert cert.not_valid_after_utc > now + datetime.timedelta(days=365 * 10)


@pytest.mark.parametrize("backend", ["auto", "grpc", "openssl"])
async def test_h04_announced_cert_a_served_cert_b_is_refused(sock_dir: str, backend: str) -> None:
    with Clock() as clock, pytest.raises(SecurityError) as info:
        await launch(mb("swap-cert"), sock_dir, tls_backend=backend)
    assert "certificate verify failed" in str(info.value).lower().replace("_", " ")
    assert clock.seconds < PROMPT


@pytest.mark.parametrize("backend", ["auto", "openssl"])
async def test_h04_server_name_must_be_localhost(sock_dir: str, backend: str) -> None:
    with pytest.raises(SecurityError) as info:
        await launch(mb("ok"), sock_dir, tls_backend=backend, env={"MISBEHAVE_SAN": "acme.test"})
    message = str(info.value).lower()
    # OpenSSL: "hostname mismatch"; grpcio: "hostname verification check failed"
    assert "hostname mismatch" in message or "hostname verification" in message


async def test_h04_p521_plugin_needs_openssl_and_grpc_is_refused_not_weakened(
    sock_dir: str,
) -> None:
    env = {"MISBEHAVE_CURVE": "secp521r1"}
    async with launch(mb("ok"), sock_dir, env=env) as conn:
        assert conn.tls == "openssl"
        await conn.ping()
    with pytest.raises(SecurityError, match="cannot verify the peer's EC secp521r1 key"):
        await launch(mb("ok"), sock_dir, env=env, tls_backend="grpc")


# -- H05: stdio and broker streams -------------------------------------------------------
async def test_h05_stdio_and_broker_streams_opened_and_unimplemented_tolerated(
    sock_dir: str,
) -> None:
    events = os.path.join(sock_dir, "events")
    async with launch(mb("ok"), sock_dir, env={"MISBEHAVE_EVENTS": events}) as conn:
        await conn.ping()
        for _ in range(100):
            called = {d for _, n, d in read_events(events) if n == "unimplemented"}
            if len(called) >= 2:
                break
            await asyncio.sleep(0.02)
        assert called == {"/plugin.GRPCStdio/StreamStdio", "/plugin.GRPCBroker/StartStream"}
        assert await probe(conn, "Echo", b"fine without them") == b"fine without them"
    os.unlink(events)


# -- cancelling a launch ------------------------------------------------------------------
@pytest.mark.parametrize("when", ["wiring-pipes", "before-handshake", "in-health-check"])
async def test_a_cancelled_launch_leaves_nothing(sock_dir: str, when: str) -> None:
    events = os.path.join(sock_dir, "events")
    argv = mb("silent") if when == "before-handshake" else mb("slow-health")
    task = asyncio.ensure_future(
        launch(argv, sock_dir, env={"MISBEHAVE_EVENTS": events}, auto_mtls=False)
    )
    if when == "wiring-pipes":
        for _ in range(2):  # Popen has run; the launch now waits in connect_read_pipe
            await asyncio.sleep(0)
    elif when == "in-health-check":
        while "handshake" not in event_names(events):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
    else:
        await asyncio.sleep(0.5)
    task.cancel()
    with Clock() as clock, pytest.raises(asyncio.CancelledError):
        await task
    assert clock.seconds < PROMPT
    with contextlib.suppress(FileNotFoundError):
        os.unlink(events)
    # no_leaks: the half-started plugin was killed and reaped, its socket removed


# -- H06: close ---------------------------------------------------------------------------
class Recorder:
    """Wraps the host's close steps to record their order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from rpcplugin._wire import dial
        from rpcplugin.host import process as plugin_process
        from rpcplugin.services import controller

        self.steps: list[str] = []
        steps = self.steps
        shutdown, dial_close = controller.shutdown, dial.Dialed.close
        wait, kill = plugin_process.PluginProcess.wait, plugin_process.PluginProcess.kill

        async def rec_shutdown(channel: Any, timeout: float) -> None:
            steps.append(f"shutdown({timeout:g})")
            await shutdown(channel, timeout)

        async def rec_dial_close(self: Any) -> None:
            steps.append("channel.close")
            await dial_close(self)

        async def rec_wait(self: Any, timeout: float | None) -> bool:
            exited = await wait(self, timeout)
            steps.append(f"wait({timeout:g})->{'exited' if exited else 'running'}")
            return exited

        def rec_kill(self: Any) -> None:
            steps.append("SIGKILL" if self.returncode is None else "SIGKILL(no-op)")
            kill(self)

        monkeypatch.setattr(controller, "shutdown", rec_shutdown)
        monkeypatch.setattr(dial.Dialed, "close", rec_dial_close)
        monkeypatch.setattr(plugin_process.PluginProcess, "wait", rec_wait)
        monkeypatch.setattr(plugin_process.PluginProcess, "kill", rec_kill)


async def test_h06_graceful_close_order(sock_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    events = os.path.join(sock_dir, "events")
    conn = await launch(mb("ok"), sock_dir, env={"MISBEHAVE_EVENTS": events})
    recorder = Recorder(monkeypatch)
    with Clock() as clock:
        await conn.close()
        await conn.close()  # a second close is a no-op
    assert recorder.steps == ["shutdown(1)", "channel.close", "wait(2)->exited"]
    assert conn.returncode == 0  # the steps above: no kill path
    print(f"graceful close: {clock.seconds * 1000:.0f} ms")
    assert event_names(events)[-1] == "shutdown"
    os.unlink(events)


async def test_h06_wedged_close_order_and_no_sigterm(
    sock_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = os.path.join(sock_dir, "events")
    conn = await launch(mb("wedged", "reply"), sock_dir, env={"MISBEHAVE_EVENTS": events})
    recorder = Recorder(monkeypatch)
    with Clock() as clock:
        await conn.close()
    assert recorder.steps[:4] == ["shutdown(1)", "channel.close", "wait(2)->running", "SIGKILL"]
    assert conn.returncode == -9
    assert 1.9 <= clock.seconds < 1.9 + PROMPT
    assert "signal" not in event_names(events)
    os.unlink(events)


async def test_h06_close_after_the_plugin_died_skips_shutdown(
    sock_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await launch(mb("die-after", 100, 0), sock_dir)
    await asyncio.wait_for(conn.wait_exit(), PROMPT)
    recorder = Recorder(monkeypatch)
    await conn.close()
    assert recorder.steps == ["channel.close", "wait(2)->exited"]  # no Shutdown, no 2 s wait


HOST_SCRIPT = """
import asyncio, sys
import rpcplugin

async def main():
    handshake = rpcplugin.Handshake("MISBEHAVE_PLUGIN", "yes")
    conn = await rpcplugin.launch({argv!r}, handshake=handshake, versions=[1],
                                  unix_socket_dir={sock_dir!r})
    print(conn.pid, flush=True)
    # no close(): the interpreter exits with the plugin still running

asyncio.run(main())
"""


async def test_h06_plugins_still_running_are_killed_when_the_host_exits(sock_dir: str) -> None:
    script = HOST_SCRIPT.format(argv=mb("wedged", "hang"), sock_dir=sock_dir)
    host = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(script), stdout=subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(host.communicate(), 20)
    assert host.returncode == 0
    pid = int(out.split()[0])
    for _ in range(100):  # SIGKILLed by the host's atexit handler; reaped by init
        if not pid_running(pid):
            break
        await asyncio.sleep(0.02)
    assert not pid_running(pid), "the plugin outlived its host"
    for name in os.listdir(sock_dir):  # the killed plugin's socket: the host was gone too
        os.unlink(os.path.join(sock_dir, name))


# -- H08: reattach ------------------------------------------------------------------------
@pytest.fixture
def go_debug() -> Any:
    process = subprocess.Popen(
        [str(go_plugin_binary())],
        env={**os.environ, "GOPLUGIN_DEBUG": "1", "GOPLUGIN_LOG_LEVEL": "off"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    config = json.loads(process.stdout.readline())
    process.stdout.close()
    yield process, config
    if process.poll() is None:
        process.kill()
    process.wait()


def shapes(config: dict[str, Any]) -> list[Any]:
    tf = {"registry.terraform.io/acme/conformance": config}
    return [
        json.dumps(config),  # one config, as text
        json.dumps(tf),  # TF_REATTACH_PROVIDERS
        tf,  # parsed
        config,
        rpcplugin.parse_reattach(json.dumps(tf)),  # a ReattachConfig
    ]


@pytest.mark.go
async def test_h08_reattach_json_shapes(go_debug: Any) -> None:
    process, config = go_debug
    for shape in shapes(config):
        async with reattach(shape) as conn:
            assert (conn.pid, conn.version, conn.endpoint.address) == (
                process.pid,
                config["ProtocolVersion"],
                config["Addr"]["String"],
            )
            await conn.ping()
    assert process.poll() is None
    two = {"a": config, "b": dict(config, ProtocolVersion=1)}
    async with reattach(json.dumps(two), name="b", versions=[1, 2]) as conn:
        assert conn.version == 1
    parsed = rpcplugin.parse_reattach(two, "a")
    assert isinstance(parsed, ReattachConfig)
    assert rpcplugin.parse_reattach(parsed.to_json_object()) == parsed


BAD_SHAPES: dict[str, tuple[Any, type[Exception], str]] = {
    "bad-json": ("{not json", ConfigError, "valid JSON"),
    "array": ("[1, 2]", ConfigError, "a JSON object"),
    "no-addr": ({"Protocol": "grpc", "Pid": 1}, ConfigError, "Addr"),
    "netrpc": (
        {"Protocol": "netrpc", "Addr": {"Network": "unix", "String": "/x"}},
        ConfigError,
        "netrpc is Go-only",
    ),
    "no-protocol-means-netrpc": (
        {"Addr": {"Network": "unix", "String": "/x"}},
        ConfigError,
        "netrpc",
    ),
    "udp": (
        {"Protocol": "grpc", "Addr": {"Network": "udp", "String": "x"}},
        ConfigError,
        "Network",
    ),
    "test-not-bool": (
        {"Protocol": "grpc", "Test": "yes", "Addr": {"Network": "unix", "String": "/x"}},
        ConfigError,
        "true or false",
    ),
    "two-entries-no-name": (
        {
            "a": {"Protocol": "grpc", "Addr": {"Network": "unix", "String": "/x"}},
            "b": {"Protocol": "grpc", "Addr": {"Network": "unix", "String": "/y"}},
        },
        ConfigError,
        "name=",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SHAPES))
async def test_h08_bad_reattach_configs(case: str) -> None:
    shape, error, text = BAD_SHAPES[case]
    with pytest.raises(error, match=text):
        await reattach(shape)


async def test_h08_reattach_to_a_dead_pid_or_address(sock_dir: str) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    addr = {"Network": "unix", "String": os.path.join(sock_dir, "nobody.sock")}
    with pytest.raises(PluginError, match="reattachment process not found"):
        await reattach({"Protocol": "grpc", "Pid": dead.pid, "Addr": addr})
    with pytest.raises(TransportError, match="reattachment process not found"):
        await reattach({"Protocol": "grpc", "Pid": os.getpid(), "Addr": addr})


@pytest.mark.go
async def test_h08_version_not_offered(go_debug: Any) -> None:
    _, config = go_debug
    with pytest.raises(HandshakeError, match="ProtocolVersion 2"):
        await reattach(config, versions=[1])


@pytest.mark.go
async def test_h08_test_false_wedged_plugin_is_killed_after_2_s() -> None:
    process = subprocess.Popen(
        [str(go_plugin_binary())],
        env={
            **os.environ,
            "GOPLUGIN_DEBUG": "1",
            "GOPLUGIN_SHUTDOWN": "ignore",
            "GOPLUGIN_LOG_LEVEL": "off",
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        config = dict(json.loads(process.stdout.readline()), Test=False)
        process.stdout.close()
        reaper = asyncio.ensure_future(asyncio.to_thread(process.wait))
        async with reattach(config) as conn:
            await conn.ping()
            clock = Clock().__enter__()
        clock.__exit__()
        assert await asyncio.wait_for(reaper, PROMPT) == -9
        assert 1.9 <= clock.seconds < 1.9 + PROMPT
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        # SIGKILL left the debug plugin's socket and its directory behind: not the host's
        path = os.path.dirname(config["Addr"]["String"])
        subprocess.run(["rm", "-rf", path], check=False)


# -- H09: checksum ------------------------------------------------------------------------
def sha256_of(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def wrapper(sock_dir: str, marker: str) -> str:
    """An executable plugin file that records that it ran, then execs the misbehaving plugin."""
    path = os.path.join(sock_dir, "plugin-wrapper")
    with open(path, "w") as handle:
        handle.write(f"#!/bin/sh\ntouch {marker}\nexec {' '.join(mb('ok'))}\n")
    os.chmod(path, 0o700)
    return path


async def test_h09_checksum_ok_runs_the_plugin(sock_dir: str) -> None:
    marker = os.path.join(sock_dir, "ran")
    path = wrapper(sock_dir, marker)
    digest = sha256_of(path)
    try:
        # found on PATH like exec would find it, checked, then exactly that file is run
        async with launch(
            ["plugin-wrapper"],
            sock_dir,
            checksum=digest.upper(),
            env={"PATH": f"{sock_dir}:{os.environ['PATH']}"},
        ) as conn:
            await conn.ping()
        assert os.path.exists(marker)
    finally:
        os.unlink(path)
        os.unlink(marker)


async def test_h09_checksum_mismatch_runs_nothing(sock_dir: str) -> None:
    marker = os.path.join(sock_dir, "ran")
    path = wrapper(sock_dir, marker)
    wrong = hashlib.sha256(b"something else").hexdigest()
    try:
        with pytest.raises(ChecksumError) as info:
            await launch([path], sock_dir, checksum=wrong)
        assert f"expected SHA-256 {wrong}" in str(info.value)
        assert sha256_of(path) in str(info.value)
        assert isinstance(info.value, SecurityError)
        assert not os.path.exists(marker), "a plugin that failed its checksum was executed"
        with pytest.raises(ConfigError, match="64 hex digits"):
            await launch([path], sock_dir, checksum="abc")
        assert not os.path.exists(marker)
    finally:
        os.unlink(path)


# -- the public names ---------------------------------------------------------------------
def test_rpcplugin_reattach_is_the_function_after_launch_was_used() -> None:
    code = "import rpcplugin; rpcplugin.launch; print(callable(rpcplugin.reattach))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "True", result.stdout
