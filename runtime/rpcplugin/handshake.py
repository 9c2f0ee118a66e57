"""The handshake: magic cookie, app protocol version negotiation and the one stdout line.

The line is ``CORE|APP|NETWORK|ADDRESS|PROTOCOL|SERVER_CERT[|MUX]`` (docs/protocol.md §3). This
module formats it on the plugin side and parses and validates it on the host side, exactly as
go-plugin's host does, so both sides share one definition.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Iterable

from .errors import HandshakeError, VersionMismatchError
from .record import Record

CORE_PROTOCOL_VERSION = 1
"""go-plugin's core protocol version. It has never changed."""

PROTOCOL_GRPC = "grpc"
MAX_LINE_BYTES = 64 * 1024
"""go-plugin reads the handshake with a 64 KiB line scanner; longer lines are rejected."""
_CERT_FIELD_MIN_CHARS = 50
"""go-plugin ignores field 6 when it is this short or shorter."""


class Handshake(Record):
    """What a host and a plugin must agree on before anything else: the magic cookie.

    The cookie is not a secret; it only stops a plugin binary from being run by hand or by the
    wrong host. Terraform, Vault and Nomad each publish theirs (docs/compatibility.md).
    """

    __slots__ = ("cookie_key", "cookie_value")
    cookie_key: str
    cookie_value: str

    def __init__(self, cookie_key: str, cookie_value: str) -> None:
        super().__init__(cookie_key=cookie_key, cookie_value=cookie_value)


class HandshakeLine(Record):
    """One parsed (or to-be-printed) handshake line."""

    __slots__ = (
        "address",
        "app_version",
        "core_version",
        "multiplex",
        "network",
        "protocol",
        "server_cert_der",
    )
    app_version: int
    network: str
    address: str
    protocol: str
    server_cert_der: bytes | None
    multiplex: bool | None
    core_version: int

    def __init__(
        self,
        app_version: int,
        network: str,
        address: str,
        protocol: str = PROTOCOL_GRPC,
        server_cert_der: bytes | None = None,
        multiplex: bool | None = None,
        core_version: int = CORE_PROTOCOL_VERSION,
    ) -> None:
        super().__init__(
            app_version=app_version,
            network=network,
            address=address,
            protocol=protocol,
            server_cert_der=server_cert_der,
            multiplex=multiplex,
            core_version=core_version,
        )

    def format(self) -> str:
        """The line as a plugin prints it, with the trailing newline.

        Field 6 is the unpadded standard base64 of the certificate's DER, or empty; field 7 is
        written only when ``multiplex`` is not ``None`` (only when the host asked, P09).
        """
        cert = ""
        if self.server_cert_der is not None:
            cert = base64.b64encode(self.server_cert_der).decode("ascii").rstrip("=")
        fields = [
            str(self.core_version),
            str(self.app_version),
            self.network,
            self.address,
            self.protocol,
            cert,
        ]
        if self.multiplex is not None:
            fields.append("true" if self.multiplex else "false")
        for field in fields:
            if "|" in field or "\n" in field:
                raise ValueError(f"handshake field {field!r} contains '|' or a newline")
        return "|".join(fields) + "\n"

    @classmethod
    def parse(cls, raw: str | bytes, *, host_versions: Collection[int]) -> HandshakeLine:
        """Parse and validate a handshake line as go-plugin's host does (docs/protocol.md §3.4).

        Accepts 5 to 7 fields, ignores a field 6 of 50 characters or fewer, decodes it as
        unpadded base64 DER, and checks the core version, the app version (must be one of
        ``host_versions``), the network and the protocol. Raises :class:`HandshakeError` (or
        :class:`VersionMismatchError`) naming the line it got and what was expected.
        """
        if isinstance(raw, bytes):
            if len(raw) > MAX_LINE_BYTES:
                raise HandshakeError(
                    f"handshake line is {len(raw)} bytes, over the {MAX_LINE_BYTES}-byte limit",
                    _shorten(raw.decode("utf-8", "replace")),
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HandshakeError(
                    f"handshake line is not UTF-8 ({exc.reason} at byte {exc.start}): "
                    f"{_shorten(raw.decode('utf-8', 'replace'))!r}",
                    raw.decode("utf-8", "replace"),
                ) from None
        else:
            text = raw
        line = text.strip()
        shown = _shorten(line)
        expected = (
            "expected CORE|APP|NETWORK|ADDRESS|grpc|CERT, e.g. '1|1|unix|/tmp/plugin123|grpc|'"
        )
        if not line:
            raise HandshakeError(
                "the plugin printed an empty handshake line (or nothing at all); " + expected,
                line,
            )
        if "\x00" in line:
            raise HandshakeError(f"handshake line contains a NUL byte: {shown!r}; {expected}", line)
        parts = line.split("|")
        if len(parts) < 4:
            raise HandshakeError(f"unrecognized plugin handshake line {shown!r}; {expected}", line)
        if len(parts) > 7:
            raise HandshakeError(
                f"handshake line has {len(parts)} fields, at most 7 are allowed: {shown!r}", line
            )
        core = _parse_int(parts[0], "core protocol version", line)
        if core != CORE_PROTOCOL_VERSION:
            raise VersionMismatchError(
                f"incompatible core protocol version {core} in handshake {shown!r}; "
                f"this host speaks {CORE_PROTOCOL_VERSION}",
                line,
            )
        app = _parse_int(parts[1], "app protocol version", line)
        if app not in host_versions:
            offered = ",".join(str(v) for v in sorted(host_versions))
            raise VersionMismatchError(
                f"the plugin answered app protocol version {app}, but this host offered only "
                f"{offered or '(none)'}; rebuild the plugin or host for a shared version",
                line,
            )
        network = parts[2]
        if network not in ("unix", "tcp"):
            raise HandshakeError(
                f"unknown network {network!r} in handshake {shown!r}; expected 'unix' or 'tcp'",
                line,
            )
        address = parts[3]
        if not address:
            raise HandshakeError(f"empty address in handshake {shown!r}", line)
        if network == "unix" and not address.startswith("/"):
            raise HandshakeError(
                f"unix address {address!r} in handshake is not an absolute path", line
            )
        protocol = parts[4] if len(parts) >= 5 else "netrpc"
        if protocol != PROTOCOL_GRPC:
            raise HandshakeError(
                f"the plugin speaks protocol {protocol!r}, but only 'grpc' is supported "
                f"(netrpc cannot be spoken outside Go): {shown!r}",
                line,
            )
        cert_der: bytes | None = None
        if len(parts) >= 6 and len(parts[5]) > _CERT_FIELD_MIN_CHARS:
            cert_der = decode_cert_field(parts[5], line)
        multiplex: bool | None = None
        if len(parts) == 7:
            multiplex = _parse_bool(parts[6])
        return cls(
            app_version=app,
            network=network,
            address=address,
            protocol=protocol,
            server_cert_der=cert_der,
            multiplex=multiplex,
            core_version=core,
        )


def decode_cert_field(field: str, line: str = "") -> bytes:
    """Decode handshake field 6: standard-alphabet base64 with the padding stripped."""
    padded = field + "=" * (-len(field) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HandshakeError(
            f"handshake field 6 (server certificate) is not valid base64: {exc}", line
        ) from None


def negotiate_version(offered: Iterable[int] | None, supported: Collection[int]) -> int:
    """Pick the app protocol version a plugin announces (docs/protocol.md §3.3).

    The highest version in ``supported`` that the host also offers; when there is none (or
    the host offered nothing), the plugin's *lowest* version, so the host can reject it with
    a clear message.
    """
    if not supported:
        raise ValueError("a plugin must support at least one app protocol version")
    host = set(offered or ())
    for version in sorted(supported, reverse=True):
        if version in host:
            return version
    return min(supported)


def parse_version_list(raw: str) -> tuple[list[int], list[str]]:
    """Parse ``PLUGIN_PROTOCOL_VERSIONS`` (``"5,6"``, any order). Returns the integers and the
    items that were not integers (the caller notes those on stderr and skips them, as Go does)."""
    versions: list[int] = []
    bad: list[str] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            versions.append(int(item))
        except ValueError:
            bad.append(item)
    return versions, bad


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}


def _parse_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool`` spellings; anything else counts as false (not multiplexed)."""
    return value in _TRUE


def _parse_int(value: str, what: str, line: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise HandshakeError(
            f"cannot parse the {what} {value!r} in handshake {_shorten(line)!r}", line
        ) from None


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
