"""Per-client credentials by certificate: ``auth.CertificateFingerprints`` admits a client by
the SHA-256 of the certificate it presented over mutual TLS, on both TLS backends, and checks
see the call's ``Peer`` (``AuthRequest.peer``). Served in process (``rpcplugin.testing``); the
peer itself is proven against real processes in test_peer_processes.py."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from rpcplugin import testing
from rpcplugin.errors import ConfigError
from rpcplugin.ops import auth

SERVICE = "callcontext.Who"


async def who(request: bytes, context: Any) -> bytes:
    return (auth.current_client() or "-").encode()


async def who_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield (auth.current_client() or "-").encode()


VERSIONS = {
    1: [
        grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Who": grpc.unary_unary_rpc_method_handler(who),
                "WhoStream": grpc.unary_stream_rpc_method_handler(who_stream),
            },
        )
    ]
}


@pytest.mark.parametrize("backend", ["grpc", "openssl"])
async def test_a_client_is_admitted_by_its_certificate(backend: Any) -> None:
    allowed: dict[str, str] = {}
    seen: list[auth.AuthRequest] = []

    def check(request: auth.AuthRequest) -> str | None:
        seen.append(request)
        return auth.CertificateFingerprints(allowed)(request) if allowed else None

    async with testing.start(VERSIONS, tls=backend, auth=check) as conn:
        call = conn.channel.unary_unary(f"/{SERVICE}/Who")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert conn.host_certificate is not None
        digest = hashlib.sha256(conn.host_certificate).hexdigest()
        # any spelling of the fingerprint: colons, upper case
        allowed["ci"] = ":".join(digest[i : i + 2] for i in range(0, 64, 2)).upper()
        assert await call(b"") == b"ci"
        stream = conn.channel.unary_stream(f"/{SERVICE}/WhoStream")
        assert [m async for m in stream(b"")] == [b"ci"]
    peer = seen[-1].peer
    assert peer is not None and peer.fingerprint == digest
    assert peer.tls_backend == {"grpc": "grpc", "openssl": "openssl-relay"}[backend]


async def test_another_certificate_or_plaintext_is_refused() -> None:
    stranger = auth.CertificateFingerprints({"ci": "ab" * 32})
    for tls in (True, False):
        async with testing.start(VERSIONS, tls=tls, auth=stranger) as conn:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await conn.channel.unary_unary(f"/{SERVICE}/Who")(b"")
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert caught.value.details() == auth.CertificateFingerprints.refusal


@pytest.mark.parametrize(
    "fingerprints", [{}, {"ci": "not hex"}, {"ci": "ab" * 31}, {"": "ab" * 32}]
)
def test_bad_fingerprints_are_refused(fingerprints: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        auth.CertificateFingerprints(fingerprints)
