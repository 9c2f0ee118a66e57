"""Host side: a ``grpc.aio`` channel to a plugin endpoint, plaintext or TLS.

TLS goes through grpcio's own stack when it can verify the peer's key, and through the OpenSSL
relay (:mod:`rpcplugin._wire.tls_relay`) otherwise: go-plugin plugins always present P-521
certificates, which PyPI grpcio cannot verify under TLS 1.3. Either way the peer is verified:
there is no code path that connects without checking it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from ..errors import ConfigError, SecurityError
from .tls_plan import TLSBackendChoice, choose_backend
from .transport import PORT_RANGE, Endpoint, private_dir, tcp_port

if TYPE_CHECKING:
    import ssl

    from .mtls import CertificateAndKey
    from .tls_relay import TLSOriginator

Interceptors = Sequence[grpc.aio.ClientInterceptor]

CHANNEL_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.use_local_subchannel_pool", 1),
)
"""No message size limits, like go-plugin's 2^31-1 (Terraform schemas exceed grpcio's 4 MiB).
Subchannels of our own: grpc otherwise shares them process-wide by address, and a plugin
launched on the port of one that died would get the dead one's connection, still in reconnect
backoff, and fail its first call with "Connection refused"."""


@dataclass
class Dialed:
    """A channel and whatever was opened to make it."""

    channel: grpc.aio.Channel
    tls: str  # "off", "grpc" or "openssl"
    relay: TLSOriginator | None = None
    relay_dir: str | None = None

    def tls_error(self) -> str | None:
        """The relay's last TLS failure in OpenSSL's words, if the OpenSSL path is in use."""
        return self.relay.last_error if self.relay is not None else None

    async def close(self) -> None:
        """Close the channel, then the relay and its private directory."""
        with contextlib.suppress(Exception):
            await self.channel.close(grace=None)
        if self.relay is not None:
            await self.relay.close()
        if self.relay_dir is not None:
            shutil.rmtree(self.relay_dir, ignore_errors=True)


def plain(endpoint: Endpoint, interceptors: Interceptors = ()) -> Dialed:
    """A plaintext channel."""
    channel = grpc.aio.insecure_channel(
        endpoint.grpc_target, options=CHANNEL_OPTIONS, interceptors=list(interceptors) or None
    )
    return Dialed(channel, "off")


async def automtls(
    endpoint: Endpoint,
    identity: CertificateAndKey,
    peer_cert_der: bytes,
    backend: TLSBackendChoice = "auto",
    interceptors: Interceptors = (),
    *,
    relay_parent: str | None = None,
) -> Dialed:
    """A mutually authenticated channel to a plugin that announced ``peer_cert_der``: present
    ``identity``, trust exactly the announced certificate, server name ``localhost``.

    ``relay_parent``: where the OpenSSL relay's private socket directory goes (default: the
    temp dir); a plugin dialling its host's brokered servers keeps it in its socket dir."""
    from . import mtls

    peer = mtls.load_der_certificate(peer_cert_der, source="the plugin's certificate (field 6)")
    peer_pem = mtls.pem_of(peer)
    if choose_backend(backend, peer, _refuse) == "grpc":
        credentials = grpc.ssl_channel_credentials(
            root_certificates=peer_pem,
            private_key=identity.key_pem,
            certificate_chain=identity.cert_pem,
        )
        channel = _secure(endpoint.grpc_target, credentials, mtls.SERVER_NAME, interceptors)
        return Dialed(channel, "grpc")
    context = mtls.client_ssl_context(identity, peer_pem)
    return await _relayed(endpoint, context, mtls.SERVER_NAME, interceptors, relay_parent)


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """TLS material for a direct connection, as files: our certificate and key (optional, for
    mutual TLS) and the CA that signed the server's certificate."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None


async def with_files(
    endpoint: Endpoint,
    files: TLSFiles,
    backend: TLSBackendChoice = "auto",
    interceptors: Interceptors = (),
) -> Dialed:
    """A TLS channel for a direct connection, verified against ``files.ca_file``; a warning is
    logged when the CA or our certificate expires within 30 days."""
    ca = read_file(files.ca_file, "CA certificate")
    cert = read_file(files.cert_file, "client certificate") if files.cert_file else None
    key = read_file(files.key_file, "client key") if files.key_file else None
    if (cert is None) != (key is None):
        raise ConfigError("TLSFiles", files, "give both cert_file and key_file, or neither")
    from . import mtls

    ca_cert = mtls.load_pem_certificate(ca, source=files.ca_file)
    mtls.warn_if_expiring(ca_cert, source=f"CA certificate {files.ca_file}")
    if cert is not None:
        own = mtls.load_pem_certificate(cert, source=str(files.cert_file))
        mtls.warn_if_expiring(own, source=f"client certificate {files.cert_file}")
    server_name = files.server_name or _host_of(endpoint)
    if choose_backend(backend, ca_cert, _refuse) == "grpc":
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )
        return Dialed(_secure(endpoint.grpc_target, credentials, server_name, interceptors), "grpc")
    import ssl

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca.decode("ascii"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    if files.cert_file and files.key_file:
        context.load_cert_chain(files.cert_file, files.key_file)
    return await _relayed(endpoint, context, server_name, interceptors)


def _refuse(key: str) -> SecurityError:
    return SecurityError(
        f"grpcio's TLS cannot verify the peer's {key} key; use tls_backend='auto' or "
        "'openssl' (Python's ssl), never an unverified connection"
    )


def _secure(
    target: str,
    credentials: grpc.ChannelCredentials,
    server_name: str,
    interceptors: Interceptors = (),
) -> grpc.aio.Channel:
    options = (*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(
        target, credentials, options=options, interceptors=list(interceptors) or None
    )


async def _relayed(
    endpoint: Endpoint,
    context: ssl.SSLContext,
    server_name: str,
    interceptors: Interceptors = (),
    parent: str | None = None,
) -> Dialed:
    from .tls_relay import TLSOriginator

    directory = private_dir(parent)
    relay = TLSOriginator(context, endpoint, server_name)
    try:
        local = await relay.listen(os.path.join(directory, "relay.sock"))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    channel = grpc.aio.insecure_channel(
        local.grpc_target, options=CHANNEL_OPTIONS, interceptors=list(interceptors) or None
    )
    return Dialed(channel, "openssl", relay, directory)


def read_file(path: str | None, what: str) -> bytes:
    """The bytes of a TLS file, or a :class:`ConfigError` naming ``what`` and the path."""
    assert path is not None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(what, path, f"a readable file ({exc.strerror})") from None


def _host_of(endpoint: Endpoint) -> str:
    if endpoint.network == "unix":
        return "localhost"
    return endpoint.address.rpartition(":")[0].strip("[]")


def parse_address(address: str) -> Endpoint:
    """``unix:/path``, ``unix:///path``, ``/path``, ``host:port`` or ``tcp://host:port``."""
    for prefix in ("unix://", "unix:", ""):
        if address.startswith(prefix + "/"):
            return Endpoint("unix", address[len(prefix) :])
    if address.startswith("tcp://"):
        address = address[len("tcp://") :]
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError("address", address, "unix:/path/to/socket or host:port")
    if tcp_port(address) is None:
        raise ConfigError("address", address, f"port {port} is outside {PORT_RANGE}")
    return Endpoint("tcp", address)
