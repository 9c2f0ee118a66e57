"""AutoMTLS certificates and TLS contexts (docs/protocol.md §5).

Each side makes a fresh self-signed certificate per run, with go-plugin's profile (SAN
``localhost``, CA:TRUE, keyCertSign, clientAuth+serverAuth EKU, valid from now−30 s for ~30
years) but a **P-256** key, which every TLS stack can verify. The peer's certificate is the only
trust anchor; the peer is always verified.

Which TLS stack runs the connection is decided here too: grpcio's BoringSSL cannot verify the
P-521 keys every go-plugin peer uses under TLS 1.3 (docs/protocol.md §5.3), so such peers go
through the OpenSSL relay (:mod:`rpcplugin._wire.tls_relay`) built on Python's :mod:`ssl`.

This module imports ``cryptography`` and ``ssl`` lazily: a plaintext plugin never loads them.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import SecurityError
from ..record import Record

if TYPE_CHECKING:
    import ssl

    from cryptography import x509

log = logging.getLogger("rpcplugin.certs")

EXPIRY_WARNING_DAYS = 30
"""Certificates with fewer days left than this are warned about when loaded."""


def warn_if_expiring(
    cert: x509.Certificate,
    *,
    source: str,
    days: int = EXPIRY_WARNING_DAYS,
    now: datetime.datetime | None = None,
) -> bool:
    """Log a warning if ``cert`` expires within ``days`` days (an error if it has expired or is
    not valid yet); True when something was logged."""
    moment = now or datetime.datetime.now(datetime.UTC)
    left = cert.not_valid_after_utc - moment
    subject = cert.subject.rfc4514_string() or "(no subject)"
    if left.total_seconds() <= 0:
        log.error(
            "%s (%s) expired on %s: TLS connections with it will fail",
            source,
            subject,
            cert.not_valid_after_utc.isoformat(),
        )
        return True
    if cert.not_valid_before_utc > moment:
        log.error(
            "%s (%s) is not valid before %s: check this machine's clock",
            source,
            subject,
            cert.not_valid_before_utc.isoformat(),
        )
        return True
    if left < datetime.timedelta(days=days):
        log.warning(
            "%s (%s) expires in %.1f days, on %s: renew it (rpcplugin-certs)",
            source,
            subject,
            left.total_seconds() / 86400,
            cert.not_valid_after_utc.isoformat(),
        )
        return True
    return False


VALIDITY = datetime.timedelta(hours=262_980)
BACKDATE = datetime.timedelta(seconds=30)
SERVER_NAME = "localhost"
"""The name every AutoMTLS certificate carries and every client verifies."""

_GRPC_VERIFIABLE_CURVES = frozenset({"secp256r1", "secp384r1"})
"""EC curves whose signatures PyPI grpcio's BoringSSL verifies under TLS 1.3."""


class CertificateAndKey(Record):
    """A certificate (PEM and DER) and its private key (PEM). The key never leaves memory."""

    __slots__ = ("cert_der", "cert_pem", "key_pem")
    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes

    def __init__(self, cert_pem: bytes, key_pem: bytes, cert_der: bytes) -> None:
        super().__init__(cert_pem=cert_pem, key_pem=key_pem, cert_der=cert_der)

    def __repr__(self) -> str:  # keep the key out of logs and tracebacks
        return f"CertificateAndKey(cert_der=<{len(self.cert_der)} bytes>, key_pem=<hidden>)"


def generate_certificate(curve: str = "secp256r1") -> CertificateAndKey:
    """A fresh self-signed AutoMTLS certificate with go-plugin's profile and the given curve."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    curves: dict[str, ec.EllipticCurve] = {
        "secp256r1": ec.SECP256R1(),
        "secp384r1": ec.SECP384R1(),
        "secp521r1": ec.SECP521R1(),
    }
    key = ec.generate_private_key(curves[curve])
    hash_alg: hashes.SHA256 | hashes.SHA384 | hashes.SHA512
    if curve == "secp521r1":
        hash_alg = hashes.SHA512()
    elif curve == "secp384r1":
        hash_alg = hashes.SHA384()
    else:
        hash_alg = hashes.SHA256()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(os.urandom(16), "big"))
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hash_alg)
    )
    return CertificateAndKey(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        cert_der=cert.public_bytes(serialization.Encoding.DER),
    )


def load_pem_certificate(pem: str | bytes, *, source: str) -> x509.Certificate:
    """Parse one PEM certificate, or raise :class:`SecurityError` naming where it came from."""
    from cryptography import x509

    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise SecurityError(f"{source} is not a PEM certificate: {exc}") from None


def load_der_certificate(der: bytes, *, source: str) -> x509.Certificate:
    """Parse one DER certificate, or raise :class:`SecurityError` naming where it came from."""
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise SecurityError(f"{source} is not a DER certificate: {exc}") from None


def pem_of(cert: x509.Certificate) -> bytes:
    """A certificate's PEM encoding."""
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def key_description(cert: x509.Certificate) -> str:
    """``"EC secp521r1"``, ``"RSA 2048"``, ... for messages and TLS backend choice."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {public.curve.name}"
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA {public.key_size}"
    return type(public).__name__


def grpc_can_verify(cert: x509.Certificate) -> bool:
    """Whether grpcio's own (BoringSSL) TLS can verify signatures made with this cert's key."""
    return grpc_can_verify_key(key_description(cert))


def grpc_can_verify_key(description: str) -> bool:
    """The same for a key described as :func:`key_description` does (``"EC secp256r1"``)."""
    if description.startswith("EC "):
        return description[3:] in _GRPC_VERIFIABLE_CURVES
    return description.startswith("RSA ")


@contextlib.contextmanager
def key_material_files(identity: CertificateAndKey) -> Iterator[tuple[str, str]]:
    """Paths that :meth:`ssl.SSLContext.load_cert_chain` can read, without putting the private
    key on disk: anonymous memory files (``memfd_create``) on Linux; elsewhere a 0600 file in a
    0700 directory, removed as soon as the context has loaded it."""
    if hasattr(os, "memfd_create") and sys.platform.startswith("linux"):
        fds = [os.memfd_create("rpcplugin-cert"), os.memfd_create("rpcplugin-key")]
        try:
            os.write(fds[0], identity.cert_pem)
            os.write(fds[1], identity.key_pem)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    directory = tempfile.mkdtemp(prefix="rpcplugin-tls-")
    paths = (os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
    try:
        for path, data in zip(paths, (identity.cert_pem, identity.key_pem), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        yield paths
    finally:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        os.rmdir(directory)


def _base_context(protocol: int, identity: CertificateAndKey, trusted_pem: bytes) -> ssl.SSLContext:
    import ssl

    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=trusted_pem.decode("ascii"))
    # each trusted certificate is an anchor by itself, found by an exact match: without this,
    # of several self-signed ones with the same subject only the first is tried
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    with key_material_files(identity) as (cert_path, key_path):
        context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["h2"])
    return context


def server_ssl_context(identity: CertificateAndKey, trusted_pem: bytes) -> ssl.SSLContext:
    """OpenSSL server side of AutoMTLS: TLS ≥ 1.2, ALPN h2, a client certificate required and
    verified against ``trusted_pem`` only."""
    import ssl

    return _base_context(ssl.PROTOCOL_TLS_SERVER, identity, trusted_pem)


def client_ssl_context(identity: CertificateAndKey, trusted_pem: bytes) -> ssl.SSLContext:
    """OpenSSL client side of AutoMTLS: present ``identity``, trust only ``trusted_pem``, check
    the server name ``localhost``."""
    import ssl

    context = _base_context(ssl.PROTOCOL_TLS_CLIENT, identity, trusted_pem)
    context.check_hostname = True
    return context
