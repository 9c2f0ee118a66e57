"""The plugin side: serve gRPC services to a go-plugin host (docs/protocol.md, P01–P32).

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
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from .. import hclog
from .._wire.listeners import SERVER_OPTIONS
from .._wire.tls_plan import Backend, ServerTLS, choose_backend_for_key
from ..config import PluginSettings, parse_bool
from ..errors import ConfigError, PluginError, SecurityError, TransportError
from ..handshake import Handshake, HandshakeLine, negotiate_version
from ..plugin import stdout_guard as process_guard
from ..plugin_name import of_this_process as plugin_name_of_this_process
from .running import (
    EXIT_CONFIG,
    EXIT_COOKIE,
    EXIT_OK,
    EXIT_TLS,
    EXIT_TRANSPORT,
    RunningServer,
)

if TYPE_CHECKING:
    from .._wire.transport import Endpoint
    from ..ops.auth import Authenticator
    from ..ops.metrics import Metrics
    from ..ops.rate_limit import RateLimit
    from ..services.goplugin import Loaded
    from ..services.stdio import StdioBuffer

log = logging.getLogger("rpcplugin.server")


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

    Operations (docs/operations.md): ``rate_limit`` (:class:`rpcplugin.ops.rate_limit.RateLimit`,
    else ``RPCPLUGIN_RATE_LIMIT``), ``auth`` (an :data:`rpcplugin.ops.auth.Authenticator` checked
    before every servicer), ``metrics`` (:class:`rpcplugin.ops.metrics.Metrics`, else
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
        process_guard.flush_stderr()  # P30: the forwarding thread's last lines reach the host
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
    # handlers made by rpcplugin.servicer (generated code) have loaded it by now: configure it
    # then. A plugin of plain grpc handlers never loads it (nor rpcplugin.calls and protobuf's
    # Message with it); one loaded later reads the environment itself.
    if "rpcplugin.servicer" in sys.modules:
        from .. import servicer

        servicer.configure(
            handler_threads=settings.handler_threads, stall_warning=settings.stall_warning
        )
    if settings.ignored_ports:
        log.debug(
            "%s ignored: the unix transport uses no TCP port", " and ".join(settings.ignored_ports)
        )

    if not settings.debug and settings.listen is None:
        problem = _cookie_problem(handshake, env)
        if problem is not None:
            _fatal(problem, plain=True)
            return EXIT_COOKIE
    if not versions:
        _fatal("the plugin serves no app protocol version (versions= is empty)")
        return EXIT_CONFIG

    running = RunningServer()
    try:
        from ..plugin import interceptors as server_interceptors

        chain, active_metrics = server_interceptors.build(
            settings,
            plugin=plugin_name,
            interceptors=interceptors,
            rate_limit=rate_limit,
            auth=auth,
            metrics=metrics,
        )
        if settings.listen is not None:
            from ..plugin import network_mode as server_mode

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
        process_guard.resume_gc()  # already done once a handshake line went out
        await running.close()


async def _serve(
    handshake: Handshake,
    versions: Mapping[int, Sequence[grpc.GenericRpcHandler]],
    settings: PluginSettings,
    plugin_name: str,
    running: RunningServer,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    metrics: Metrics | None = None,
) -> int:
    # go-plugin's services (their protobuf messages) load here, not when serve() is imported
    from ..services.stdio import StdioBuffer, capture

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
    server = build_server(versions[version], settings, running, stdio_buffer, tls, interceptors)
    # before anything exists that SIGTERM's default action would leave behind (the socket)
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, running.stop.set)
    endpoint = await start_server(server, settings, running, tls)

    if settings.debug:
        _print_reattach(plugin_name, version, endpoint)
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, running.stop.set)
    else:
        line = HandshakeLine(
            app_version=version,
            network=endpoint.network,
            address=endpoint.address,
            server_cert_der=tls.identity.cert_der if tls is not None else None,
            multiplex=False if settings.multiplex_requested else None,
        )
        process_guard.write_handshake(line.format())
        capture(stdio_buffer)
    # the host is dialling now, and this process would wait for it: build go-plugin's services
    # and start the stall detector meanwhile (a call that comes first builds the services itself)
    assert running.services is not None
    running.services.load()
    if "rpcplugin.servicer" in sys.modules:
        from .. import servicer

        servicer.watch_stalls()
    log.debug(
        "plugin serving",
        extra={
            "version": version,
            "address": str(endpoint),
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


def build_server(
    handlers: Sequence[grpc.GenericRpcHandler],
    settings: PluginSettings,
    running: RunningServer,
    stdio_buffer: StdioBuffer,
    tls: ServerTLS | None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> grpc.aio.Server:
    """A launched plugin's gRPC server, not yet listening: go-plugin's services (health,
    controller, stdio, broker; built when ``running.services`` loads) and, unless turned off,
    reflection beside ``handlers``. Records the server, its services, and then its broker and
    the runtime's own streams in ``running``. ``rpcplugin.testing`` serves through it too, so a
    test serves exactly what a plugin process does."""
    from ..services import reflection
    from ..services.goplugin import GoPluginServices

    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors) or None)
    running.server = server
    running.own_streams.append(stdio_buffer.close)
    services = running.services = GoPluginServices(
        lambda: _go_plugin_services(settings, running, stdio_buffer, tls)
    )
    # first, as before: a service of the plugin's own with one of these names does not win
    reflection.add_handlers(server, (services, *handlers), reflection=settings.reflection)
    return server


def _go_plugin_services(
    settings: PluginSettings,
    running: RunningServer,
    stdio_buffer: StdioBuffer,
    tls: ServerTLS | None,
) -> Loaded:
    """go-plugin's services for a server (what its :class:`GoPluginServices` loads)."""
    from ..services import broker, controller, health, stdio

    broker_tls = None
    if tls is not None:
        broker_tls = broker.BrokerTLS.from_pem(tls.identity, tls.peer_pem, settings.tls_backend)
    broker_service = broker.BrokerService(broker.GRPCBroker(tls=broker_tls, settings=settings))
    running.own_streams.append(broker_service.close)
    services: dict[str, Mapping[str, grpc.RpcMethodHandler[Any, Any]]] = {
        health.SERVICE_NAME: health.HealthService().methods(),
        controller.SERVICE_NAME: controller.ControllerService(running.stop.set).methods(),
        stdio.SERVICE_NAME: stdio.StdioService(stdio_buffer).methods(),
        broker.SERVICE_NAME: broker_service.methods(),
    }
    methods = {
        f"/{service}/{method}": handler
        for service, handlers in services.items()
        for method, handler in handlers.items()
    }
    return methods, broker_service.broker


async def start_server(
    server: grpc.aio.Server,
    settings: PluginSettings,
    running: RunningServer,
    tls: ServerTLS | None,
) -> Endpoint:
    """Listen where ``settings`` say and start ``server``, with ``current_broker()`` bound for
    its handlers; returns the endpoint (also ``running.endpoint``)."""
    from ..services import goplugin

    endpoint = running.endpoint = await running.listeners.listen(server, settings, tls)
    running.tls = "off" if tls is None else tls.backend
    assert running.services is not None, "build_server() first"
    # current_broker() in every handler of the server (the broker is made when it is first used)
    token = goplugin.bind(running.services.broker_cell)
    try:
        await server.start()
    finally:
        goplugin.unbind(token)
    return endpoint


def _tls_plan(settings: PluginSettings) -> ServerTLS | None:
    """The TLS of the plugin's listener for the host's certificate, or None for plaintext."""
    if settings.client_cert_pem is None:
        return None
    import ssl

    from .._wire import der, early_cert

    source = "PLUGIN_CLIENT_CERT (the host's AutoMTLS certificate)"
    host_ders = der.ders_of_pem(settings.client_cert_pem, source=source)
    der.check_validity(host_ders, source=source)
    backend: Backend
    if len(host_ders) > 1:
        # grpcio's TLS (like OpenSSL without partial chains) looks a self-signed client
        # certificate up by its subject and tries only the first of several with the same
        # name; the relay trusts each exactly, as go-plugin does
        if settings.tls_backend == "grpc":
            raise ConfigError(
                "RPCPLUGIN_TLS_BACKEND",
                "grpc",
                f"grpcio's TLS cannot trust all {len(host_ders)} certificates of "
                "PLUGIN_CLIENT_CERT; use 'auto' or 'openssl'",
            )
        backend = "openssl"
    else:
        backend = choose_backend_for_key(
            settings.tls_backend,
            der.key_description(host_ders[0]),
            lambda key: ConfigError(
                "RPCPLUGIN_TLS_BACKEND",
                "grpc",
                f"grpcio's TLS cannot verify the host's {key} key; use 'auto' or 'openssl'",
            ),
        )
    early_cert.start()  # a no-op when guard_stdout() started it already
    identity = early_cert.collect()
    if identity is None:
        from .._wire import mtls

        identity = mtls.generate_certificate()
    trusted = "".join(ssl.DER_cert_to_PEM_cert(host_der) for host_der in host_ders)
    return ServerTLS(backend, identity, trusted.encode("ascii"))


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


LIBRARY_LOGGERS = ("grpc", "asyncio", "google", "opentelemetry", "urllib3", "concurrent", "h2")
"""Loggers of the libraries a plugin runs on, kept at ``RPCPLUGIN_LIBRARY_LOG_LEVEL``."""


class PeerGoneFilter(logging.Filter):
    """grpc logs at ERROR a server stream's send that failed because the client had just
    cancelled (it checks for the cancel first, but on a loaded machine sees the failed send
    before it). A peer that went away is not the plugin's error: the record becomes DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(
            "ExecuteBatchError raised in core"
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _configure_logging(settings: PluginSettings) -> None:
    """hclog lines on the real fd 2 for the runtime's logs, and for the plugin's own logs unless
    it configured logging itself."""
    level = hclog.level_number(settings.log_level)
    handler = hclog.StderrHandler(json_lines=settings.log_format == "json")
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
        root.setLevel(level)
        # the root's level reaches every library's loggers too: grpc alone logs a debug line
        # per call; they get their own (RPCPLUGIN_LIBRARY_LOG_LEVEL), unless set already
        for name in LIBRARY_LOGGERS:
            library = logging.getLogger(name)
            if library.level == logging.NOTSET:
                library.setLevel(hclog.level_number(settings.library_log_level))
    core = logging.getLogger("grpc._cython.cygrpc")
    if not any(isinstance(f, PeerGoneFilter) for f in core.filters):
        core.addFilter(PeerGoneFilter())
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
    import json

    text = json.dumps(config)
    print(text, flush=True)
    print(
        f"[INFO] plugin {name!r} serving in debug mode; attach with "
        f"TF_REATTACH_PROVIDERS='{text}' or rpcplugin.reattach(...). Ctrl-C stops it.",
        file=sys.stderr,
        flush=True,
    )
