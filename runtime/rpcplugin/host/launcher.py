"""``launch()``: start a plugin executable, read its handshake, connect and health-check it
(H01–H07, H09). Its settings travel as one frozen :class:`LaunchOptions`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict, Unpack

from .._wire import dial
from .._wire.tls_plan import TLSBackendChoice
from .._wire.transport import PORT_RANGE, Endpoint
from ..config import PluginSettings
from ..errors import ConfigError, HandshakeError, PluginExitedError, SecurityError
from ..handshake import MAX_LINE_BYTES, Handshake, HandshakeLine
from ..plugin_name import from_argv as plugin_name_from_argv
from . import cookie_refusal
from . import interceptors as client_interceptors
from .connection import PluginConnection
from .opening import Opening
from .process import PluginProcess
from .sinks import StdioSink, stderr_logger
from .sockets import private_socket_dir, remove_stale_socket
from .watchdog import WATCHDOG, mark_owner

if TYPE_CHECKING:
    from .._wire.mtls import CertificateAndKey
    from ..ops.auth import MetadataPairs
    from ..ops.metrics import Metrics
    from ..services.broker import HostBroker


@dataclasses.dataclass(frozen=True, kw_only=True)
class LaunchOptions:
    """Everything :func:`launch` needs besides the command; the defaults are go-plugin's."""

    handshake: Handshake
    """The magic cookie the plugin checks."""
    versions: tuple[int, ...]
    """The app protocol versions offered (``PLUGIN_PROTOCOL_VERSIONS``)."""
    name: str | None = None
    """The plugin's name in logs and errors (default: the executable's file name)."""
    env: Mapping[str, str] | None = None
    """Added to the child's environment, before go-plugin's own variables."""
    inherit_env: bool = True
    """Whether the child starts from this process's environment."""
    cwd: str | None = None
    """The child's working directory."""
    auto_mtls: bool = True
    """Mutual TLS with a fresh certificate per launch (``PLUGIN_CLIENT_CERT``)."""
    tls_backend: TLSBackendChoice = "auto"
    """``auto`` (grpcio's TLS where it can verify the plugin's key, else the OpenSSL relay),
    ``grpc`` or ``openssl``."""
    start_timeout: float = 60.0
    """Seconds to wait for the handshake line."""
    min_port: int = 10000
    """``PLUGIN_MIN_PORT``, for plugins that listen on TCP."""
    max_port: int = 25000
    """``PLUGIN_MAX_PORT``."""
    unix_socket_dir: str | None = None
    """Where the plugin's private socket directory is made (default: the temp dir)."""
    unix_socket_group: str | None = None
    """A group that may use the plugin's sockets (``PLUGIN_UNIX_SOCKET_GROUP``)."""
    checksum: str | None = None
    """The executable's SHA-256 (hex), checked before it runs (SecureConfig)."""
    stdout: StdioSink | None = None
    """Where the plugin's ``GRPCStdio`` stdout goes (default: this process's stdout)."""
    stderr: StdioSink | None = None
    """Where its ``GRPCStdio`` stderr goes (default: this process's stderr)."""
    logger: logging.Logger | None = None
    """The logger of the plugin's stderr lines (default ``rpcplugin.plugin.<name>``)."""
    health_check: bool = True
    """Whether to check ``grpc.health.v1`` before returning the connection."""
    metadata: MetadataPairs | None = None
    """Sent with every call (e.g. :func:`rpcplugin.ops.auth.bearer`)."""
    metrics: Metrics | None = None
    """Records every call and the start-up time (docs/operations.md)."""

    def __post_init__(self) -> None:
        """The checks :func:`launch` and ``launch_pool`` both need before anything runs: the
        versions, and ``min_port``/``max_port`` as the plugin will check them."""
        if not self.versions:
            raise ConfigError("versions", self.versions, "at least one app protocol version")
        for name in ("min_port", "max_port"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= 65535:
                raise ConfigError(name, value, f"a TCP port, {PORT_RANGE}")
        if self.min_port > self.max_port:
            raise ConfigError("min_port", self.min_port, f"at most max_port={self.max_port}")


class LaunchSettings(TypedDict, total=False):
    """The optional keyword arguments of :func:`launch`: the fields of :class:`LaunchOptions`
    besides ``handshake`` and ``versions``."""

    name: str | None
    env: Mapping[str, str] | None
    inherit_env: bool
    cwd: str | None
    auto_mtls: bool
    tls_backend: TLSBackendChoice
    start_timeout: float
    min_port: int
    max_port: int
    unix_socket_dir: str | None
    unix_socket_group: str | None
    checksum: str | None
    stdout: StdioSink | None
    stderr: StdioSink | None
    logger: logging.Logger | None
    health_check: bool
    metadata: MetadataPairs | None
    metrics: Metrics | None


def launch(
    cmd: Sequence[str] | str,
    *,
    handshake: Handshake,
    versions: Sequence[int],
    **settings: Unpack[LaunchSettings],
) -> Opening[PluginConnection]:
    """Launch a plugin executable and connect to it (H01–H07, H09).

    ``cmd`` is the argv (a string is one program with no arguments). The child gets the host's
    environment (unless ``inherit_env=False``), then ``env``, then go-plugin's variables: the
    magic cookie, ``PLUGIN_PROTOCOL_VERSIONS`` (``versions``), ``PLUGIN_MIN_PORT`` /
    ``PLUGIN_MAX_PORT``, the socket dir/group when given and, with ``auto_mtls``, a fresh
    certificate in ``PLUGIN_CLIENT_CERT``. The first stdout line is validated as go-plugin does;
    the plugin's stderr lines become :mod:`logging` records on ``logger`` (default
    ``rpcplugin.plugin.<name>``), and its ``GRPCStdio`` output goes to ``stdout``/``stderr``
    (default: this process's own). ``checksum`` is the executable's SHA-256 (hex), checked
    before it runs. ``metadata`` is sent with every call (e.g. :func:`rpcplugin.ops.auth.bearer`);
    ``metrics`` records every call and the start-up time (docs/operations.md). A plugin that
    fails is never relaunched behind the caller's back. Every keyword is a field of
    :class:`LaunchOptions`, which documents each.
    """
    argv = [cmd] if isinstance(cmd, str) else list(cmd)
    if not argv:
        raise ConfigError("cmd", cmd, "a non-empty argv")
    options = LaunchOptions(handshake=handshake, versions=tuple(versions), **settings)
    return Opening(lambda: start_plugin(argv, options))


async def start_plugin(argv: Sequence[str], options: LaunchOptions) -> PluginConnection:
    """Start ``argv`` as a plugin with ``options`` and return it connected and health-checked;
    whatever fails, nothing is left running or on disk."""
    started = time.monotonic()
    name = options.name or plugin_name_from_argv(argv)
    argv = list(argv)
    if options.checksum is not None:
        from .secure_config import verify_checksum

        path = (options.env or os.environ).get("PATH")
        argv[0] = verify_checksum(argv[0], options.checksum, path=path)
    identity = None
    if options.auto_mtls:
        from .._wire import mtls

        identity = mtls.generate_certificate()
    # a directory for this plugin's sockets alone (inside unix_socket_dir when given), removed
    # after the reap: a plugin that dies or is killed cannot leave a socket file behind, even
    # when its handshake was refused and we never learnt its path (go-plugin >= 1.5 does this)
    socket_dir = private_socket_dir(options.unix_socket_dir, options.unix_socket_group)
    logger = options.logger or logging.getLogger(f"rpcplugin.plugin.{name}")
    try:
        process = await PluginProcess.start(
            argv,
            env=_child_environment(options, identity, socket_dir),
            cwd=options.cwd,
            on_stderr_line=stderr_logger(logger, name),
        )
    except BaseException as exc:
        shutil.rmtree(socket_dir, ignore_errors=True)  # (its host.pid marker in it)
        WATCHDOG.remove_path(socket_dir)
        if not isinstance(exc, OSError):
            raise  # cancelled: PluginProcess.start has undone itself
        raise ConfigError(
            "plugin command", argv[0], f"an executable that can run ({exc})"
        ) from None
    process.private_dirs.append(socket_dir)
    endpoint: Endpoint | None = None
    try:
        raw, line = await _read_handshake(process, name, options)
        endpoint = Endpoint(line.network, line.address)  # known now: removed if we refuse it
        if endpoint.network == "unix":
            WATCHDOG.add_path(endpoint.address)  # outside socket_dir with go-plugin < 1.5
        _check_handshake(raw, line, name, identity)
        chain = client_interceptors.build(name, metadata=options.metadata, metrics=options.metrics)
        if identity is not None:
            assert line.server_cert_der is not None
            dialed = await dial.automtls(
                endpoint,
                identity,
                line.server_cert_der,
                options.tls_backend,
                chain,
            )
            if dialed.relay_dir is not None:  # the OpenSSL relay's, in the temp dir
                mark_owner(dialed.relay_dir)
                WATCHDOG.add_path(dialed.relay_dir)
        else:
            dialed = dial.plain(endpoint, chain)
        connection = PluginConnection(
            name=name,
            version=line.app_version,
            endpoint=endpoint,
            dialed=dialed,
            process=process,
            started=started,
            broker=_host_broker(identity, line.server_cert_der, options, socket_dir),
        )
        connection.handshake_line = line
    except BaseException:
        await process.aclose()
        remove_stale_socket(endpoint)
        raise
    try:
        connection.start_streams(options.stdout, options.stderr)
        if options.health_check:
            await _ping_or_exit(connection, process)
    except BaseException:
        await connection.abort()
        raise
    if options.metrics is not None:
        from ..ops.metrics import report_plugin_started

        report_plugin_started(options.metrics, name, time.monotonic() - started, side="client")
    return connection


def _child_environment(
    options: LaunchOptions, identity: CertificateAndKey | None, socket_dir: str
) -> dict[str, str]:
    env: dict[str, str] = dict(os.environ) if options.inherit_env else {}
    env.update(options.env or {})
    env[options.handshake.cookie_key] = options.handshake.cookie_value
    env["PLUGIN_MIN_PORT"] = str(options.min_port)
    env["PLUGIN_MAX_PORT"] = str(options.max_port)
    env["PLUGIN_PROTOCOL_VERSIONS"] = ",".join(str(v) for v in options.versions)
    for key in (
        "PLUGIN_CLIENT_CERT",
        "PLUGIN_MULTIPLEX_GRPC",
        "PLUGIN_UNIX_SOCKET_DIR",
        "PLUGIN_UNIX_SOCKET_GROUP",
    ):
        env.pop(key, None)  # never leak our own host's settings into the child
    if identity is not None:
        env["PLUGIN_CLIENT_CERT"] = identity.cert_pem.decode("ascii")
    env["PLUGIN_UNIX_SOCKET_DIR"] = socket_dir
    if options.unix_socket_group is not None:
        env["PLUGIN_UNIX_SOCKET_GROUP"] = options.unix_socket_group
    return env


async def _read_handshake(
    process: PluginProcess, name: str, options: LaunchOptions
) -> tuple[bytes, HandshakeLine]:
    """The plugin's first stdout line, parsed and validated as go-plugin validates it."""
    try:
        raw = await process.first_line(options.start_timeout)
    except PluginExitedError as exc:
        raise cookie_refusal.explain(exc, name, options.handshake.cookie_key) from None
    try:
        if len(raw) >= MAX_LINE_BYTES:
            # the line splitter hands over 64 KiB pieces of longer lines: never parse a piece
            raise HandshakeError(
                f"the plugin's handshake line is {MAX_LINE_BYTES} bytes or longer; go-plugin "
                "reads it with a 64 KiB line scanner and rejects it",
                raw[:200].decode("utf-8", "replace"),
            )
        line = HandshakeLine.parse(raw, host_versions=options.versions)
    except HandshakeError as exc:
        raise type(exc)(_with_tail(str(exc), process), exc.line) from None
    return raw, line


def _check_handshake(
    raw: bytes, line: HandshakeLine, name: str, identity: CertificateAndKey | None
) -> None:
    """Refuse a handshake that does not match what this host asked for."""
    if line.server_cert_der is not None and identity is None:
        raise SecurityError(
            f"plugin {name!r} announced a TLS certificate, but this host did not ask for "
            "AutoMTLS (auto_mtls=False); refusing a connection it cannot verify"
        )
    if line.server_cert_der is None and identity is not None:
        raise SecurityError(
            f"plugin {name!r} announced no TLS certificate although AutoMTLS was requested "
            "(PLUGIN_CLIENT_CERT was set); refusing to fall back to plaintext"
        )
    if line.multiplex:
        raise HandshakeError(
            f"plugin {name!r} wants a multiplexed broker, which this host did not ask for",
            raw.decode("utf-8", "replace"),
        )


async def _ping_or_exit(connection: PluginConnection, process: PluginProcess) -> None:
    """Health-check a new plugin, reporting its exit (with stderr) if it dies meanwhile."""
    ping = asyncio.ensure_future(connection.ping())
    waiters: set[asyncio.Future[None] | asyncio.Future[int]] = {ping, process.exited}
    done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    if ping in done:
        ping.result()
        return
    ping.cancel()
    with contextlib.suppress(BaseException):
        await ping
    await process.drain_stderr(0.5)
    raise process.exit_error("right after its handshake")


def _host_broker(
    identity: CertificateAndKey | None,
    peer_der: bytes | None,
    options: LaunchOptions,
    socket_dir: str,
) -> HostBroker:
    """A launched plugin's broker: its brokered listeners go in the plugin's private socket dir
    (shared with the socket group like the plugin's own), with the main connection's AutoMTLS
    material."""
    from ..services.broker import BrokerTLS, HostBroker

    tls = None
    if identity is not None and peer_der is not None:
        tls = BrokerTLS(identity, peer_der, options.tls_backend)
    settings = PluginSettings(
        unix_socket_dir=socket_dir, unix_socket_group=options.unix_socket_group
    )
    return HostBroker(tls=tls, settings=settings)


def _with_tail(message: str, process: PluginProcess) -> str:
    tail = process.stderr_tail()
    return message + (f"; last stderr lines:\n{tail}" if tail else "")
