"""Many plugin servers behind one typed client: gRPC's own ``round_robin`` load balancing and
client-side health checking (``grpc.health.v1``), over TLS with your certificates and CA.

::

    async with rpcplugin.connect_balanced(
        ["10.0.0.5:7000", "10.0.0.6:7000", "10.0.0.7:7000"],
        tls=rpcplugin.TLSFiles(ca_file="pki/ca.pem", cert_file="pki/client.pem",
                               key_file="pki/client-key.pem", server_name="plugins.internal"),
    ) as conn:
        client = CalculatorClient(conn)      # any generated client takes it

Nothing here picks servers: one ``grpc.aio`` channel gets every address, the service config
``{"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName":
"plugin"}}`` and gRPC does the rest. Each server has its own connection; calls rotate over the
servers that are connected *and* whose ``Health/Watch`` says SERVING. A server that dies drops
out as soon as its connection breaks (only the calls in flight on it fail), one that drains
(server mode's SIGTERM: NOT_SERVING first) drops out before it stops, and either comes back
by itself when it serves again (gRPC reconnects with backoff).

The servers are plugin processes in server mode (``RPCPLUGIN_LISTEN``, docs/serving.md) or any
gRPC server with the health service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, final

import grpc

from .._wire.dial import CHANNEL_OPTIONS, TLSFiles, read_file
from .._wire.transport import tcp_port
from ..errors import ConfigError, ConnectionClosedError, SecurityError, TransportError
from ..lifecycle import AsyncClosable
from .connection import closed_error
from .opening import Opening

if TYPE_CHECKING:
    from ..ops.auth import MetadataPairs
    from ..ops.metrics import Metrics

__all__ = ["BalancedConnection", "balanced_target", "connect_balanced", "service_config"]


HEALTH_SERVICE: Final = "plugin"
"""The service name the health checks ask about (every rpcplugin server reports it)."""


def service_config(health_service: str | None = HEALTH_SERVICE, retry_attempts: int = 1) -> str:
    """The channel's service config (JSON): ``round_robin``, health checking of
    ``health_service`` (None: off) and, with ``retry_attempts`` > 1, a retry policy for calls
    that fail UNAVAILABLE (only for idempotent methods: a call that reached a dying server may
    have run there)."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if health_service is not None:
        config["healthCheckConfig"] = {"serviceName": health_service}
    if retry_attempts > 1:
        config["methodConfig"] = [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": min(retry_attempts, 5),
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config, separators=(",", ":"))


def balanced_target(addresses: Sequence[str]) -> tuple[str, str]:
    """The gRPC target for ``addresses`` and the host name TLS checks by default.

    ``host:port`` items with IP literal hosts (``[::1]:7000`` for IPv6, all of one family)
    become one ``ipv4:``/``ipv6:`` target; a single ``dns:///name:port`` is passed through (gRPC
    resolves it, and re-resolves it, to every address of the name).
    """
    if isinstance(addresses, str):
        addresses = [addresses]
    if not addresses:
        raise ConfigError("addresses", addresses, "at least one host:port")
    if len(addresses) == 1 and addresses[0].startswith("dns:"):
        host = addresses[0].split("///", 1)[-1].rpartition(":")[0] or addresses[0]
        return addresses[0], host
    families: set[int] = set()
    hosts: list[str] = []
    for address in addresses:
        if tcp_port(address) is None:
            raise ConfigError("address", address, "host:port with an IP address as host")
        host = address.rpartition(":")[0]
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise ConfigError(
                "address",
                address,
                "an IP address and port (for a DNS name with several addresses, give the one "
                "target dns:///name:port)",
            ) from None
        if ip.version == 6 and not host.startswith("["):
            raise ConfigError("address", address, "an IPv6 host goes in brackets: [::1]:7000")
        families.add(ip.version)
        hosts.append(str(ip))
    if len(families) > 1:
        raise ConfigError("addresses", list(addresses), "addresses of one family (IPv4 or IPv6)")
    scheme = "ipv4" if families == {4} else "ipv6"
    return f"{scheme}:{','.join(addresses)}", hosts[0] if len(set(hosts)) == 1 else ""


@final
class BalancedConnection(AsyncClosable):
    """One channel over several plugin servers. Generated clients take it
    (``CalculatorClient(conn)``); ``close()`` (or leaving ``async with``) closes the channel,
    never the servers."""

    def __init__(self, channel: grpc.aio.Channel, target: str, tls: str, name: str) -> None:
        self.channel: Final = channel
        self.target: Final = target
        """The gRPC target: ``ipv4:a:p,b:p,...`` or ``dns:///name:port``."""
        self.tls: Final = tls
        """``"off"`` or ``"grpc"``."""
        self.name: Final = name
        self._closing = False

    def state(self) -> grpc.ChannelConnectivity:
        """The channel's state: READY while at least one server is connected and healthy."""
        return self.channel.get_state()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until at least one server is connected and SERVING; TransportError after
        ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self.channel.channel_ready(), timeout)
        except TimeoutError:
            raise TransportError(
                f"no plugin server of {self.target} was reachable and SERVING within {timeout:g} s"
            ) from None

    def closed_error(self, in_flight: bool) -> ConnectionClosedError | None:
        """After ``close()``: a call made on it, or cut by it, raises this (generated clients
        ask); see :meth:`PluginConnection.closed_error`."""
        return closed_error(self.name, in_flight) if self._closing else None

    async def close(self) -> None:
        """Close the channel (in-flight calls end with ``ConnectionClosedDuringCall``)."""
        self._closing = True
        await self.channel.close(grace=None)

    def __repr__(self) -> str:
        return f"<BalancedConnection {self.name!r} {self.target} tls={self.tls}>"


def connect_balanced(
    addresses: Sequence[str],
    *,
    tls: TLSFiles | None = None,
    name: str | None = None,
    health_service: str | None = HEALTH_SERVICE,
    retry_attempts: int = 1,
    ready_timeout: float | None = 10.0,
    metadata: MetadataPairs | None = None,
    metrics: Metrics | None = None,
) -> Opening[BalancedConnection]:
    """One channel over the plugin servers at ``addresses`` (see :func:`balanced_target`),
    calls spread with ``round_robin`` over those that are up and report SERVING.

    ``tls``: verify every server against ``tls.ca_file`` and, with ``cert_file``/``key_file``,
    present that client certificate; ``tls.server_name`` is the name every server certificate
    carries (default: the addresses' common host). TLS runs in grpcio's own stack, so the CA
    must have a P-256/P-384 or RSA key (``rpcplugin-certs`` makes P-256). ``health_service``:
    the name client-side health checks watch (None turns them off). ``retry_attempts`` > 1
    retries calls that fail UNAVAILABLE on another server, for idempotent services only.
    ``ready_timeout``: wait this long for a first healthy server (None: do not wait).
    """
    target, common_host = balanced_target(addresses)
    label = name or target

    async def opener() -> BalancedConnection:
        from ..host import interceptors as client_interceptors

        options: list[tuple[str, Any]] = [
            *CHANNEL_OPTIONS,
            ("grpc.service_config", service_config(health_service, retry_attempts)),
            ("grpc.enable_retries", 1),
        ]
        chain = client_interceptors.build(label, metadata=metadata, metrics=metrics)
        if tls is None:
            channel = grpc.aio.insecure_channel(target, options=options, interceptors=chain or None)
            mode = "off"
        else:
            credentials, server_name = _credentials(tls, common_host)
            options.append(("grpc.ssl_target_name_override", server_name))
            channel = grpc.aio.secure_channel(
                target, credentials, options=options, interceptors=chain or None
            )
            mode = "grpc"
        connection = BalancedConnection(channel, target, mode, label)
        if ready_timeout is not None:
            try:
                await connection.wait_ready(ready_timeout)
            except BaseException:
                await connection.close()
                raise
        return connection

    return Opening(opener)


def _credentials(files: TLSFiles, common_host: str) -> tuple[grpc.ChannelCredentials, str]:
    from .._wire import mtls

    ca = read_file(files.ca_file, "CA certificate")
    cert = read_file(files.cert_file, "client certificate") if files.cert_file else None
    key = read_file(files.key_file, "client key") if files.key_file else None
    if (cert is None) != (key is None):
        raise ConfigError("TLSFiles", files, "give both cert_file and key_file, or neither")
    ca_cert = mtls.load_pem_certificate(ca, source=files.ca_file)
    mtls.warn_if_expiring(ca_cert, source=f"CA certificate {files.ca_file}")
    if not mtls.grpc_can_verify(ca_cert):
        raise SecurityError(
            f"grpcio's TLS cannot verify certificates signed with the CA's "
            f"{mtls.key_description(ca_cert)} key; balanced connections need a P-256, P-384 "
            "or RSA CA (rpcplugin-certs ca makes P-256)"
        )
    if cert is not None:
        own = mtls.load_pem_certificate(cert, source=str(files.cert_file))
        mtls.warn_if_expiring(own, source=f"client certificate {files.cert_file}")
    server_name = files.server_name or common_host
    if not server_name:
        raise ConfigError(
            "TLSFiles.server_name",
            None,
            "the name every server certificate carries (the addresses have different hosts)",
        )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return credentials, server_name
