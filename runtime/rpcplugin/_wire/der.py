"""Just enough DER to read an X.509 certificate's public key type without ``cryptography``.

A plugin needs three things from its host's AutoMTLS certificate: that it is one, its DER bytes
(the broker reuses them) and its key type (which TLS backend can verify it,
:mod:`rpcplugin._wire.tls_plan`). Importing ``cryptography`` for that costs ~40 ms of start-up;
walking the certificate's outer structure here costs microseconds. The TLS stacks (grpcio's,
OpenSSL's) still verify everything when the connection is made.
"""

from __future__ import annotations

import binascii
import datetime

from ..errors import SecurityError

_SEQUENCE = 0x30
_INTEGER = 0x02
_BIT_STRING = 0x03
_OID = 0x06
_VERSION = 0xA0  # [0] EXPLICIT
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18

_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_CURVES = {
    "1.2.840.10045.3.1.7": "secp256r1",
    "1.3.132.0.34": "secp384r1",
    "1.3.132.0.35": "secp521r1",
}
_OTHER_KEYS = {
    "1.2.840.113549.1.1.1": "RSA",
    "1.3.101.112": "Ed25519PublicKey",
    "1.3.101.113": "Ed448PublicKey",
}

_BEGIN = "-----BEGIN CERTIFICATE-----"
_END = "-----END CERTIFICATE-----"


class _Malformed(ValueError):
    pass


def der_of_pem(pem: str | bytes, *, source: str) -> bytes:
    """The DER bytes of the first certificate in ``pem``; :class:`SecurityError` naming
    ``source`` when there is none, or it is not a well-formed certificate structure."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    start = text.find(_BEGIN)
    end = text.find(_END, start + len(_BEGIN))
    if start < 0 or end < 0:
        raise SecurityError(f"{source} is not a PEM certificate: no {_BEGIN} block")
    try:
        der = binascii.a2b_base64(text[start + len(_BEGIN) : end], strict_mode=False)
        _certificate_key(der)
    except (binascii.Error, _Malformed) as exc:
        raise SecurityError(f"{source} is not a PEM certificate: {exc}") from None
    return der


def ders_of_pem(pem: str | bytes, *, source: str) -> list[bytes]:
    """The DER bytes of every certificate in ``pem`` (a host may send several: go-plugin trusts
    them all); :class:`SecurityError` naming ``source`` as :func:`der_of_pem`."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    found = [der_of_pem(text, source=source)]
    position = text.find(_END) + len(_END)
    while text.find(_BEGIN, position) >= 0:
        found.append(der_of_pem(text[position:], source=source))
        position = text.find(_END, text.find(_BEGIN, position)) + len(_END)
    return found


def check_validity(ders: list[bytes], *, source: str, now: datetime.datetime | None = None) -> None:
    """:class:`SecurityError` naming ``source``, the certificate and its dates if one of
    ``ders`` has expired or is not valid yet: a plugin fails before its handshake instead of
    refusing every connection later with an opaque TLS error."""
    moment = now or datetime.datetime.now(datetime.UTC)
    for index, der in enumerate(ders, 1):
        try:
            before, after = _validity(der)
        except (_Malformed, ValueError) as exc:
            raise SecurityError(f"{source} has no readable validity dates: {exc}") from None
        which = source + (f", certificate {index} of {len(ders)}," if len(ders) > 1 else "")
        dates = f"valid from {before.isoformat()} to {after.isoformat()}"
        if after <= moment:
            raise SecurityError(
                f"{which} expired on {after.isoformat()} ({dates}); the host must send a "
                "current certificate"
            )
        if before > moment:
            raise SecurityError(
                f"{which} is not valid before {before.isoformat()} ({dates}); check this "
                "machine's clock"
            )


def _validity(der: bytes) -> tuple[datetime.datetime, datetime.datetime]:
    _, body, _ = _read(der, 0)
    _, position, _ = _read(der, body)
    tag, _, after = _read(der, position)
    if tag == _VERSION:
        position = after
    for _ in ("serial number", "signature algorithm", "issuer"):
        _, _, position = _read(der, position)
    tag, start, _ = _read(der, position)
    if tag != _SEQUENCE:
        raise _Malformed("no validity")
    times = []
    for _ in range(2):
        tag, value, start = _read(der, start)
        text = der[value:start].decode("ascii")
        if tag == _UTC_TIME:  # YYMMDDHHMMSSZ: 1950-2049 (RFC 5280)
            year = int(text[:2])
            text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
        elif tag != _GENERALIZED_TIME:
            raise _Malformed("a validity time that is neither UTCTime nor GeneralizedTime")
        times.append(_utc_time(text))
    return times[0], times[1]


def _utc_time(text: str) -> datetime.datetime:
    """``YYYYMMDDHHMMSSZ`` as an aware datetime; by hand, since ``strptime`` would import
    ``_strptime`` (and its locale machinery) on the plugin's start-up path."""
    if len(text) != 15 or not text[:14].isdigit() or text[14] != "Z":
        raise _Malformed(f"a validity time that is not YYYYMMDDHHMMSSZ: {text!r}")
    month, day, hour, minute, second = (int(text[i : i + 2]) for i in range(4, 14, 2))
    try:
        return datetime.datetime(
            int(text[:4]), month, day, hour, minute, second, tzinfo=datetime.UTC
        )
    except ValueError as exc:
        raise _Malformed(f"a validity time that is no date: {text!r} ({exc})") from None


def key_description(der: bytes) -> str:
    """``"EC secp256r1"``, ``"RSA 2048"``, ... for a certificate's public key (the same words
    as :func:`rpcplugin._wire.mtls.key_description`)."""
    try:
        return _certificate_key(der)
    except _Malformed as exc:
        raise SecurityError(f"not a DER certificate: {exc}") from None


def _certificate_key(der: bytes) -> str:
    tag, body, rest = _read(der, 0)
    if tag != _SEQUENCE or rest != len(der):
        raise _Malformed("not one DER SEQUENCE")
    tag, tbs_start, tbs_end = _read(der, body)
    if tag != _SEQUENCE:
        raise _Malformed("no tbsCertificate")
    position = tbs_start
    tag, _, after = _read(der, position)
    if tag == _VERSION:
        position = after
    tag, _, position = _read(der, position)
    if tag != _INTEGER:
        raise _Malformed("no serial number")
    for what in ("signature algorithm", "issuer", "validity", "subject"):
        tag, _, position = _read(der, position)
        if tag != _SEQUENCE:
            raise _Malformed(f"no {what}")
    tag, spki, spki_end = _read(der, position)
    if tag != _SEQUENCE or spki_end > tbs_end:
        raise _Malformed("no subject public key info")
    tag, algorithm, key_start = _read(der, spki)
    if tag != _SEQUENCE:
        raise _Malformed("no key algorithm")
    tag, oid_start, oid_end = _read(der, algorithm)
    if tag != _OID:
        raise _Malformed("no key algorithm identifier")
    oid = _oid(der[oid_start:oid_end])
    if oid == _EC_PUBLIC_KEY:
        tag, curve_start, curve_end = _read(der, oid_end)
        curve = _oid(der[curve_start:curve_end]) if tag == _OID else "?"
        return "EC " + _CURVES.get(curve, curve)
    name = _OTHER_KEYS.get(oid, f"key {oid}")
    if name == "RSA":
        return f"RSA {_rsa_bits(der, key_start)}"
    return name


def _rsa_bits(der: bytes, position: int) -> int:
    tag, start, _ = _read(der, position)
    if tag != _BIT_STRING:
        raise _Malformed("no RSA key")
    tag, key, _ = _read(der, start + 1)  # skip the unused-bits byte
    tag, modulus, modulus_end = _read(der, key)
    if tag != _INTEGER:
        raise _Malformed("no RSA modulus")
    return int.from_bytes(der[modulus:modulus_end], "big").bit_length()


def _read(der: bytes, position: int) -> tuple[int, int, int]:
    """The TLV at ``position``: its tag, where its value starts and where it ends."""
    if position + 2 > len(der):
        raise _Malformed("truncated")
    tag, length = der[position], der[position + 1]
    start = position + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(der):
            raise _Malformed("bad length")
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    end = start + length
    if end > len(der):
        raise _Malformed("truncated")
    return tag, start, end


def _oid(body: bytes) -> str:
    if not body:
        raise _Malformed("empty object identifier")
    first = body[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in body[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(part) for part in parts)
