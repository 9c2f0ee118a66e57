"""Certificates made by the CLI give a working mTLS direct connection across two processes; a
certificate from another CA is refused; loaders warn before certificates expire."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpcplugin
from rpcplugin._wire import dial
from rpcplugin._wire.dial import TLSFiles
from rpcplugin._wire.transport import Endpoint
from rpcplugin.errors import PluginError, SecurityError
from rpcplugin.ops import certs

from .helpers import say

HERE = Path(__file__).resolve().parent


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "rpcplugin.cli", "certs", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two CAs made by the CLI; from the first a server and a client certificate, from the
    second ('other') a client and a server certificate with the same names."""
    root = tmp_path_factory.mktemp("pki")
    for name in ("good", "other"):
        directory = str(root / name)
        cli("ca", "--dir", directory, "--name", f"{name} CA")
        cli("server", "--dir", directory, "localhost", "127.0.0.1")
        cli("client", "--dir", directory, "host-client")
    return root


@contextlib.contextmanager
def server_process(pki: Path, cert_dir: str = "good", ca_dir: str = "good") -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "mtls_server.py"),
            str(pki / cert_dir / "server.pem"),
            str(pki / cert_dir / "server-key.pem"),
            str(pki / ca_dir / "ca.pem"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"127.0.0.1:{port}"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def files(pki: Path, client_dir: str = "good", ca_dir: str = "good") -> TLSFiles:
    return TLSFiles(
        ca_file=str(pki / ca_dir / "ca.pem"),
        cert_file=str(pki / client_dir / "client.pem"),
        key_file=str(pki / client_dir / "client-key.pem"),
    )


def test_the_cli_writes_a_ca_and_certificates_with_private_keys(pki: Path) -> None:
    good = pki / "good"
    assert sorted(os.listdir(good)) == [
        "ca-key.pem",
        "ca.pem",
        "client-key.pem",
        "client.pem",
        "server-key.pem",
        "server.pem",
    ]
    for key in ("ca-key.pem", "client-key.pem", "server-key.pem"):
        assert stat.S_IMODE(os.stat(good / key).st_mode) == 0o600
    again = cli("ca", "--dir", str(good), check=False)
    assert again.returncode == 1 and "--force" in again.stderr
    assert "Traceback" not in again.stderr


def test_inspect_shows_subject_sans_curve_and_expiry(pki: Path) -> None:
    text = cli("inspect", str(pki / "good" / "server.pem")).stdout
    assert "subject:    CN=localhost" in text
    assert "issuer:     CN=good CA" in text
    assert "SANs:       DNS:localhost, IP:127.0.0.1" in text
    assert "curve:      secp256r1" in text
    assert "usages:     serverAuth" in text
    assert "days left" in text
    info = json.loads(cli("inspect", "--json", str(pki / "good" / "ca.pem")).stdout)
    assert info["is_ca"] is True and info["curve"] == "secp256r1"
    assert 3640 < info["days_left"] <= 3650
    client = json.loads(cli("inspect", "--json", str(pki / "good" / "client.pem")).stdout)
    assert client["usages"] == ["clientAuth"] and client["sans"] == []


async def test_cli_certificates_give_a_working_mtls_connection_across_processes(
    pki: Path,
) -> None:
    with server_process(pki) as address:
        async with rpcplugin.connect(address, tls=files(pki)) as conn:
            assert conn.tls == "grpc"
            assert await say(conn.channel)(b"over mTLS") == b"over mTLS"
        named = dataclasses.replace(files(pki), server_name="localhost")
        async with rpcplugin.connect(address.replace("127.0.0.1", "localhost"), tls=named) as conn:
            assert await say(conn.channel)(b"by name") == b"by name"
        # the same server refuses a client whose certificate another CA signed ...
        with pytest.raises(PluginError):
            await rpcplugin.connect(address, tls=files(pki, client_dir="other"))
        # ... and a client without any certificate
        anonymous = TLSFiles(ca_file=str(pki / "good" / "ca.pem"))
        with pytest.raises(PluginError):
            await rpcplugin.connect(address, tls=anonymous)


async def test_a_server_certificate_from_another_ca_is_refused(pki: Path) -> None:
    # the server presents a certificate from 'other' but trusts our client CA
    with server_process(pki, cert_dir="other", ca_dir="good") as address:
        with pytest.raises(PluginError):
            await rpcplugin.connect(address, tls=files(pki))
        # trusting 'other' as well is what it takes
        trusting_other = TLSFiles(
            ca_file=str(pki / "other" / "ca.pem"),
            cert_file=str(pki / "good" / "client.pem"),
            key_file=str(pki / "good" / "client-key.pem"),
        )
        async with rpcplugin.connect(address, tls=trusting_other) as conn:
            assert await say(conn.channel)(b"ok") == b"ok"


@pytest.fixture
def cert_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of rpcplugin.certs, whatever a plugin served earlier did to propagation."""
    logger = logging.getLogger("rpcplugin.certs")
    logger.addHandler(caplog.handler)
    logger.propagate = False  # once, not again through the root logger
    caplog.handler.setLevel(logging.WARNING)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = True


async def test_certificates_close_to_expiry_are_logged(
    tmp_path: Path, cert_logs: pytest.LogCaptureFixture
) -> None:
    ca = certs.create_ca("short CA", days=20)
    leaf = certs.issue(ca, "short-client", usage="client", days=400)
    info = certs.describe(leaf.cert_pem)
    assert info.days_left <= 20  # a certificate never outlives its CA
    certs.write_issued(ca, str(tmp_path / "ca.pem"), str(tmp_path / "ca-key.pem"))
    certs.write_issued(leaf, str(tmp_path / "c.pem"), str(tmp_path / "c-key.pem"))

    certs.load_certificate(str(tmp_path / "c.pem"), what="client certificate")
    assert "expires in" in cert_logs.text and "c.pem" in cert_logs.text
    cert_logs.clear()

    pem_text = (tmp_path / "ca.pem").read_text()  # PEM text works as well as a path
    certs.load_certificate(pem_text, what="RPCPLUGIN_TEST_CA")
    assert "RPCPLUGIN_TEST_CA" in cert_logs.text and "expires in" in cert_logs.text
    cert_logs.clear()

    dialed = await dial.with_files(
        Endpoint("tcp", "127.0.0.1:1"),
        TLSFiles(str(tmp_path / "ca.pem"), str(tmp_path / "c.pem"), str(tmp_path / "c-key.pem")),
    )
    await dialed.close()
    assert cert_logs.text.count("expires in") == 2  # the CA and our own certificate
    cert_logs.clear()

    cert = certs.load_certificate(leaf.cert_pem)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=60)
    assert certs.warn_if_expiring(cert, source="old", now=later)
    assert "expired" in cert_logs.text and cert_logs.records[-1].levelno == logging.ERROR
    fresh = certs.load_certificate(certs.create_ca().cert_pem)
    assert not certs.warn_if_expiring(fresh, source="fresh")

    result = cli("inspect", "--check", str(tmp_path / "c.pem"), check=False)
    assert result.returncode == 1 and "expires in" in result.stderr


def test_library_checks(tmp_path: Path) -> None:
    ca = certs.create_ca()
    other = certs.create_ca()
    with pytest.raises(SecurityError, match="does not belong"):
        certs.issue(certs.Issued(ca.cert_pem, other.key_pem), "x")
    leaf = certs.issue(ca, "svc.example", names=["10.1.2.3", "[::1]"], usage="both")
    info = certs.describe(leaf.cert_pem)
    assert info.sans == ("DNS:svc.example", "IP:10.1.2.3", "IP:::1")
    assert set(info.usages) == {"serverAuth", "clientAuth"}
    assert "hidden" in repr(leaf) and "PRIVATE" not in repr(leaf)
    big = certs.create_ca(curve="secp521r1")
    with pytest.raises(SecurityError, match="cannot verify"):
        certs.server_credentials(leaf.cert_pem, leaf.key_pem, big.cert_pem)
    with pytest.raises(rpcplugin.ConfigError):
        certs.read_pem(str(tmp_path / "missing.pem"), what="RPCPLUGIN_X")
    usage = cli("bogus", check=False)
    assert usage.returncode == 2


async def test_a_refused_certificate_is_not_retried(pki: Path) -> None:
    """TLS refusals are final: with a 10 s retry budget the connect still fails at once."""
    import time

    from rpcplugin.host.retry import RetryPolicy

    policy = RetryPolicy(attempts=100, backoff=0.05, max_backoff=0.2, deadline=10)
    with server_process(pki) as address:
        for tls in (files(pki, client_dir="other"), files(pki, ca_dir="other")):
            started = time.monotonic()
            with pytest.raises(SecurityError):
                await rpcplugin.connect(address, tls=tls, retry=policy)
            assert time.monotonic() - started < policy.deadline  # refused, not retried to the end
