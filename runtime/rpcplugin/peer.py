"""Who is on the other end of a call: its address, the transport's security and its verified
certificate, whichever TLS backend carried the call.

grpcio's own TLS reports the peer in the call's ``auth_context()``. The OpenSSL relay
(:mod:`rpcplugin._wire.tls_relay`) terminates TLS itself and hands gRPC plaintext over a private
unix socket, so there gRPC alone would say ``unix:`` and ``insecure``. To keep the truth, the
relay connects each relayed connection from a client socket bound to a name of its own (gRPC
reports that name as the call's ``peer()``) and files the verified peer under that name in
:data:`RELAYED` for as long as the connection lives. :func:`peer_of` reads both.

A handler calls ``rpcplugin.current_peer()``; interceptors and raw handlers call
:func:`peer_of` with their ``ServicerContext``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "RELAYED",
    "Peer",
    "RelayedPeers",
    "Security",
    "TLSBackendName",
    "address_of",
    "peer_of",
]

Security = Literal["tls", "insecure"]
"""What protected the call on the wire: mutual TLS with a verified peer, or nothing."""
TLSBackendName = Literal["grpc", "openssl-relay"]
"""Who did the TLS: grpcio itself, or the OpenSSL relay in front of gRPC."""


@dataclass(frozen=True)
class Peer:
    """The other end of a call, as the transport verified it.

    ``address`` is where the connection came from, in gRPC's spelling (``ipv4:127.0.0.1:5301``,
    ``unix:`` for an unnamed unix socket client). ``certificate_der`` is the certificate the
    peer presented and the TLS handshake verified (None without TLS, or when the peer sent
    none). ``tls_backend`` is None without TLS.
    """

    address: str
    security: Security
    tls_backend: TLSBackendName | None = None
    certificate_der: bytes | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str | None:
        """The SHA-256 of the peer certificate's DER, lower-case hex, or None without one."""
        if self.certificate_der is None:
            return None
        return hashlib.sha256(self.certificate_der).hexdigest()

    @cached_property
    def certificate(self) -> x509.Certificate | None:
        """The peer certificate as a ``cryptography`` object (loaded on first use), or None."""
        if self.certificate_der is None:
            return None
        from cryptography import x509

        return x509.load_der_x509_certificate(self.certificate_der)


class RelayedPeers:
    """The verified peers of the connections the OpenSSL relay is carrying, by the name gRPC
    reports as the relayed connection's ``peer()``."""

    def __init__(self) -> None:
        self._peers: dict[str, Peer] = {}

    def add(self, grpc_peer: str, peer: Peer) -> None:
        """File ``peer`` under ``grpc_peer`` (``unix:<bound path>``)."""
        self._peers[grpc_peer] = peer

    def discard(self, grpc_peer: str) -> None:
        """Forget a connection (it closed)."""
        self._peers.pop(grpc_peer, None)

    def get(self, grpc_peer: str) -> Peer | None:
        """The peer of a relayed connection, or None if ``grpc_peer`` is not one."""
        return self._peers.get(grpc_peer)

    def __len__(self) -> int:
        return len(self._peers)


RELAYED = RelayedPeers()
"""The one table of this process's relayed connections."""


def peer_of(context: Any) -> Peer:
    """The :class:`Peer` of the call ``context`` (a ``grpc.aio.ServicerContext``) serves."""
    address = str(context.peer() or "")
    relayed = RELAYED.get(address)
    if relayed is not None:
        return relayed
    auth = context.auth_context() or {}
    kind = b"".join(auth.get("transport_security_type", ())).decode("ascii", "replace")
    if kind != "ssl":
        return Peer(address, "insecure")
    pem = auth.get("x509_pem_cert")
    der = None
    if pem:
        import ssl

        der = ssl.PEM_cert_to_DER_cert(pem[0].decode("ascii"))
    return Peer(address, "tls", "grpc", der)


def address_of(peername: Any) -> str:
    """A socket's peer name (``getpeername()``) in gRPC's spelling: ``ipv4:h:p``,
    ``ipv6:[h]:p`` or ``unix:path``."""
    if peername is None or isinstance(peername, (str, bytes)):
        name = peername.decode("utf-8", "replace") if isinstance(peername, bytes) else peername
        return f"unix:{name or ''}"
    host, port = peername[0], peername[1]
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"
