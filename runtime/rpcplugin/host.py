"""The host side: launch plugins, reattach to running ones, or dial plugin servers directly.

::

    async with rpcplugin.launch(["./kv-plugin"], handshake=KV_HANDSHAKE, versions=[1, 2]) as conn:
        print(conn.version, conn.endpoint, conn.tls)
        client = KVClient(conn)          # any generated client takes the connection
        await client.get(GetRequest(key="x"))

``async with`` yields a connected, health-checked plugin; leaving it shuts the plugin down in a
bounded time whatever it does (``GRPCController/Shutdown``, close, wait 2 s, SIGKILL, reap).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import socket
import stat
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import grpc

from . import client_interceptors, controller, cookie_refusal, dial, hclog, health
from .broker import HostBroker
from .dial import TLSBackendChoice, TLSFiles
from .errors import (
    ConfigError,
    HandshakeError,
    PluginError,
    PluginExitedError,
    SecurityError,
    TransportError,
)
from .handshake import MAX_LINE_BYTES, Handshake, HandshakeLine
from .plugin_name import from_argv as plugin_name_from_argv
from .plugin_process import PluginProcess
from .protos import grpc_stdio_pb2
from .reattach_config import ReattachConfig, parse_reattach
from .transport import Endpoint

if TYPE_CHECKING:
    from .auth import MetadataPairs
    from .metrics import Metrics
    from .mtls import CertificateAndKey
    from .retry import RetryPolicy

log = logging.getLogger("rpcplugin.host")

StdioSink = Callable[[bytes], object] | IO[bytes] | IO[str]
"""Where ``GRPCStdio`` output goes: a callable taking bytes, or a binary or text file."""

_GRPC_TLS_FAILURE = re.compile(
    r"(tls|ssl) handshake failed|SSL_ERROR|CERTIFICATE_VERIFY_FAILED|TSI_PROTOCOL_FAILURE"
    r"|verification check failed",
    re.I,
)
"""How grpcio's own TLS reports a failed handshake in an UNAVAILABLE status's details."""

EXIT_NOTICE_WAIT = 0.25
"""Seconds a failed call waits for a launched plugin's exit before calling it a transport error."""
KILL_WAIT = 2.0
"""Seconds a plugin gets to exit after Shutdown before it is SIGKILLed (go-plugin's value)."""
SHUTDOWN_TIMEOUT = 1.0
"""Deadline of the Shutdown call itself: a wedged plugin cannot hold close() up longer."""


EXIT_NOTICE_WAIT = 0.25
"""How long a failed call waits for the plugin's exit notice before it is reported as is."""
_CONNECTION_LOST_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL}
)


class PluginExitedDuringCall(PluginExitedError, grpc.aio.AioRpcError):
    """A call failed because the plugin process exited: the exit status and stderr tail of a
    :class:`PluginExitedError`, and the ``code()``/``details()`` of the ``AioRpcError`` it
    replaces, so ``except grpc.aio.AioRpcError`` handlers keep catching it."""

    def __init__(self, exited: PluginExitedError, error: grpc.aio.AioRpcError) -> None:
        grpc.aio.AioRpcError.__init__(
            self,
            error.code(),
            error.initial_metadata(),
            error.trailing_metadata(),
            str(exited),
            error.debug_error_string(),
        )
        self.returncode = exited.returncode
        self.stderr_tail = exited.stderr_tail
        self.args = (str(exited),)

    def __str__(self) -> str:
        return str(self.args[0])


class PluginConnection:
    """A connected plugin: launched, reattached or dialled directly.

    ``channel`` is a ``grpc.aio.Channel`` for generated clients (which also accept the
    connection itself). ``close()`` (or leaving ``async with``) ends it.
    """

    def __init__(
        self,
        *,
        name: str,
        version: int,
        endpoint: Endpoint,
        dialed: dial.Dialed,
        process: PluginProcess | None = None,
        pid: int | None = None,
        mode: Literal["launched", "reattached", "direct"] = "launched",
        test: bool = False,
        started: float | None = None,
        broker: HostBroker | None = None,
    ) -> None:
        self.name = name
        self.version = version
        """The negotiated app protocol version."""
        self.endpoint = endpoint
        """Where the plugin listens (its handshake address)."""
        self.mode = mode
        self._dialed = dialed
        self._process = process
        self._pid = pid if pid is not None else (process.pid if process else None)
        self._test = test
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._closed = False
        self.broker: HostBroker = broker if broker is not None else HostBroker()
        """go-plugin's GRPCBroker, host side: ``accept``/``dial``/``next_id`` (docs/broker.md)."""
        self.startup_seconds = (time.monotonic() - started) if started is not None else None
        if process is not None:
            process.exited.add_done_callback(self._on_exit)

    # -- what it is ----------------------------------------------------------------------
    @property
    def channel(self) -> grpc.aio.Channel:
        """The gRPC channel to the plugin."""
        return self._dialed.channel

    @property
    def pid(self) -> int | None:
        """The plugin's process id, when known."""
        return self._pid

    @property
    def tls(self) -> str:
        """``"off"``, ``"grpc"`` (grpcio's TLS) or ``"openssl"`` (the OpenSSL relay)."""
        return self._dialed.tls

    @property
    def exited(self) -> bool:
        """Whether a launched plugin's process has exited."""
        return self._process is not None and self._process.exited.done()

    @property
    def returncode(self) -> int | None:
        """A launched plugin's exit status, once it has exited."""
        return self._process.returncode if self._process is not None else None

    def stderr_tail(self) -> str:
        """The last lines the plugin wrote to stderr (launched plugins only)."""
        return self._process.stderr_tail() if self._process is not None else ""

    @property
    def exit_error(self) -> PluginExitedError | None:
        """Set when a launched plugin exited before we closed it."""
        if self._process is None or not self._process.exited.done() or self._closing:
            return None
        return self._process.exit_error("unexpectedly")

    async def explain_failure(self, error: grpc.aio.AioRpcError) -> BaseException | None:
        """Called by generated clients when a call fails: if the plugin process died, a
        :class:`PluginExitedDuringCall` carrying its exit status and stderr tail, else None.

        The exit notice may trail the RPC error by a moment, so a failure with a code a dead
        connection gives (UNAVAILABLE, CANCELLED, or INTERNAL from a write that could not be
        sent) waits up to 0.25 s for it.
        """
        if self._process is None or self._closing:
            return None
        if error.code() not in _CONNECTION_LOST_CODES:
            return None
        if not await self._process.wait(EXIT_NOTICE_WAIT):
            return None
        await self._process.drain_stderr(0.2)
        exited = self._process.exit_error("during a call")
        return PluginExitedDuringCall(exited, error)

    async def wait_exit(self) -> int:
        """Wait for a launched plugin to exit; returns its exit status."""
        if self._process is None:
            raise PluginError("only launched plugins have a process to wait for")
        return await asyncio.shield(self._process.exited)

    # -- calls ---------------------------------------------------------------------------
    async def ping(self, timeout: float = 5.0) -> None:
        """``grpc.health.v1.Health/Check`` for ``plugin``; raises a :class:`PluginError`."""
        try:
            status = await health.check(self.channel, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if self._process is not None and exc.code() == grpc.StatusCode.UNAVAILABLE:
                # a dying plugin's connection drop can be seen before its exit is: give the
                # exit watcher a moment so the error carries the exit status and stderr
                await self._process.wait(EXIT_NOTICE_WAIT)
            raise self._rpc_failure("health check", exc) from None
        if status != health.SERVING:
            raise PluginError(f"plugin {self.name!r} reports health status {status}, not SERVING")

    def _rpc_failure(self, what: str, exc: grpc.aio.AioRpcError) -> PluginError:
        exit_error = self.exit_error
        if exit_error is not None:
            return exit_error
        detail = f"{exc.code().name}: {exc.details()}"
        tls_error = self._dialed.tls_error()
        if tls_error is not None:
            return SecurityError(f"{what} of plugin {self.name!r} failed: {tls_error}")
        if self.tls == "grpc" and _GRPC_TLS_FAILURE.search(exc.details() or ""):
            return SecurityError(
                f"{what} of plugin {self.name!r} at {self.endpoint} failed in the TLS handshake "
                f"(grpcio): {detail}"
            )
        return TransportError(f"{what} of plugin {self.name!r} at {self.endpoint} failed: {detail}")

    # -- lifecycle -----------------------------------------------------------------------
    def _on_exit(self, future: asyncio.Future[int]) -> None:
        if self._closing:
            return
        relay = self._dialed.relay
        if relay is not None:
            # the OpenSSL relay would keep accepting gRPC's connections and dropping them, which
            # grpcio retries: calls without a deadline would wait forever. Stopping it makes
            # them fail at once with UNAVAILABLE, as on a plaintext or grpcio-TLS channel.
            self._tasks.append(asyncio.ensure_future(relay.close()))
        assert self._process is not None
        log.error("%s", self._process.exit_error("unexpectedly"))

    def _start_streams(
        self, stdout: Callable[[bytes], object] | None, stderr: Callable[[bytes], object] | None
    ) -> None:
        """H05: the stdio stream and the broker stream, right after connecting."""
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(_copy_stdio(self.channel, stdout, stderr)))
        self._tasks.append(loop.create_task(self.broker.run(self.channel)))

    async def close(self) -> None:
        """End the connection in bounded time (H06).

        Launched: Shutdown (errors ignored, 1 s deadline), close the channel, wait up to 2 s for
        the exit, SIGKILL, reap. Reattached: the same without reaping (not our child), and
        nothing at all when the config says ``Test``. Direct: close the channel.
        """
        await self._close(graceful=True)

    async def _close(self, *, graceful: bool) -> None:
        """``graceful=False`` (a launch that failed): SIGKILL a launched plugin at once, as
        go-plugin does when ``Start`` fails, instead of Shutdown and a 2 s wait."""
        if self._closed:
            return
        self._closing = True
        self._closed = True
        if not graceful and self._process is not None:
            self._process.kill()
        if graceful and self.mode != "direct" and not self._test and not self.exited:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    controller.shutdown(self.channel, SHUTDOWN_TIMEOUT), SHUTDOWN_TIMEOUT + 0.5
                )
        self.broker.stop()
        for task in self._tasks:
            task.cancel()
        await self.broker.close()
        await self._dialed.close()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._process is not None:
            if not await self._process.wait(KILL_WAIT):
                log.warning(
                    "plugin %r did not exit %g s after Shutdown; killing it", self.name, KILL_WAIT
                )
            await self._process.aclose()
            _remove_stale_socket(self.endpoint)
        elif self.mode == "reattached" and not self._test and self._pid:
            await _kill_foreign(self._pid, KILL_WAIT)

    async def __aenter__(self) -> PluginConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"<PluginConnection {self.name!r} v{self.version} {self.endpoint} tls={self.tls} "
            f"pid={self.pid} {self.mode}>"
        )


class _Closable(Protocol):
    async def close(self) -> None: ...


ConnT = TypeVar("ConnT", bound=_Closable)


class Opening(Generic[ConnT]):
    """What :func:`launch`, :func:`reattach`, :func:`connect` and ``connect_balanced`` return:
    await it for a connection, or use it as ``async with`` (which closes the connection on
    exit). It opens the connection once, however it is used."""

    def __init__(self, opener: Callable[[], Awaitable[ConnT]]) -> None:
        self._opener = opener
        self._task: asyncio.Future[ConnT] | None = None

    def _open(self) -> asyncio.Future[ConnT]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._opener())
        return self._task

    def __await__(self) -> Generator[Any, None, ConnT]:
        return self._open().__await__()

    async def __aenter__(self) -> ConnT:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None and self._task.done() and not self._task.exception():
            await self._task.result().close()


def launch(
    cmd: Sequence[str] | str,
    *,
    handshake: Handshake,
    versions: Sequence[int],
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    cwd: str | None = None,
    auto_mtls: bool = True,
    tls_backend: TLSBackendChoice = "auto",
    start_timeout: float = 60.0,
    min_port: int = 10000,
    max_port: int = 25000,
    unix_socket_dir: str | None = None,
    unix_socket_group: str | None = None,
    checksum: str | None = None,
    stdout: StdioSink | None = None,
    stderr: StdioSink | None = None,
    logger: logging.Logger | None = None,
    health_check: bool = True,
    metadata: MetadataPairs | None = None,
    metrics: Metrics | None = None,
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
    before it runs. ``metadata`` is sent with every call (e.g. :func:`rpcplugin.auth.bearer`);
    ``metrics`` records every call and the start-up time (docs/operations.md). A plugin that
    fails is never relaunched behind the caller's back.
    """
    argv = [cmd] if isinstance(cmd, str) else list(cmd)
    if not argv:
        raise ConfigError("cmd", cmd, "a non-empty argv")
    if not versions:
        raise ConfigError("versions", versions, "at least one app protocol version")
    plugin_name = name or plugin_name_from_argv(argv)

    async def opener() -> PluginConnection:
        return await _launch(
            argv,
            handshake=handshake,
            versions=tuple(versions),
            name=plugin_name,
            env=env,
            inherit_env=inherit_env,
            cwd=cwd,
            auto_mtls=auto_mtls,
            tls_backend=tls_backend,
            start_timeout=start_timeout,
            min_port=min_port,
            max_port=max_port,
            unix_socket_dir=unix_socket_dir,
            unix_socket_group=unix_socket_group,
            checksum=checksum,
            stdout=stdout,
            stderr=stderr,
            logger=logger or logging.getLogger(f"rpcplugin.plugin.{plugin_name}"),
            health_check=health_check,
            metadata=metadata,
            metrics=metrics,
        )

    return Opening(opener)


async def _launch(
    argv: list[str],
    *,
    handshake: Handshake,
    versions: tuple[int, ...],
    name: str,
    env: Mapping[str, str] | None,
    inherit_env: bool,
    cwd: str | None,
    auto_mtls: bool,
    tls_backend: TLSBackendChoice,
    start_timeout: float,
    min_port: int,
    max_port: int,
    unix_socket_dir: str | None,
    unix_socket_group: str | None,
    checksum: str | None,
    stdout: StdioSink | None,
    stderr: StdioSink | None,
    logger: logging.Logger,
    health_check: bool,
    metadata: MetadataPairs | None = None,
    metrics: Metrics | None = None,
) -> PluginConnection:
    started = time.monotonic()
    chain = client_interceptors.build(name, metadata=metadata, metrics=metrics)
    if checksum is not None:
        from .secure_config import verify_checksum

        argv = [verify_checksum(argv[0], checksum, path=(env or os.environ).get("PATH")), *argv[1:]]
    identity = None
    if auto_mtls:
        from . import mtls

        identity = mtls.generate_certificate()
    child_env: dict[str, str] = dict(os.environ) if inherit_env else {}
    child_env.update(env or {})
    child_env[handshake.cookie_key] = handshake.cookie_value
    child_env["PLUGIN_MIN_PORT"] = str(min_port)
    child_env["PLUGIN_MAX_PORT"] = str(max_port)
    child_env["PLUGIN_PROTOCOL_VERSIONS"] = ",".join(str(v) for v in versions)
    for key in (
        "PLUGIN_CLIENT_CERT",
        "PLUGIN_MULTIPLEX_GRPC",
        "PLUGIN_UNIX_SOCKET_DIR",
        "PLUGIN_UNIX_SOCKET_GROUP",
    ):
        child_env.pop(key, None)  # never leak our own host's settings into the child
    if identity is not None:
        child_env["PLUGIN_CLIENT_CERT"] = identity.cert_pem.decode("ascii")
    # a directory for this plugin's sockets alone (inside unix_socket_dir when given), removed
    # after the reap: a plugin that dies or is killed cannot leave a socket file behind, even
    # when its handshake was refused and we never learnt its path (go-plugin >= 1.5 does this)
    private_socket_dir = _private_socket_dir(unix_socket_dir, unix_socket_group)
    child_env["PLUGIN_UNIX_SOCKET_DIR"] = private_socket_dir
    if unix_socket_group is not None:
        child_env["PLUGIN_UNIX_SOCKET_GROUP"] = unix_socket_group

    try:
        process = await PluginProcess.start(
            argv, env=child_env, cwd=cwd, on_stderr_line=_stderr_logger(logger, name)
        )
    except BaseException as exc:
        os.rmdir(private_socket_dir)
        if not isinstance(exc, OSError):
            raise  # cancelled: PluginProcess.start has undone itself
        raise ConfigError(
            "plugin command", argv[0], f"an executable that can run ({exc})"
        ) from None
    process.private_dirs.append(private_socket_dir)
    endpoint: Endpoint | None = None
    try:
        try:
            raw = await process.first_line(start_timeout)
        except PluginExitedError as exc:
            raise cookie_refusal.explain(exc, name, handshake.cookie_key) from None
        try:
            if len(raw) >= MAX_LINE_BYTES:
                # the line splitter hands over 64 KiB pieces of longer lines: never parse a piece
                raise HandshakeError(
                    f"the plugin's handshake line is {MAX_LINE_BYTES} bytes or longer; go-plugin "
                    "reads it with a 64 KiB line scanner and rejects it",
                    raw[:200].decode("utf-8", "replace"),
                )
            line = HandshakeLine.parse(raw, host_versions=versions)
        except HandshakeError as exc:
            raise type(exc)(_with_tail(str(exc), process), exc.line) from None
        endpoint = Endpoint(line.network, line.address)
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
        if identity is not None:
            assert line.server_cert_der is not None
            dialed = await dial.automtls(
                endpoint, identity, line.server_cert_der, tls_backend, chain
            )
        else:
            dialed = dial.plain(endpoint, chain)
        connection = PluginConnection(
            name=name,
            version=line.app_version,
            endpoint=endpoint,
            dialed=dialed,
            process=process,
            started=started,
            broker=_host_broker(
                identity, line.server_cert_der, tls_backend, private_socket_dir, unix_socket_group
            ),
        )
    except BaseException:
        await process.aclose()
        _remove_stale_socket(endpoint)
        raise
    try:
        connection._start_streams(_sink(stdout, sys.stdout), _sink(stderr, sys.stderr))
        if health_check:
            await _ping_or_exit(connection, process)
    except BaseException:
        await connection._close(graceful=False)
        raise
    if metrics is not None:
        from .metrics import report_plugin_started

        report_plugin_started(metrics, name, time.monotonic() - started, side="client")
    return connection


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
    """Attach to a plugin started elsewhere, from go-plugin's reattach JSON (§6.8; H08).

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
            if parsed.pid is not None and not _pid_alive(parsed.pid):
                raise PluginError(
                    f"reattachment process not found: no process with pid {parsed.pid}"
                )
            await _probe(parsed.endpoint, timeout)
            connection = PluginConnection(
                name=plugin_name,
                version=version,
                endpoint=parsed.endpoint,
                dialed=dial.plain(parsed.endpoint, chain),
                pid=parsed.pid,
                mode="reattached",
                test=parsed.test,
            )
            await _connected(connection, stdout, stderr, health_check, timeout)
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

    ``retry`` (:class:`rpcplugin.retry.RetryPolicy`; default: the ``RPCPLUGIN_CONNECT_*``
    settings, one attempt) retries until the server is reachable and healthy. ``metadata`` is
    sent with every call (e.g. :func:`rpcplugin.auth.bearer`); ``metrics``
    (:class:`rpcplugin.metrics.Metrics`) records every call.
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
                broker=None if tls is None else HostBroker(unavailable=_NO_BROKER_WITH_FILES),
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


_NO_BROKER_WITH_FILES = (
    "the broker is not available on a connection with user-provided certificates: brokered "
    "listeners are local (unix sockets, loopback TCP) and use AutoMTLS material"
)


def _host_broker(
    identity: CertificateAndKey | None,
    peer_der: bytes | None,
    backend: TLSBackendChoice,
    socket_dir: str,
    socket_group: str | None,
) -> HostBroker:
    """A launched plugin's broker: its brokered listeners go in the plugin's private socket dir
    (shared with ``socket_group`` like the plugin's own), with the main connection's AutoMTLS
    material."""
    from .config import PluginSettings

    tls = None
    if identity is not None and peer_der is not None:
        from .broker import BrokerTLS

        tls = BrokerTLS(identity, peer_der, backend)
    settings = PluginSettings(unix_socket_dir=socket_dir, unix_socket_group=socket_group)
    return HostBroker(tls=tls, settings=settings)


async def _connected(
    connection: PluginConnection,
    stdout: StdioSink | None,
    stderr: StdioSink | None,
    health_check: bool,
    timeout: float = 5.0,
) -> None:
    try:
        connection._start_streams(_sink(stdout, sys.stdout), _sink(stderr, sys.stderr))
        if health_check:
            await connection.ping(timeout)
    except BaseException:
        connection._test = True  # a failed attach must not stop somebody else's plugin
        await connection.close()
        raise


async def _probe(endpoint: Endpoint, timeout: float = 5.0) -> None:
    """go-plugin's reattach probe: connect and close."""
    try:
        if endpoint.network == "unix":
            _, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(endpoint.address), timeout
            )
        else:
            host, _, port = endpoint.address.rpartition(":")
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (TimeoutError, OSError) as exc:
        raise TransportError(
            f"reattachment process not found: cannot connect to {endpoint}: {exc}"
        ) from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _remove_stale_socket(endpoint: Endpoint | None) -> None:
    """Remove a reaped plugin's unix socket if nobody listens on it any more: a plugin that was
    SIGKILLed or crashed cannot remove it itself."""
    if endpoint is None or endpoint.network != "unix":
        return
    try:
        if not stat.S_ISSOCK(os.lstat(endpoint.address).st_mode):
            return
    except OSError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(endpoint.address)
    except ConnectionRefusedError:
        with contextlib.suppress(OSError):
            os.unlink(endpoint.address)
    except OSError:
        pass  # somebody still listens there (or may): not ours to remove
    finally:
        probe.close()


def _private_socket_dir(parent: str | None, group: str | None) -> str:
    """A fresh 0700 directory (0770 and chgrp'd with a socket group) for one plugin's sockets,
    in ``parent`` or the temp dir."""
    from .transport import private_dir, resolve_group, socket_dir

    directory = private_dir(socket_dir(parent) if parent is not None else None)
    if group is not None:
        try:
            os.chown(directory, -1, resolve_group(group))
            os.chmod(directory, 0o770)
        except BaseException:
            os.rmdir(directory)
            raise
    return directory


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _kill_foreign(pid: int, wait: float) -> None:
    """Wait for a process that is not our child to exit; SIGKILL it after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        await asyncio.sleep(0.05)
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _stderr_logger(logger: logging.Logger, name: str) -> Callable[[bytes], None]:
    """H07: each plugin stderr line becomes a :mod:`logging` record; nothing here can raise."""

    def on_line(raw: bytes) -> None:
        entry = hclog.parse_line(raw.decode("utf-8", "replace"))
        if not logger.isEnabledFor(entry.level):
            return
        extra = {"plugin": name, "plugin_fields": entry.fields}
        if entry.module:
            extra["plugin_module"] = entry.module
        logger.log(entry.level, "%s", entry.message, extra=extra)

    return on_line


def _sink(sink: StdioSink | None, default: IO[str]) -> Callable[[bytes], object]:
    target: StdioSink = default if sink is None else sink
    if callable(target):
        return target
    stream = target

    def write(data: bytes) -> None:
        binary: Any = getattr(stream, "buffer", None)
        if binary is None and (
            isinstance(stream, io.RawIOBase | io.BufferedIOBase)
            or "b" in getattr(stream, "mode", "")
        ):
            binary = stream
        if binary is not None:
            binary.write(data)
        else:
            text: Any = stream
            text.write(data.decode("utf-8", "replace"))
        with contextlib.suppress(Exception):
            stream.flush()

    return write


async def _copy_stdio(
    channel: grpc.aio.Channel,
    stdout: Callable[[bytes], object] | None,
    stderr: Callable[[bytes], object] | None,
) -> None:
    """Copy the plugin's GRPCStdio stream to the sinks; tolerate plugins without it."""
    method: grpc.aio.UnaryStreamMultiCallable[bytes, grpc_stdio_pb2.StdioData]
    method = channel.unary_stream(
        "/plugin.GRPCStdio/StreamStdio",
        request_serializer=None,
        response_deserializer=grpc_stdio_pb2.StdioData.FromString,
    )
    try:
        async for chunk in method(b""):
            if not isinstance(chunk, grpc_stdio_pb2.StdioData) or not chunk.data:
                continue
            sink = {
                grpc_stdio_pb2.StdioData.STDOUT: stdout,
                grpc_stdio_pb2.StdioData.STDERR: stderr,
            }.get(chunk.channel)
            if sink is not None:
                try:
                    sink(chunk.data)
                except Exception:
                    log.exception("plugin stdio sink failed")
    except grpc.aio.AioRpcError as exc:
        log.debug("plugin stdio stream ended: %s", exc.code().name)


def _with_tail(message: str, process: PluginProcess) -> str:
    tail = process.stderr_tail()
    return message + (f"; last stderr lines:\n{tail}" if tail else "")
