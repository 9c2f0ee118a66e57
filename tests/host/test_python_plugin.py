"""The Python host driving the project's own Python plugin (``rpcplugin.serve``,
``tests/host/served_plugin.py``): unix and tcp, TLS off / grpcio / OpenSSL, stdio (H05), logs
(H07), reattach (H08)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
from typing import Any

import pytest
from hostkit import SERVED, SERVED_HANDSHAKE, Clock, probe, probe_json

import rpcplugin
from rpcplugin.host.attach import reattach

SERVICE = "hosttest.Probe"


def served(sock_dir: str, env: dict[str, str] | None = None, **kw: Any) -> rpcplugin.host.Opening:
    kw.setdefault("versions", [1])
    return rpcplugin.launch(
        SERVED,
        handshake=SERVED_HANDSHAKE,
        env={"RPCPLUGIN_LOG_LEVEL": "trace", **(env or {})},
        unix_socket_dir=sock_dir,
        name="probe",
        **kw,
    )


async def call(conn: rpcplugin.PluginConnection, method: str, what: Any = None) -> Any:
    data = json.dumps(what).encode() if what is not None else b""
    return json.loads(await probe(conn, method, data, service=SERVICE))


async def until(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize(
    ("host_tls", "expected"),
    [
        ({"auto_mtls": False}, "off"),
        ({"tls_backend": "auto"}, "grpc"),  # our plugin's P-256 certificate suits grpcio
        ({"tls_backend": "grpc"}, "grpc"),
        ({"tls_backend": "openssl"}, "openssl"),
    ],
    ids=["plaintext", "tls-auto", "tls-grpc", "tls-openssl"],
)
async def test_python_plugin_transports_and_tls(
    sock_dir: str, transport: str, host_tls: dict[str, Any], expected: str
) -> None:
    async with served(sock_dir, {"RPCPLUGIN_TRANSPORT": transport}, **host_tls) as conn:
        assert conn.tls == expected
        assert conn.endpoint.network == transport
        if transport == "tcp":
            assert conn.endpoint.address.startswith("127.0.0.1:")
        else:
            # in this launch's own directory inside sock_dir
            assert os.path.dirname(os.path.dirname(conn.endpoint.address)) == sock_dir
        await conn.ping()
        assert await probe(conn, "Echo", b"\x00\xffbytes", service=SERVICE) == b"\x00\xffbytes"
        info = await probe_json(conn, "Info", service=SERVICE)
        assert info["pid"] == conn.pid
        assert ("PLUGIN_CLIENT_CERT" in info["env"]) is (expected != "off")
        clock = Clock().__enter__()
    clock.__exit__()
    assert conn.returncode == 0  # exited on Shutdown: the 2 s kill path would be -9
    print(f"graceful close took {clock.seconds * 1000:.0f} ms")


async def test_plugin_side_openssl_backend_with_host_auto(sock_dir: str) -> None:
    async with served(sock_dir, {"RPCPLUGIN_TLS_BACKEND": "openssl"}) as conn:
        assert conn.tls == "grpc"  # the plugin's relay serves a P-256 certificate
        await conn.ping()
        assert await probe(conn, "Echo", b"relayed", service=SERVICE) == b"relayed"


async def test_grpc_stdio_reaches_the_sinks(sock_dir: str) -> None:
    out = io.BytesIO()
    err_chunks: list[bytes] = []
    async with served(sock_dir, stdout=out, stderr=err_chunks.append) as conn:
        await call(conn, "Print", {"stdout": "to stdout\n", "stderr": "to stderr\n"})
        await call(conn, "Print", {"stdout": "ünïcode ✓\n"})
        assert await until(lambda: out.getvalue().count(b"\n") >= 2)
        assert await until(lambda: b"".join(err_chunks) == b"to stderr\n")
    assert out.getvalue() == "to stdout\nünïcode ✓\n".encode()


async def test_grpc_stdio_text_sink_and_default_sinks(
    sock_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = io.StringIO()
    async with served(sock_dir, stdout=text) as conn:  # stderr: this process's sys.stderr
        await call(conn, "Print", {"stdout": "text sink\n", "stderr": "default stderr\n"})
        assert await until(lambda: text.getvalue() == "text sink\n")
        assert await until(lambda: "default stderr\n" in capsys.readouterr().err)


@pytest.mark.parametrize(
    ("level", "levelno"),
    [("trace", 5), ("debug", 10), ("info", 20), ("warn", 30), ("error", 40)],
)
async def test_plugin_logs_become_records_with_the_right_level(
    sock_dir: str, caplog: pytest.LogCaptureFixture, level: str, levelno: int
) -> None:
    caplog.set_level(1, logger="rpcplugin.plugin.probe")
    async with served(sock_dir) as conn:
        await call(conn, "Log", {"level": level, "message": f"a {level} line"})

        def found() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.getMessage() == f"a {level} line"]

        assert await until(lambda: bool(found()))
    [record] = found()
    assert record.name == "rpcplugin.plugin.probe"
    assert record.levelno == levelno
    assert record.plugin_fields == {"probe": 1}  # type: ignore[attr-defined]
    assert record.plugin_module == "probe"  # type: ignore[attr-defined]
    assert record.plugin == "probe"  # type: ignore[attr-defined]


async def test_plugin_logs_go_to_a_given_logger(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="acme.plugins")
    logger = logging.getLogger("acme.plugins")
    async with served(sock_dir, logger=logger) as conn:
        await call(conn, "Log", {"level": "warn", "message": "routed"})
        assert await until(
            lambda: any(
                r.name == "acme.plugins" and r.getMessage() == "routed" for r in caplog.records
            )
        )


MALFORMED = [
    b"\xff\xfe\xfd not utf-8",
    b'{"@level": "info", "@message": "unterminated',
    b'{"@level": 3, "@message": null, "@timestamp": []}',
    b'{"@level": "info", "@message": {"nested": true}}',
    b'{"@level": "nonsense", "@message": "unknown level"}',
    b"[]",
    b"null",
    b"\x00\x00\x00",
    b"{" + b"y" * (150 * 1024),  # longer than the 64 KiB line buffer
    b"",
    b"   [WARN]   padded warn",
    b"[ERROR]",
    b"plain text without a level",
]


async def test_malformed_stderr_lines_never_crash(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1, logger="rpcplugin.plugin.probe")
    async with served(sock_dir) as conn:
        await probe(conn, "Raw", b"\n".join(MALFORMED) + b"\n", service=SERVICE)
        await call(conn, "Log", {"level": "error", "message": "after the noise"})
        assert await until(lambda: any(r.getMessage() == "after the noise" for r in caplog.records))
        await conn.ping()  # the plugin and the host's readers are fine
        assert await probe(conn, "Echo", b"ok", service=SERVICE) == b"ok"
    records = {r.getMessage(): r.levelno for r in caplog.records if r.name.endswith(".probe")}
    assert records["padded warn"] == logging.WARNING
    assert records["plain text without a level"] == logging.DEBUG
    assert records['{"@level": "nonsense", "@message": "unknown level"}'] == logging.DEBUG
    assert records['{"@level": 3, "@message": null, "@timestamp": []}'] == logging.DEBUG
    assert records["\ufffd\ufffd\ufffd not utf-8"] == logging.DEBUG
    assert not [r for r in caplog.records if r.name == "rpcplugin.host" and r.exc_info]


async def test_reattach_to_python_plugin_in_debug_mode(sock_dir: str) -> None:
    process = subprocess.Popen(
        SERVED,
        env={**os.environ, "RPCPLUGIN_DEBUG": "1", "PLUGIN_UNIX_SOCKET_DIR": sock_dir},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        printed = process.stdout.readline().decode()
        process.stdout.close()
        config = json.loads(printed)
        assert list(config) == ["probe"]
        assert config["probe"]["Test"] is True
        async with reattach(printed) as conn:
            assert conn.pid == process.pid
            await conn.ping()
            assert await probe(conn, "Echo", b"attached", service=SERVICE) == b"attached"
        await asyncio.sleep(0.05)
        assert process.poll() is None, "Test=true: closing must leave the plugin running"
    finally:
        process.terminate()  # the test's own process; debug mode keeps SIGTERM's meaning
        process.wait(5)
