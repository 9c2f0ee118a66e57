"""Connections to plugins this host did not start: ``reattach()`` (go-plugin's reattach JSON,
H08) and ``connect()`` (a plugin server dialled directly, plaintext or TLS)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._wire import dial
from .._wire.dial import TLSFiles
from .._wire.tls_plan import TLSBackendChoice
from ..errors import HandshakeError, PluginError, TransportError
from ..services.broker import HostBroker
from . import interceptors as client_interceptors
from .connection import PluginConnection
from .opening import Opening
from .reattach_config import ReattachConfig, parse_reattach
from .sinks import StdioSink
from .sockets import pid_alive, probe

if TYPE_CHECKING:
    from ..ops.auth import MetadataPairs
    from ..ops.metrics import Metrics
    from .retry import RetryPolicy

NO_BROKER_WITH_FILES = (
    "the broker is not available on a connection with user-provided certificates: brokered "
    "listeners are local (unix sockets, loopback TCP) and use AutoMTLS material"
)


def reattach(
    config: ReattachConfig | str | Mapping[str, Any],
    *,
    name: str | None = None,
    versions: Sequence[int] | None = None,
    health_check: bool = True,
    stdout: StdioSink | None = None,
    stderr: StdioSink | None = None,
    retry: RetryPolicy | None = None,
    metadata: MetadataPairs | None = None,
    metrics: Metrics | None = None,
) -> Opening[PluginConnection]:
    """Attach to a plugin started elsewhere, from go-plugin's reattach JSON (H08).

    The JSON shape and what closing does: docs/protocol.md §8.4.

    ``config`` is a :class:`ReattachConfig`, the JSON text, or its parsed object (a name→config
    map such as ``TF_REATTACH_PROVIDERS``, or one config). Reattached connections are plaintext
    (go-plugin exchanges no certificates when reattaching). ``close()`` asks the plugin to shut
    down and SIGKILLs it after 2 s, unless the config says ``Test``, in which case it is left
    alone. ``versions``, when given, must include the config's ``ProtocolVersion``.

    ``retry`` (default: the ``RPCPLUGIN_CONNECT_*`` settings, one attempt) retries reaching the
    plugin; ``metadata`` and ``metrics`` are as for :func:`connect`.
    """

    async def opener() -> PluginConnection:
        from . import retry as retries

        parsed = config if isinstance(config, ReattachConfig) else parse_reattach(config, name)
        version = parsed.protocol_version or (max(versions) if versions else 1)
        if versions is not None and version not in versions:
            raise HandshakeError(
                f"reattach config has ProtocolVersion {version}, not one of {list(versions)}"
            )
        plugin_name = name or f"pid-{parsed.pid}"
        chain = client_interceptors.build(plugin_name, metadata=metadata, metrics=metrics)

        async def attempt(timeout: float) -> PluginConnection:
            if parsed.pid is not None and not pid_alive(parsed.pid):
                raise PluginError(
                    f"reattachment process not found: no process with pid {parsed.pid}"
                )
            await probe(parsed.endpoint, timeout)
            connection = PluginConnection(
                name=plugin_name,
                version=version,
                endpoint=parsed.endpoint,
                dialed=dial.plain(parsed.endpoint, chain),
                pid=parsed.pid,
                mode="reattached",
                test=parsed.test,
            )
            try:
                connection.start_streams(stdout, stderr)
                if health_check:
                    await connection.ping(timeout)
            except BaseException:
                await connection.detach()  # a failed attach must not stop somebody's plugin
                raise
            return connection

        policy = retry if retry is not None else retries.RetryPolicy.from_env()
        return await retries.run(policy, attempt, what=f"reattach to {parsed.endpoint}")

    return Opening(opener)


def connect(
    address: str,
    *,
    tls: TLSFiles | None = None,
    tls_backend: TLSBackendChoice = "auto",
    version: int = 1,
    name: str | None = None,
    health_check: bool = True,
    retry: RetryPolicy | None = None,
    metadata: MetadataPairs | None = None,
    metrics: Metrics | None = None,
) -> Opening[PluginConnection]:
    """Dial a plugin server directly: ``unix:/path`` or ``host:port``, plaintext or TLS.

    With ``tls``, the server is verified against ``tls.ca_file`` and, when ``cert_file`` and
    ``key_file`` are given, we authenticate with them (mutual TLS). Closing only closes the
    channel: a server we did not start is not ours to stop.

    ``retry`` (:class:`rpcplugin.host.retry.RetryPolicy`; default: the ``RPCPLUGIN_CONNECT_*``
    settings, one attempt) retries until the server is reachable and healthy. ``metadata`` is
    sent with every call (e.g. :func:`rpcplugin.ops.auth.bearer`); ``metrics``
    (:class:`rpcplugin.ops.metrics.Metrics`) records every call.
    """

    async def opener() -> PluginConnection:
        from . import retry as retries

        endpoint = dial.parse_address(address)
        policy = retry if retry is not None else retries.RetryPolicy.from_env()
        chain = client_interceptors.build(name or address, metadata=metadata, metrics=metrics)

        async def attempt(timeout: float) -> PluginConnection:
            if policy.attempts > 1:
                await retries.reachable(endpoint.network, endpoint.address, timeout)
            dialed = (
                await dial.with_files(endpoint, tls, tls_backend, chain)
                if tls is not None
                else dial.plain(endpoint, chain)
            )
            connection = PluginConnection(
                name=name or address,
                version=version,
                endpoint=endpoint,
                dialed=dialed,
                mode="direct",
                broker=None if tls is None else HostBroker(unavailable=NO_BROKER_WITH_FILES),
            )
            try:
                if health_check:
                    await connection.ping(timeout)
            except BaseException as exc:
                await connection.close()
                if isinstance(exc, TransportError) and tls is not None and policy.attempts > 1:
                    refusal = await retries.tls_refusal(endpoint, tls, timeout)
                    if refusal is not None:
                        raise refusal from exc
                raise
            return connection

        return await retries.run(policy, attempt, what=f"connect to {address}")

    return Opening(opener)
