"""docs/protocol.md §5, P15–P19: AutoMTLS that really is mutual, on both TLS backends.

The backends: grpcio's own TLS (chosen for a P-256 host certificate, like our Python host's)
and the OpenSSL relay (chosen for a P-521 host certificate, like every go-plugin host's). The
plugin's debug log names the one it chose, so each test knows which path it exercised.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
from types import SimpleNamespace

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from peers.harness import (
    Conformance,
    Identity,
    Launcher,
    PluginProcess,
    client_context,
    dial,
    health_check,
    poll_until,
    shutdown,
    tls_probe,
)

BACKENDS = {"grpc": "secp256r1", "openssl": "secp521r1"}


def launch_tls(
    launch: Launcher, backend: str, extra: dict[str, str] | None = None
) -> tuple[PluginProcess, Identity]:
    identity = launch.identity(BACKENDS[backend])
    plugin = launch(
        {"PLUGIN_CLIENT_CERT": identity.pem, "RPCPLUGIN_LOG_LEVEL": "debug", **(extra or {})}
    )
    serving = plugin.wait_stderr(lambda line: '"plugin serving"' in line)
    assert json.loads(serving)["tls"] == backend, serving
    return plugin, identity


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---- P15 ----


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_p15_serves_tls_with_alpn_h2_to_the_host_certificate(
    launch: Launcher, backend: str, transport: str
) -> None:
    plugin, identity = launch_tls(launch, backend, {"RPCPLUGIN_TRANSPORT": transport})
    assert plugin.hs is not None
    result = tls_probe(plugin.hs, client_context(plugin.hs, identity))
    assert result.served, result
    assert result.alpn == "h2"
    assert result.version in ("TLSv1.2", "TLSv1.3")
    # TLS 1.2 is allowed too (go-plugin hosts set MinVersion 1.2)
    tls12 = client_context(plugin.hs, identity, maximum=ssl.TLSVersion.TLSv1_2)
    result = tls_probe(plugin.hs, tls12)
    assert result.served and result.version == "TLSv1.2", result


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_p15_refuses_a_client_without_a_certificate(
    launch: Launcher, backend: str, transport: str
) -> None:
    plugin, identity = launch_tls(launch, backend, {"RPCPLUGIN_TRANSPORT": transport})
    assert plugin.hs is not None
    for maximum in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        result = tls_probe(plugin.hs, client_context(plugin.hs, None, maximum=maximum))
        assert not result.served, result
    # and the plugin still serves its host afterwards
    assert tls_probe(plugin.hs, client_context(plugin.hs, identity)).served


@pytest.mark.parametrize("curve", ["secp256r1", "secp521r1"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_p15_refuses_a_certificate_other_than_the_hosts(
    launch: Launcher, backend: str, curve: str
) -> None:
    plugin, identity = launch_tls(launch, backend)
    assert plugin.hs is not None
    # same profile as the host's (O=HashiCorp, CN=localhost, SAN, EKUs, CA): another key
    other = launch.identity(curve)
    assert other.material.cert_der != identity.material.cert_der
    for maximum in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        result = tls_probe(plugin.hs, client_context(plugin.hs, other, maximum=maximum))
        assert not result.served, result
    assert tls_probe(plugin.hs, client_context(plugin.hs, identity)).served


@pytest.mark.parametrize("backend", BACKENDS)
async def test_p15_grpc_calls_fail_without_the_host_certificate(
    launch: Launcher, pb: SimpleNamespace, backend: str
) -> None:
    plugin, identity = launch_tls(launch, backend)
    assert plugin.hs is not None
    stranger = launch.identity(BACKENDS[backend])
    for client in (None, stranger):
        async with dial(plugin.hs, client, via=backend) as dialed:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await Conformance(dialed.channel, pb).echo(pb.v1.EchoRequest(text="x"), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    async with dial(plugin.hs, identity, via=backend) as dialed:
        reply = await Conformance(dialed.channel, pb).echo(pb.v1.EchoRequest(text="x"), timeout=10)
        assert reply.text == "x"


@pytest.mark.parametrize("backend", BACKENDS)
def test_p15_refused_connections_leak_nothing(launch: Launcher, backend: str) -> None:
    plugin, identity = launch_tls(launch, backend)
    assert plugin.hs is not None
    assert tls_probe(plugin.hs, client_context(plugin.hs, identity)).served
    before = open_fds(plugin.pid)
    stranger = launch.identity(BACKENDS[backend])
    for _ in range(20):
        assert not tls_probe(plugin.hs, client_context(plugin.hs, stranger)).served
    assert tls_probe(plugin.hs, client_context(plugin.hs, identity)).served
    # the relay closes a refused connection's sockets as it gets to them: on a loaded machine
    # that is later, not never
    settled = poll_until(lambda: open_fds(plugin.pid) <= before + 2, 10.0)
    assert settled, f"refused connections hold descriptors: {open_fds(plugin.pid)} > {before} + 2"


# ---- P16 ----


def test_p16_plugin_certificate_profile(launch: Launcher) -> None:
    identity = launch.identity()
    before = datetime.datetime.now(datetime.UTC)
    first = launch({"PLUGIN_CLIENT_CERT": identity.pem})
    second = launch({"PLUGIN_CLIENT_CERT": identity.pem})
    after = datetime.datetime.now(datetime.UTC)
    assert first.hs is not None and second.hs is not None
    assert first.hs.cert_der != second.hs.cert_der, "a fresh certificate per run"
    assert first.hs.cert_der is not None
    cert = x509.load_der_x509_certificate(first.hs.cert_der)
    localhost = [x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]
    assert list(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)) == localhost
    assert cert.issuer == cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == []
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.digital_signature
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name in ("secp256r1", "secp384r1")
    # made while the plugin started (openssl's certificate is not backdated, cryptography's
    # is by 30 s): between a minute before the launch and its end
    assert before - datetime.timedelta(seconds=60) <= cert.not_valid_before_utc <= after
    assert cert.not_valid_after_utc > before + datetime.timedelta(days=365 * 10)


# ---- P17 ----


async def test_p17_p521_sha512_host_certificate_under_tls13(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin, identity = launch_tls(launch, "openssl")
    assert plugin.hs is not None
    host_cert = x509.load_pem_x509_certificate(identity.material.cert_pem)
    assert isinstance(host_cert.signature_hash_algorithm, hashes.SHA512)
    public = host_cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp521r1"
    async with dial(plugin.hs, identity, via="openssl", minimum=ssl.TLSVersion.TLSv1_3) as dialed:
        assert await health_check(dialed.channel) == 1
        stub = Conformance(dialed.channel, pb)
        reply = await stub.echo(pb.v1.EchoRequest(text="p521"), timeout=10)
        assert reply.text == "p521"
        assert dialed.relay is not None
        assert dialed.relay.sessions, dialed.relay.errors
        assert {s.version for s in dialed.relay.sessions} == {"TLSv1.3"}
        assert {s.alpn for s in dialed.relay.sessions} == {"h2"}
        assert all(s.peer_der == plugin.hs.cert_der for s in dialed.relay.sessions)
        assert await shutdown(dialed.channel) in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)
    assert plugin.wait(5) == 0


# ---- P19 ----

_KEY_PEM = (
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIEVt7mQxSxuJ3mGkHy0lqkRe1s3Qn2N5b5uG0pQbXq5YoAoGCCqGSM49\n"
    "-----END EC PRIVATE KEY-----\n"
)


@pytest.mark.parametrize(
    "cert",
    [
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        _KEY_PEM,
    ],
    ids=["garbage", "pem-garbage-body", "private-key"],
)
def test_p19_unparsable_client_cert_exits_3_with_one_line(launch: Launcher, cert: str) -> None:
    plugin = launch({"PLUGIN_CLIENT_CERT": cert}, handshake=False)
    assert plugin.wait(15) == 3
    assert plugin.read_rest_of_stdout(1) == b""
    lines = plugin.stderr_lines()
    assert len(lines) == 1, lines
    assert "PLUGIN_CLIENT_CERT" in lines[0] and "Traceback" not in lines[0]
