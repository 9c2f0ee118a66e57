"""The handshake line and version negotiation (docs/protocol.md §3), both directions."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcplugin.errors import HandshakeError, VersionMismatchError
from rpcplugin.handshake import HandshakeLine, negotiate_version, parse_version_list

CERT = bytes(range(256)) * 3  # 768 bytes: base64 needs padding, which must be stripped


def test_p04_p06_p08_plaintext_line_has_six_fields_and_empty_cert() -> None:
    line = HandshakeLine(app_version=5, network="unix", address="/tmp/plugin1").format()
    assert line == "1|5|unix|/tmp/plugin1|grpc|\n"


def test_p07_cert_is_unpadded_standard_base64_of_der() -> None:
    line = HandshakeLine(1, "tcp", "127.0.0.1:10000", server_cert_der=CERT).format()
    field = line.rstrip("\n").split("|")[5]
    assert "=" not in field and "\n" not in field
    assert field == base64.b64encode(CERT).decode().rstrip("=")


def test_p09_seventh_field_only_when_asked() -> None:
    assert HandshakeLine(1, "unix", "/p").format().count("|") == 5
    assert HandshakeLine(1, "unix", "/p", multiplex=False).format().endswith("|false\n")


def test_round_trip_with_certificate() -> None:
    original = HandshakeLine(2, "unix", "/tmp/p", server_cert_der=CERT)
    parsed = HandshakeLine.parse(original.format(), host_versions=[1, 2])
    assert parsed == original


@pytest.mark.parametrize("fields", [5, 6, 7])
def test_h02_h03_five_to_seven_fields(fields: int) -> None:
    line = "|".join(["1", "1", "unix", "/tmp/p", "grpc", "", "true"][:fields])
    parsed = HandshakeLine.parse(line + "\r\n", host_versions=[1])
    assert parsed.address == "/tmp/p"
    assert parsed.multiplex is (True if fields == 7 else None)


def test_h03_short_cert_field_is_ignored() -> None:
    assert HandshakeLine.parse("1|1|unix|/p|grpc|abc", host_versions=[1]).server_cert_der is None


@pytest.mark.parametrize(
    ("line", "error", "words"),
    [
        ("", HandshakeError, "empty handshake line"),
        ("Hello from my plugin!", HandshakeError, "unrecognized plugin handshake line 'Hello"),
        ("2|1|unix|/p|grpc|", VersionMismatchError, "incompatible core protocol version 2"),
        ("1|7|unix|/p|grpc|", VersionMismatchError, "answered app protocol version 7"),
        ("1|x|unix|/p|grpc|", HandshakeError, "cannot parse the app protocol version 'x'"),
        ("1|1|pipe|/p|grpc|", HandshakeError, "unknown network 'pipe'"),
        ("1|1|unix|rel/p|grpc|", HandshakeError, "not an absolute path"),
        ("1|1|unix|/p", HandshakeError, "speaks protocol 'netrpc'"),
        ("1|1|unix|/p|netrpc|", HandshakeError, "speaks protocol 'netrpc'"),
        ("1|1|unix|/p|grpc|" + "!" * 60, HandshakeError, "not valid base64"),
        ("1|1|unix|/p|grpc||true|x", HandshakeError, "at most 7"),
        ("1|1|unix|/p\x00|grpc|", HandshakeError, "NUL byte"),
    ],
)
def test_bad_lines_name_what_was_got_and_expected(
    line: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as caught:
        HandshakeLine.parse(line, host_versions=[1, 2])
    assert words in str(caught.value)


def test_oversize_and_non_utf8_lines_are_rejected() -> None:
    with pytest.raises(HandshakeError, match="over the 65536-byte limit"):
        HandshakeLine.parse(b"1|1|unix|/" + b"p" * 70000, host_versions=[1])
    with pytest.raises(HandshakeError, match="not UTF-8"):
        HandshakeLine.parse(b"1|1|unix|/p\xff|grpc|", host_versions=[1])


@pytest.mark.parametrize(
    ("offered", "supported", "chosen"),
    [
        ([5, 6], [5, 6], 6),
        ([6, 5], [5, 6], 6),  # any order
        ([5], [5, 6], 5),
        ([1, 2, 3], [2, 4], 2),
        ([7], [5, 6], 5),  # no match: the lowest, so the host can report it
        ([], [5, 6], 5),
        (None, [3], 3),
    ],
)
def test_p05_negotiation(offered: list[int] | None, supported: list[int], chosen: int) -> None:
    assert negotiate_version(offered, supported) == chosen


def test_p05_version_list_skips_junk() -> None:
    assert parse_version_list("6, x,5,,-1") == ([6, 5, -1], ["x"])


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_fuzz_parse_raises_only_handshake_errors(raw: str | bytes) -> None:
    try:
        parsed = HandshakeLine.parse(raw, host_versions=[1, 2])
    except HandshakeError:
        return
    assert parsed.protocol == "grpc" and parsed.app_version in (1, 2)


@settings(max_examples=1000, deadline=None)
@given(
    st.integers(0, 99),
    st.sampled_from(["unix", "tcp"]),
    st.text(st.characters(blacklist_characters="|\n\r\x00"), min_size=1, max_size=50),
    st.one_of(st.none(), st.binary(min_size=40, max_size=900)),
)
def test_fuzz_format_parse_round_trip(
    version: int, network: str, tail: str, cert: bytes | None
) -> None:
    address = "/" + tail.strip() if network == "unix" else "127.0.0.1:" + str(len(tail))
    line = HandshakeLine(version, network, address.strip(), server_cert_der=cert)
    try:
        text = line.format()
    except ValueError:
        return
    parsed = HandshakeLine.parse(text, host_versions=[version])
    assert parsed.address == address.strip()
    assert parsed.server_cert_der == cert
