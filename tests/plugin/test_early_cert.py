"""The plugin's AutoMTLS certificate without ``cryptography`` on the start-up path (issue 15).

``openssl req``, started by ``guard_stdout()``, makes the plugin's certificate while Python
imports grpc (rpcplugin._wire.early_cert), and the host's certificate is read with a small DER
walker (rpcplugin._wire.der). These tests hold both to what ``cryptography`` gives: the same
certificate profile, the same key descriptions, the same refusals, and the fallback when the
``openssl`` command is missing.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from peers.harness import Conformance, Launcher, dial

from rpcplugin._wire import der, early_cert, mtls
from rpcplugin.errors import SecurityError

OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
def test_openssl_makes_a_certificate_with_go_plugins_profile() -> None:
    early_cert.start()
    identity = early_cert.collect()
    assert identity is not None
    assert early_cert.collect() is None  # collected once
    cert = x509.load_der_x509_certificate(identity.cert_der)
    assert cert.public_bytes(Encoding.PEM) == identity.cert_pem
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "HashiCorp"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    life = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert life > datetime.timedelta(days=29 * 365)
    # the key is the certificate's, and the TLS stacks accept the pair
    mtls.server_ssl_context(identity, identity.cert_pem)
    assert "<hidden>" in repr(identity)


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "secp521r1"])
def test_key_descriptions_agree_with_cryptography(curve: str) -> None:
    identity = mtls.generate_certificate(curve)
    cert = x509.load_der_x509_certificate(identity.cert_der)
    assert der.der_of_pem(identity.cert_pem, source="x") == identity.cert_der
    assert der.key_description(identity.cert_der) == mtls.key_description(cert)


def test_rsa_key_size_is_read() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert der.key_description(cert.public_bytes(Encoding.DER)) == "RSA 2048"
    assert mtls.key_description(cert) == "RSA 2048"


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----",
    ],
)
def test_what_is_not_a_certificate_is_refused_naming_its_source(pem: str) -> None:
    with pytest.raises(SecurityError, match=r"^PLUGIN_CLIENT_CERT is not a PEM certificate"):
        der.der_of_pem(pem, source="PLUGIN_CLIENT_CERT")


def test_a_truncated_certificate_is_refused() -> None:
    whole = mtls.generate_certificate().cert_der
    for cut in (1, 10, len(whole) // 2, len(whole) - 1):
        with pytest.raises(SecurityError):
            der.key_description(whole[:cut])


async def test_without_openssl_the_plugin_still_serves_tls(
    launch: Launcher, pb: SimpleNamespace, tmp_path: Path
) -> None:
    """No ``openssl`` on PATH: the certificate comes from ``cryptography``, as before."""
    identity = launch.identity()
    plugin = launch({"PLUGIN_CLIENT_CERT": identity.pem, "PATH": str(tmp_path)})
    assert plugin.hs is not None
    asked = ["module:cryptography"]
    async with dial(plugin.hs, identity) as dialed:
        info = await Conformance(dialed.channel, pb).info(pb.v1.InfoRequest(env=asked))
        assert info.env["module:cryptography"] == "loaded"
