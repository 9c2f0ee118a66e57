"""The plugin side: serve gRPC services to a go-plugin host (PROTOCOL.md §1–§7, P01–P32).

:func:`serve` is the whole of it for a plugin author::

    rpcplugin.serve(
        rpcplugin.Handshake("KV_PLUGIN", "hello"),
        versions={1: [kv_v1_handler(MyKV())], 2: [kv_v2_handler(MyKV())]},
    )

It checks the magic cookie, negotiates the app protocol version, listens on a unix socket (or
loopback TCP), serves AutoMTLS when the host asks for it, registers the services every host
expects (health, controller, stdio, broker) next to the chosen version's, prints the handshake
line and serves until the host calls ``GRPCController/Shutdown`` or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import grpc

from . import broker as broker_mod
from . import hclog, process_guard
from .config import PluginSettings, parse_bool
from .controller import ControllerService
from .errors import ConfigError, PluginError, SecurityError, TransportError
from .handshake import Handshake, HandshakeLine, negotiate_version
from .health import HealthService
from .plugin_name import of_this_process as plugin_name_of_this_process
from .stdio import StdioBuffer, StdioService, capture

if TYPE_CHECKING:
    from .auth import Authenticator
    from .metrics import Metrics
    from .mtls import CertificateAndKey
    from .rate_limit import RateLimit

from .transport import (
    Endpoint,
    free_tcp_port,
    new_unix_socket_path,
    owner_only_umask,
    private_dir,
    remove_socket,
    resolve_group,
    share_with_group,
    socket_dir,
)

log = logging.getLogger("rpcplugin.server")

EXIT_OK = 0
EXIT_COOKIE = 1
"""Not launched by a host with the right magic cookie (P01), or a plugin without a cookie."""
EXIT_CONFIG = 2
"""A setting was invalid; the message names it."""
EXIT_TLS = 3
"""``PLUGIN_CLIENT_CERT`` could not be used (P19)."""
EXIT_TRANSPORT = 4
"""No listener could be created (no free port, unwritable socket directory, ...)."""

GRPC_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.so_reuseport", 0),
)
"""Message limits as large as go-plugin hosts' (2^31-1; -1 is unlimited) (P25)."""

SHUTDOWN_GRACE = 0.25
"""Seconds in-flight calls get after ``Shutdown`` before they are cancelled."""


@dataclass
class _Running:
    """What a running server has open, so that every exit path can close it."""

    server: grpc.aio.Server | None = None
    relay: object | None = None
    sockets: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    own_streams: list[Callable[[], None]] = field(default_factory=list)
    """Closers of the runtime's own long-lived streams (stdio, broker), ended before the stop."""
    broker: broker_mod.GRPCBroker | None = None
    """Its brokered servers and connections are closed together with the server."""
    endpoint: Endpoint | None = None
    version: int = 0
    tls: str = "off"


def serve(
    handshake: Handshake,
    versions: Mapping[int, Sequence[grpc.GenericRpcHandler]],
    *,
    name: str | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    rate_limit: RateLimit | None = None,
    auth: Authenticator | None = None,
    metrics: Metrics | None = None,
) -> NoReturn:
    """Serve as a go-plugin plugin until the host stops us, then exit the process.

    ``versions`` maps each app protocol version this plugin speaks to the gRPC handlers it
    serves for that version. Exit status: 0 after a normal shutdown; 1 wrong magic cookie; 2 bad
    setting; 3 unusable ``PLUGIN_CLIENT_CERT``; 4 no listener could be created.

    Operations (docs/operations.md): ``rate_limit`` (:class:`rpcplugin.rate_limit.RateLimit`,
    else ``RPCPLUGIN_RATE_LIMIT``), ``auth`` (an :data:`rpcplugin.auth.Authenticator` checked
    before every servicer), ``metrics`` (:class:`rpcplugin.metrics.Metrics`, else
    ``RPCPLUGIN_METRICS``) and the app's own ``grpc.aio`` ``interceptors`` (innermost).
    """
    try:
        debug = parse_bool(os.environ, "RPCPLUGIN_DEBUG", False)
    except ConfigError:
        debug = False  # serve_async reports it
    # server mode (RPCPLUGIN_LISTEN): a network service; stdout is free and Ctrl-C stops it
    debug = debug or bool(os.environ.get("RPCPLUGIN_LISTEN", "").strip())
    if not debug:
        process_guard.guard_stdout()
        process_guard.ignore_sigint()
    else:
        process_guard.release_stdout()  # a guard the caller set up would hide the reattach JSON
    code = asyncio.run(
        serve_async(
            handshake,
            versions,
            name=name,
            interceptors=interceptors,
            rate_limit=rate_limit,
            auth=auth,
            metrics=metrics,
        )
    )
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Exit once everything is cleaned up, without the interpreter's own teardown.

    Freeing every module and object at exit takes ~30 ms, and a host's close waits for it
    (go-plugin waits for the process before it returns). The exit handlers registered with
    :mod:`atexit` (grpc's, the plugin's) and logging's flush still run, in that order.
    """
    import atexit

    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
    finally:
        os._exit(code)


async def serve_async(
    handshake: Handshake,
    versions: Mapping[int, Sequence[grpc.GenericRpcHandler]],
    *,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    rate_limit: RateLimit | None = None,
    auth: Authenticator | None = None,
    metrics: Metrics | None = None,
) -> int:
    """The body of :func:`serve` in an existing event loop; returns the exit status."""
    env = os.environ if env is None else env
    plugin_name = name or plugin_name_of_this_process()
    try:
        settings = PluginSettings.from_env(env)
    except ConfigError as exc:
        _fatal(f"plugin configuration: {exc}")
        return EXIT_CONFIG
    _configure_logging(settings)

    if not settings.debug and settings.listen is None:
        problem = _cookie_problem(handshake, env)
        if problem is not None:
            _fatal(problem, plain=True)
            return EXIT_COOKIE
    if not versions:
        _fatal("the plugin serves no app protocol version (versions= is empty)")
        return EXIT_CONFIG

    running = _Running()
    try:
        from . import server_interceptors

        chain, active_metrics = server_interceptors.build(
            settings,
            plugin=plugin_name,
            interceptors=interceptors,
            rate_limit=rate_limit,
            auth=auth,
            metrics=metrics,
        )
        if settings.listen is not None:
            from . import server_mode

            return await server_mode.serve(
                versions, settings, plugin_name, running, chain, active_metrics
            )
        return await _serve(
            handshake, versions, settings, plugin_name, running, chain, active_metrics
        )
    except SecurityError as exc:
        _fatal(str(exc))
        return EXIT_TLS
    except ConfigError as exc:
        _fatal(f"plugin configuration: {exc}")
        return EXIT_CONFIG
    except TransportError as exc:
        _fatal(str(exc))
        return EXIT_TRANSPORT
    except PluginError as exc:
        _fatal(str(exc))
        return EXIT_CONFIG
    finally:
        await _cleanup(running)


async def _serve(
    handshake: Handshake,
    versions: Mapping[int, Sequence[grpc.GenericRpcHandler]],
    settings: PluginSettings,
    plugin_name: str,
    running: _Running,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    metrics: Metrics | None = None,
) -> int:
    started = time.monotonic()
    if settings.protocol_version_junk:
        log.warning(
            "ignoring PLUGIN_PROTOCOL_VERSIONS items that are not whole numbers: %s",
            ", ".join(repr(j) for j in settings.protocol_version_junk),
        )
    if settings.debug:
        offered = settings.protocol_versions or (max(versions),)
    else:
        offered = settings.protocol_versions or ()
        if not offered:
            log.warning("the host offered no app protocol versions (PLUGIN_PROTOCOL_VERSIONS)")
    version = negotiate_version(offered, versions.keys())
    running.version = version

    tls = None if settings.debug else _tls_plan(settings)
    loop = asyncio.get_running_loop()
    stdio_buffer = StdioBuffer(settings.stdio_buffer)
    broker = broker_mod.BrokerService(
        broker_mod.GRPCBroker(
            tls=None
            if tls is None
            else broker_mod.BrokerTLS.from_pem(tls.identity, tls.host_pem, settings.tls_backend),
            settings=settings,
        )
    )
    running.broker = broker.broker
    running.own_streams += [stdio_buffer.close, broker.close]
    server = grpc.aio.server(options=GRPC_OPTIONS, interceptors=list(interceptors) or None)
    running.server = server
    health = HealthService()
    server.add_generic_rpc_handlers(
        (
            health.handler(),
            ControllerService(running.stop.set).handler(),
            StdioService(stdio_buffer).handler(),
            broker.handler(),
            *versions[version],
        )
    )
    # before anything exists that SIGTERM's default action would leave behind (the socket)
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, running.stop.set)
    running.endpoint = await _listen(server, settings, tls, running)
    running.tls = "off" if tls is None else tls.backend
    token = broker_mod.bind(broker.broker)  # current_broker() in every handler of the server
    try:
        await server.start()
    finally:
        broker_mod.unbind(token)

    if settings.debug:
        _print_reattach(plugin_name, version, running.endpoint)
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, running.stop.set)
    else:
        line = HandshakeLine(
            app_version=version,
            network=running.endpoint.network,
            address=running.endpoint.address,
            server_cert_der=tls.identity.cert_der if tls is not None else None,
            multiplex=False if settings.multiplex_requested else None,
        )
        process_guard.write_handshake(line.format())
        capture(stdio_buffer)
    log.debug(
        "plugin serving",
        extra={
            "version": version,
            "address": str(running.endpoint),
            "tls": running.tls,
            "startup_ms": round((time.monotonic() - started) * 1000, 1),
        },
    )
    if metrics is not None:
        metrics.plugin_started(plugin_name, time.monotonic() - started, side="server")
    watcher = None
    if settings.parent_watch and not settings.debug:
        watcher = loop.create_task(process_guard.watch_parent(running.stop.set))
    await running.stop.wait()
    if watcher is not None:
        watcher.cancel()
    return EXIT_OK


@dataclass(frozen=True)
class _TLSPlan:
    backend: str  # "grpc" or "openssl"
    identity: CertificateAndKey
    host_pem: bytes


def _tls_plan(settings: PluginSettings) -> _TLSPlan | None:
    """Decide the TLS backend for the host's certificate, or None for plaintext."""
    if settings.client_cert_pem is None:
        return None
    from . import mtls

    host_cert = mtls.load_pem_certificate(
        settings.client_cert_pem, source="PLUGIN_CLIENT_CERT (the host's AutoMTLS certificate)"
    )
    backend = settings.tls_backend
    if backend == "auto":
        backend = "grpc" if mtls.grpc_can_verify(host_cert) else "openssl"
    elif backend == "grpc" and not mtls.grpc_can_verify(host_cert):
        raise ConfigError(
            "RPCPLUGIN_TLS_BACKEND",
            "grpc",
            f"grpcio's TLS cannot verify the host's {mtls.key_description(host_cert)} key; "
            "use 'auto' or 'openssl'",
        )
    return _TLSPlan(backend, mtls.generate_certificate(), mtls.pem_of(host_cert))


async def _listen(
    server: grpc.aio.Server, settings: PluginSettings, tls: _TLSPlan | None, running: _Running
) -> Endpoint:
    """Open the listener the handshake announces; for the OpenSSL backend gRPC itself listens
    on a private socket behind the TLS relay."""
    gid = resolve_group(settings.unix_socket_group) if settings.unix_socket_group else None
    if tls is not None and tls.backend == "openssl":
        from . import mtls
        from .tls_relay import TLSTerminator

        # checked first, so that a missing or unusable directory gets its one-line message
        inner_dir = private_dir(socket_dir(settings.unix_socket_dir))
        running.dirs.append(inner_dir)
        inner = os.path.join(inner_dir, "grpc.sock")
        _add_port(server, Endpoint("unix", inner), None)
        running.sockets.append(inner)
        relay = TLSTerminator(mtls.server_ssl_context(tls.identity, tls.host_pem), inner)
        running.relay = relay
        if settings.transport == "tcp":
            return await _bind_tcp(settings, lambda port: relay.listen_tcp("127.0.0.1", port))
        path = new_unix_socket_path(socket_dir(settings.unix_socket_dir))
        running.sockets.append(path)
        endpoint = await relay.listen_unix(path)
        if gid is not None:
            share_with_group(path, gid)
        return endpoint

    credentials = None
    if tls is not None:
        from . import mtls

        credentials = grpc.ssl_server_credentials(
            [(tls.identity.key_pem, tls.identity.cert_pem)],
            root_certificates=tls.host_pem,
            require_client_auth=True,
        )
    if settings.transport == "tcp":

        async def bind(port: int) -> Endpoint:
            endpoint = Endpoint("tcp", f"127.0.0.1:{port}")
            _add_port(server, endpoint, credentials)
            return endpoint

        return await _bind_tcp(settings, bind)
    path = new_unix_socket_path(socket_dir(settings.unix_socket_dir))
    endpoint = Endpoint("unix", path)
    _add_port(server, endpoint, credentials)
    running.sockets.append(path)
    if gid is not None:
        share_with_group(path, gid)
    return endpoint


async def _bind_tcp(
    settings: PluginSettings, bind: Callable[[int], Awaitable[Endpoint]]
) -> Endpoint:
    """Listen on the first port of the host's range that really binds, ascending (P13).

    A port is probed free, then bound; when another process takes it in between (plugins
    launched together race for the same first free port), the search goes on from the next
    port instead of failing. Without a range the OS picks a port, retried a few times.
    """
    low, high = settings.min_port, settings.max_port
    lost = "no port could be bound"
    for _ in range(5 if low is None else (high or 0) - low + 1):
        port = free_tcp_port(low, high)
        try:
            return await bind(port)
        except TransportError as exc:
            lost = str(exc)
            if low is not None:
                low = port + 1
                if high is not None and low > high:
                    break
    raise TransportError(
        f"{lost}; no other free TCP port between PLUGIN_MIN_PORT={settings.min_port} and "
        f"PLUGIN_MAX_PORT={settings.max_port}"
    )


def _add_port(
    server: grpc.aio.Server, endpoint: Endpoint, credentials: grpc.ServerCredentials | None
) -> None:
    try:
        with owner_only_umask():
            if credentials is None:
                bound = server.add_insecure_port(endpoint.grpc_target)
            else:
                bound = server.add_secure_port(endpoint.grpc_target, credentials)
    except RuntimeError as exc:
        raise TransportError(f"cannot listen on {endpoint}: {exc}") from None
    if bound == 0:
        raise TransportError(f"cannot listen on {endpoint}")


class _QuietCancelledCalls(logging.Filter):
    """Drop grpcio's report of each in-flight call it cancels when the server stops.

    grpcio logs those at ERROR with a ``CancelledError`` traceback ("Exception not handled by
    _handle_exceptions in servicer method ..."); after ``Shutdown`` that is the expected end of
    every open call (the host's StreamStdio and StartStream streams at least), not an error.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Exception not handled by _handle_exceptions"):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(exc, asyncio.CancelledError) or message.rstrip().endswith("CancelledError")
        )


async def _cleanup(running: _Running) -> None:
    if running.server is not None:
        logging.getLogger("grpc._cython.cygrpc").addFilter(_QuietCancelledCalls())
        for close in running.own_streams:
            close()
        await asyncio.sleep(0.01)  # let those streams finish before the server stops
        stopping = [running.server.stop(SHUTDOWN_GRACE)]
        if running.broker is not None:
            stopping.append(running.broker.close())
        await asyncio.gather(*stopping, return_exceptions=True)
    if running.relay is not None:
        from .tls_relay import TLSTerminator

        assert isinstance(running.relay, TLSTerminator)
        await running.relay.close()
    for path in running.sockets:
        remove_socket(path)
    for directory in running.dirs:
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _cookie_problem(handshake: Handshake, env: Mapping[str, str]) -> str | None:
    if not handshake.cookie_key or not handshake.cookie_value:
        return (
            "this plugin was built without a magic cookie (Handshake key and value must be "
            "non-empty); this is a bug in the plugin"
        )
    if env.get(handshake.cookie_key) != handshake.cookie_value:
        return (
            "This program is a plugin that its application starts, not one to run by hand "
            f"(the {handshake.cookie_key} variable is missing or wrong; set RPCPLUGIN_DEBUG=1 "
            "to run it under a debugger)."
        )
    return None


def _fatal(message: str, *, plain: bool = False) -> None:
    """One line on the real stderr, readable by a person and by a go-plugin host."""
    text = (message if plain else f"[ERROR] rpcplugin: {message}").replace("\n", " ") + "\n"
    with contextlib.suppress(OSError):
        os.write(2, text.encode("utf-8", "backslashreplace"))


def _configure_logging(settings: PluginSettings) -> None:
    """hclog lines on the real fd 2 for the runtime's logs, and for the plugin's own logs unless
    it configured logging itself."""
    level = hclog.level_number(settings.log_level) if settings.log_level != "trace" else hclog.TRACE
    handler = hclog.StderrHandler(json_lines=settings.log_format == "json")
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
        root.setLevel(level)
    runtime_logger = logging.getLogger("rpcplugin")
    runtime_logger.setLevel(level)
    if not root.handlers or handler in root.handlers:
        return
    runtime_logger.addHandler(handler)
    runtime_logger.propagate = False


def _print_reattach(name: str, version: int, endpoint: Endpoint) -> None:
    """Debug mode (P32): tell the developer how to attach a host to this plugin."""
    config = {
        name: {
            "Protocol": "grpc",
            "ProtocolVersion": version,
            "Pid": os.getpid(),
            "Test": True,
            "Addr": {"Network": endpoint.network, "String": endpoint.address},
        }
    }
    text = json.dumps(config)
    print(text, flush=True)
    print(
        f"[INFO] plugin {name!r} serving in debug mode; attach with "
        f"TF_REATTACH_PROVIDERS='{text}' or rpcplugin.reattach(...). Ctrl-C stops it.",
        file=sys.stderr,
        flush=True,
    )
