"""Certificates for running plugin servers across machines with mutual TLS (``rpcplugin certs``).

AutoMTLS (:mod:`rpcplugin._wire.mtls`) needs no certificates from anyone: each run makes its own.
A plugin *server* that other machines dial is different: it needs a certificate its clients can
verify, and the clients need certificates it can verify. This module makes a small private CA
and issues server and client certificates from it::

    rpcplugin certs ca --dir pki                         # pki/ca.pem, pki/ca-key.pem
    rpcplugin certs server --dir pki plugins.example.net 10.0.0.5
    rpcplugin certs client --dir pki ci-runner           # pki/client.pem, pki/client-key.pem
    rpcplugin certs inspect pki/server.pem               # subject, SANs, curve, expiry

(``rpcplugin-certs ...`` is an alias for one release; the commands live in
:mod:`rpcplugin.cli.certs`). Keys are P-256 by default, which grpcio's own TLS and
OpenSSL both verify; private keys are written mode 0600 and never overwritten without
``--force``.

The host side uses them with ``rpcplugin.connect(addr, tls=TLSFiles(ca_file=..., cert_file=...,
key_file=...))``; a server built on ``grpc.aio`` uses :func:`server_credentials`. Each loader
accepts a file path or the PEM text itself (say, from an environment variable), and logs a
warning when a certificate it loads has less than :data:`EXPIRY_WARNING_DAYS` days left.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .._wire.mtls import EXPIRY_WARNING_DAYS as EXPIRY_WARNING_DAYS
from .._wire.mtls import warn_if_expiring as warn_if_expiring
from ..errors import ConfigError, SecurityError

if TYPE_CHECKING:
    import grpc
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger("rpcplugin.certs")

"""A loaded certificate with fewer days left than this is logged as a warning."""
CA_DAYS = 3650
LEAF_DAYS = 365
CURVES = ("secp256r1", "secp384r1", "secp521r1")
BACKDATE = datetime.timedelta(minutes=5)
"""Certificates are valid from a little before their creation, for clocks that disagree."""

Usage = Literal["server", "client", "both"]


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:  # keep the key out of logs and tracebacks
        return f"Issued(cert_pem=<{len(self.cert_pem)} bytes>, key_pem=<hidden>)"


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What :func:`describe` reports about a certificate."""

    subject: str
    issuer: str
    serial: str
    sans: tuple[str, ...]
    key: str
    curve: str | None
    is_ca: bool
    usages: tuple[str, ...]
    not_before: str
    not_after: str
    days_left: float
    sha256: str


# -- making certificates ---------------------------------------------------------------------


def _curve(name: str) -> ec.EllipticCurve:
    from cryptography.hazmat.primitives.asymmetric import ec

    curves: dict[str, ec.EllipticCurve] = {
        "secp256r1": ec.SECP256R1(),
        "secp384r1": ec.SECP384R1(),
        "secp521r1": ec.SECP521R1(),
    }
    try:
        return curves[name]
    except KeyError:
        raise ConfigError("curve", name, "one of " + ", ".join(CURVES)) from None


def _hash_for(curve: str) -> object:
    from cryptography.hazmat.primitives import hashes

    return {"secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}.get(curve, hashes.SHA256())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _check_days(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500:
        raise ConfigError("days", days, "a whole number of days from 1 to 36500")


def create_ca(
    common_name: str = "rpcplugin CA", *, days: int = CA_DAYS, curve: str = "secp256r1"
) -> Issued:
    """A new self-signed CA that may only sign end-entity certificates (path length 0)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    _check_days(days)
    key = ec.generate_private_key(_curve(curve))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _hash_for(curve))  # type: ignore[arg-type]
    )
    from cryptography.hazmat.primitives import serialization

    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _san(name: str) -> x509.GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    if not name or any(c.isspace() or c in "/:@" for c in name):
        raise ConfigError("name", name, "a DNS name or an IP address")
    return x509.DNSName(name)


def issue(
    ca: Issued,
    common_name: str,
    *,
    names: Sequence[str] = (),
    usage: Usage = "server",
    days: int = LEAF_DAYS,
    curve: str = "secp256r1",
) -> Issued:
    """A certificate signed by ``ca``: for a server (``names`` are its DNS names and IP
    addresses, ``common_name`` is added to them), a client, or both."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    _check_days(days)
    if usage not in ("server", "client", "both"):
        raise ConfigError("usage", usage, "server, client or both")
    ca_cert = load_certificate(ca.cert_pem, what="the CA certificate")
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise SecurityError("the CA key is not an EC key made by rpcplugin-certs")
    if _public_der(ca_key.public_key()) != _public_der(ca_cert.public_key()):
        raise SecurityError("the CA key does not belong to the CA certificate")
    sans: list[str] = []
    if usage in ("server", "both"):
        for name in (common_name, *names):
            if name not in sans:
                sans.append(name)
    key = ec.generate_private_key(_curve(curve))
    now = datetime.datetime.now(datetime.UTC)
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    purposes = {
        "server": [ExtendedKeyUsageOID.SERVER_AUTH],
        "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
        "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    }[usage]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_san(n) for n in sans]), critical=False
        )
    cert = builder.sign(ca_key, _hash_for(curve_of(ca_cert) or "secp256r1"))  # type: ignore[arg-type]
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _public_der(public: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- loading and inspecting ------------------------------------------------------------------


def read_pem(value: str | bytes, *, what: str) -> bytes:
    """PEM bytes from ``value``: the PEM text itself, or the path of a file holding it."""
    if isinstance(value, bytes):
        return value
    if "-----BEGIN " in value:
        return value.encode("ascii", "replace")
    try:
        with open(value, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(what, value, f"PEM text or a readable file ({exc.strerror})") from None


def load_certificate(
    value: str | bytes, *, what: str = "certificate", warn_days: int = EXPIRY_WARNING_DAYS
) -> x509.Certificate:
    """Load a PEM certificate (text or path), warning in the logs when it expires soon."""
    from .._wire import mtls

    source = what if not isinstance(value, str) or "-----BEGIN " in value else f"{what} {value}"
    cert = mtls.load_pem_certificate(read_pem(value, what=what), source=source)
    warn_if_expiring(cert, source=source, days=warn_days)
    return cert


def curve_of(cert: x509.Certificate) -> str | None:
    """The EC curve of the certificate's key (``secp256r1``...), or None for other keys."""
    from cryptography.hazmat.primitives.asymmetric import ec

    public = cert.public_key()
    return public.curve.name if isinstance(public, ec.EllipticCurvePublicKey) else None


def describe(
    cert: x509.Certificate | bytes | str, *, now: datetime.datetime | None = None
) -> CertificateInfo:
    """Subject, SANs, key and curve, validity and usages of a certificate."""
    from cryptography import x509 as x509_mod
    from cryptography.hazmat.primitives import hashes

    from .._wire import mtls

    if not isinstance(cert, x509_mod.Certificate):
        cert = mtls.load_pem_certificate(read_pem(cert, what="certificate"), source="certificate")
    sans: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509_mod.SubjectAlternativeName).value
        sans += [f"DNS:{n}" for n in san.get_values_for_type(x509_mod.DNSName)]
        sans += [f"IP:{a}" for a in san.get_values_for_type(x509_mod.IPAddress)]
    except x509_mod.ExtensionNotFound:
        pass
    try:
        is_ca = cert.extensions.get_extension_for_class(x509_mod.BasicConstraints).value.ca
    except x509_mod.ExtensionNotFound:
        is_ca = False
    usages: list[str] = []
    try:
        eku = cert.extensions.get_extension_for_class(x509_mod.ExtendedKeyUsage).value
        usages = [getattr(u, "_name", u.dotted_string) for u in eku]
    except x509_mod.ExtensionNotFound:
        pass
    moment = now or datetime.datetime.now(datetime.UTC)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        sans=tuple(sans),
        key=mtls.key_description(cert),
        curve=curve_of(cert),
        is_ca=is_ca,
        usages=tuple(usages),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        days_left=round((cert.not_valid_after_utc - moment).total_seconds() / 86400, 1),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def server_credentials(
    cert: str | bytes, key: str | bytes, client_ca: str | bytes | None
) -> grpc.ServerCredentials:
    """``grpc.ServerCredentials`` for a server presenting ``cert``/``key`` (PEM text or paths)
    and, with ``client_ca``, requiring and verifying client certificates signed by it."""
    import grpc

    from .._wire import mtls

    cert_pem = read_pem(cert, what="server certificate")
    key_pem = read_pem(key, what="server key")
    server_cert = load_certificate(cert_pem, what="server certificate")
    ca_pem = None
    if client_ca is not None:
        ca_pem = read_pem(client_ca, what="client CA")
        ca_cert = load_certificate(ca_pem, what="client CA")
        if not mtls.grpc_can_verify(ca_cert):
            raise SecurityError(
                f"grpcio's TLS cannot verify the client CA's {mtls.key_description(ca_cert)} "
                "key; make the CA with a P-256 or P-384 key"
            )
    if not mtls.grpc_can_verify(server_cert):
        log.warning(
            "the server certificate has a %s key, which grpcio clients cannot verify under "
            "TLS 1.3; prefer P-256",
            mtls.key_description(server_cert),
        )
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)],
        root_certificates=ca_pem,
        require_client_auth=ca_pem is not None,
    )


# -- files and the CLI -----------------------------------------------------------------------


def write_issued(issued: Issued, cert_path: str, key_path: str, *, force: bool = False) -> None:
    """Write a certificate (0644) and its key (0600); refuse to overwrite unless ``force``."""
    for path in (cert_path, key_path):
        if os.path.exists(path) and not force:
            raise ConfigError("output", path, "a path that does not exist yet (or use --force)")
    for path, data, mode in (
        (key_path, issued.key_pem, 0o600),
        (cert_path, issued.cert_pem, 0o644),
    ):
        if force and os.path.exists(path):
            os.unlink(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
