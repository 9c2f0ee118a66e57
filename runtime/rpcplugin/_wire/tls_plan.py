"""The one decision between grpcio's TLS and the OpenSSL relay, for every connection we make or
serve: a plugin's listener, a host's dial, and brokered servers on both sides.

PyPI grpcio's TLS (BoringSSL) cannot verify go-plugin's P-521 certificates under TLS 1.3, so a
peer whose key grpcio cannot verify goes through the relay (Python's :mod:`ssl`). Forcing
``grpc`` on such a key is refused: there is never an unverified fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from ..record import Record

if TYPE_CHECKING:
    from cryptography import x509

    from .mtls import CertificateAndKey

Backend = Literal["grpc", "openssl"]
"""Who does TLS: grpcio itself, or the OpenSSL relay in front of a plaintext gRPC socket."""
TLSBackendChoice = Literal["auto", "openssl", "grpc"]
"""What a setting or argument asks for; ``auto`` picks per peer."""


def choose_backend(
    choice: TLSBackendChoice, peer: x509.Certificate, refuse: Callable[[str], Exception]
) -> Backend:
    """The backend for a peer presenting ``peer``: grpcio's where it can verify the key (unless
    ``openssl`` is asked for), else the relay. ``refuse(key_description)`` builds the caller's
    own error when ``grpc`` is forced on a key grpcio cannot verify."""
    from . import mtls

    return choose_backend_for_key(choice, mtls.key_description(peer), refuse)


def choose_backend_for_key(
    choice: TLSBackendChoice, key: str, refuse: Callable[[str], Exception]
) -> Backend:
    """:func:`choose_backend` for a peer key already described (``"EC secp521r1"``, ``"RSA
    2048"``, as :func:`rpcplugin._wire.mtls.key_description` words it)."""
    from . import mtls

    verifiable = mtls.grpc_can_verify_key(key)
    if choice == "grpc" and not verifiable:
        raise refuse(key)
    return "grpc" if choice == "grpc" or (choice == "auto" and verifiable) else "openssl"


class ServerTLS(Record):
    """How one of our servers does mutual TLS: the backend, our identity, and the peer
    certificate(s) it trusts, and nothing else."""

    __slots__ = ("backend", "identity", "peer_pem")
    backend: Backend
    identity: CertificateAndKey
    peer_pem: bytes

    def __init__(self, backend: Backend, identity: CertificateAndKey, peer_pem: bytes) -> None:
        super().__init__(backend=backend, identity=identity, peer_pem=peer_pem)
