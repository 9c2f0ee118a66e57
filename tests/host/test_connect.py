"""Direct connections (issue 3, item 5): ``rpcplugin.connect`` to a server we did not start, over
unix or tcp, plaintext or TLS from files (a CA, optionally our own certificate and key).

The server is an in-process ``grpc.aio`` server with health, a Shutdown that records its calls
and an Echo; certificates come from a throw-away CA made here.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hostkit import Clock, probe

import rpcplugin
from rpcplugin import ConfigError, SecurityError, TLSFiles, TransportError


@dataclass
class Issued:
    cert: Path
    key: Path


class CA:
    """A throw-away certificate authority writing PEM files into ``directory``."""

    def __init__(self, directory: Path, name: str = "Test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{name.replace(' ', '-')}.pem"
        self.path.write_bytes(self._pem(self.cert))

    @staticmethod
    def _pem(cert: object) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return cert.public_bytes(serialization.Encoding.PEM)  # type: ignore[attr-defined, no-any-return]

    def issue(self, name: str, dns: str, *, server: bool) -> Issued:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        issued = Issued(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        issued.cert.write_bytes(self._pem(cert))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued


@dataclass
class Server:
    tcp: str
    unix: str
    shutdowns: list[str]


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[tuple[CA, Issued, Issued]]:
    ca = CA(tmp_path)
    yield ca, ca.issue("server", "plugin.test", server=True), ca.issue("host", "host", server=False)


async def start_server(
    sock_dir: str, credentials: grpc.ServerCredentials | None
) -> tuple[grpc.aio.Server, Server]:
    shutdowns: list[str] = []

    async def health(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return b"\x08\x01"

    async def shutdown(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        shutdowns.append("Shutdown")
        return b""

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    def unary(fn: object) -> grpc.RpcMethodHandler[bytes, bytes]:
        return grpc.unary_unary_rpc_method_handler(fn)  # type: ignore[arg-type]

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": unary(health)}),
            grpc.method_handlers_generic_handler(
                "plugin.GRPCController", {"Shutdown": unary(shutdown)}
            ),
            grpc.method_handlers_generic_handler("misbehaving.Probe", {"Echo": unary(echo)}),
        ]
    )
    unix = os.path.join(sock_dir, "direct.sock")
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
        server.add_insecure_port(f"unix:{unix}")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.add_secure_port(f"unix:{unix}", credentials)
    await server.start()
    return server, Server(f"127.0.0.1:{port}", unix, shutdowns)


@pytest.fixture
async def plain_server(sock_dir: str) -> AsyncIterator[Server]:
    server, info = await start_server(sock_dir, None)
    yield info
    await server.stop(None)


@pytest.fixture
async def tls_server(sock_dir: str, pki: tuple[CA, Issued, Issued]) -> AsyncIterator[Server]:
    ca, server_cert, _ = pki
    credentials = grpc.ssl_server_credentials(
        [(server_cert.key.read_bytes(), server_cert.cert.read_bytes())],
        root_certificates=ca.path.read_bytes(),
        require_client_auth=True,
    )
    server, info = await start_server(sock_dir, credentials)
    yield info
    await server.stop(None)


@pytest.mark.parametrize("where", ["unix-uri", "unix-path", "tcp"])
async def test_connect_plaintext(plain_server: Server, where: str) -> None:
    address = {
        "unix-uri": f"unix:{plain_server.unix}",
        "unix-path": plain_server.unix,
        "tcp": plain_server.tcp,
    }[where]
    for _ in range(2):  # closing a direct connection leaves the server alone
        async with rpcplugin.connect(address) as conn:
            assert (conn.mode, conn.tls, conn.pid) == ("direct", "off", None)
            assert await probe(conn, "Echo", b"direct") == b"direct"
    assert plain_server.shutdowns == []


@pytest.mark.parametrize("backend", ["grpc", "openssl"])
@pytest.mark.parametrize("where", ["unix", "tcp"])
async def test_connect_mutual_tls_from_files(
    tls_server: Server, pki: tuple[CA, Issued, Issued], backend: str, where: str
) -> None:
    ca, _, host = pki
    files = TLSFiles(str(ca.path), str(host.cert), str(host.key), server_name="plugin.test")
    address = f"unix:{tls_server.unix}" if where == "unix" else tls_server.tcp
    async with rpcplugin.connect(address, tls=files, tls_backend=backend) as conn:  # type: ignore[arg-type]
        assert conn.tls == backend
        assert await probe(conn, "Echo", b"mtls") == b"mtls"
    assert tls_server.shutdowns == []


@pytest.mark.parametrize("backend", ["grpc", "openssl"])
async def test_connect_refuses_a_server_from_another_ca(
    tls_server: Server, pki: tuple[CA, Issued, Issued], tmp_path: Path, backend: str
) -> None:
    _, _, host = pki
    other = CA(tmp_path, "Other CA")
    files = TLSFiles(str(other.path), str(host.cert), str(host.key), server_name="plugin.test")
    with pytest.raises(SecurityError):
        await rpcplugin.connect(tls_server.tcp, tls=files, tls_backend=backend)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["grpc", "openssl"])
async def test_connect_checks_the_server_name(
    tls_server: Server, pki: tuple[CA, Issued, Issued], backend: str
) -> None:
    ca, _, host = pki
    files = TLSFiles(str(ca.path), str(host.cert), str(host.key), server_name="other.test")
    with pytest.raises(SecurityError):
        await rpcplugin.connect(tls_server.tcp, tls=files, tls_backend=backend)  # type: ignore[arg-type]


async def test_connect_without_our_certificate_is_refused(
    tls_server: Server, pki: tuple[CA, Issued, Issued]
) -> None:
    """TLS 1.3: the server rejects a missing client certificate after the client's handshake has
    finished; the OpenSSL path still says so, as SecurityError."""
    ca, _, _ = pki
    files = TLSFiles(str(ca.path), server_name="plugin.test")
    with pytest.raises(SecurityError, match="refused by the peer after the handshake"):
        await rpcplugin.connect(tls_server.tcp, tls=files, tls_backend="openssl")
    # grpcio only reports "Socket closed": a transport error is all it can say
    with pytest.raises(TransportError, match="Socket closed"):
        await rpcplugin.connect(tls_server.tcp, tls=files, tls_backend="grpc")


async def test_connect_with_a_certificate_from_another_ca_is_refused(
    tls_server: Server, pki: tuple[CA, Issued, Issued], tmp_path: Path
) -> None:
    ca, _, _ = pki
    stranger = CA(tmp_path, "Stranger CA").issue("stranger", "host", server=False)
    files = TLSFiles(str(ca.path), str(stranger.cert), str(stranger.key), server_name="plugin.test")
    with pytest.raises(SecurityError, match="refused by the peer after the handshake"):
        await rpcplugin.connect(tls_server.tcp, tls=files, tls_backend="openssl")


async def test_connect_bad_inputs(sock_dir: str, pki: tuple[CA, Issued, Issued]) -> None:
    ca, _, host = pki
    with pytest.raises(ConfigError, match="unix:/path/to/socket or host:port"):
        await rpcplugin.connect("no-port-here")
    with pytest.raises(ConfigError, match="a readable file"):
        await rpcplugin.connect("127.0.0.1:1", tls=TLSFiles(os.path.join(sock_dir, "none.pem")))
    with pytest.raises(ConfigError, match="both cert_file and key_file"):
        await rpcplugin.connect("127.0.0.1:1", tls=TLSFiles(str(ca.path), str(host.cert)))


async def test_connect_to_nothing_is_a_transport_error(sock_dir: str) -> None:
    with Clock() as clock, pytest.raises(TransportError):
        await rpcplugin.connect(f"unix:{os.path.join(sock_dir, 'nobody.sock')}")
    assert clock.seconds < 6.0
