"""``PluginConnection``: one connected plugin (launched, reattached or dialled directly), and
the error a call gets when the plugin process died under it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
import weakref
from typing import Literal

import grpc

from .._wire import dial
from .._wire.transport import Endpoint
from ..errors import (
    ConnectionClosedError,
    PluginError,
    PluginExitedError,
    SecurityError,
    TransportError,
)
from ..handshake import HandshakeLine
from ..lifecycle import AsyncClosable
from ..services import controller, health
from ..services.broker import HostBroker
from .process import PluginProcess
from .sinks import StdioSink, copy_stdio, sink_writer
from .sockets import kill_foreign, remove_stale_socket
from .watchdog import WATCHDOG

log = logging.getLogger("rpcplugin.host")

GRPC_TLS_FAILURE = re.compile(
    r"(tls|ssl) handshake failed|SSL_ERROR|CERTIFICATE_VERIFY_FAILED|TSI_PROTOCOL_FAILURE"
    r"|verification check failed",
    re.I,
)
"""How grpcio's own TLS reports a failed handshake in an UNAVAILABLE status's details."""

EXIT_NOTICE_WAIT = 0.25
"""Seconds a failed call waits for a launched plugin's exit notice before it is reported as is."""
KILL_WAIT = 2.0
"""Seconds a plugin gets to exit after Shutdown before it is SIGKILLed (go-plugin's value)."""
SHUTDOWN_TIMEOUT = 1.0
"""Deadline of the Shutdown call itself: a wedged plugin cannot hold close() up longer."""
CONNECTION_LOST_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL}
)
"""Codes a call gets when the connection under it went away."""


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


class ConnectionClosedDuringCall(ConnectionClosedError, grpc.aio.AioRpcError):
    """A call was in flight when the host closed its connection: a
    :class:`~rpcplugin.ConnectionClosedError`, and an ``AioRpcError`` with code CANCELLED and
    ``connection closed by the host`` in its details, so that ``except PluginError`` and
    ``except grpc.RpcError`` both catch it (never a bare ``asyncio.CancelledError``)."""

    def __init__(self, name: str, error: grpc.aio.AioRpcError | None = None) -> None:
        message = f"connection closed by the host: plugin {name!r} was closed during the call"
        grpc.aio.AioRpcError.__init__(
            self,
            grpc.StatusCode.CANCELLED,
            error.initial_metadata() if error is not None else grpc.aio.Metadata(),
            error.trailing_metadata() if error is not None else grpc.aio.Metadata(),
            message,
            error.debug_error_string() if error is not None else None,
        )
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


def closed_error(name: str, in_flight: bool) -> ConnectionClosedError:
    """The error of a call cut by the host's close (``in_flight``), or made after it."""
    if in_flight:
        return ConnectionClosedDuringCall(name)
    return ConnectionClosedError(
        f"plugin {name!r}: the connection was closed by the host; no call can be made on it "
        "any more"
    )


_open: weakref.WeakSet[PluginConnection] = weakref.WeakSet()


def open_connections() -> list[PluginConnection]:
    """Every connection of this process not yet closed (launched, reattached or direct)."""
    return [conn for conn in list(_open) if not conn.closing]


class PluginConnection(AsyncClosable):
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
        self.handshake_line: HandshakeLine | None = None
        """A launched plugin's parsed handshake line (its certificate: ``server_cert_der``)."""
        if process is not None:
            process.exited.add_done_callback(self._on_exit)
        _open.add(self)

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
    def closing(self) -> bool:
        """Whether ``close()`` (or ``abort()``/``detach()``) has begun."""
        return self._closing

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
        if error.code() not in CONNECTION_LOST_CODES:
            return None
        if self._closing:
            return ConnectionClosedDuringCall(self.name, error)
        if self._process is None:
            return None
        if not await self._process.wait(EXIT_NOTICE_WAIT):
            return None
        await self._process.drain_stderr(0.2)
        exited = self._process.exit_error("during a call")
        return PluginExitedDuringCall(exited, error)

    def closed_error(self, in_flight: bool) -> ConnectionClosedError | None:
        """Called by generated clients before a call (``in_flight=False``) and when one ends
        cancelled although its task was not (``in_flight=True``): once ``close()`` has begun,
        the documented error to raise instead of grpc's ``UsageError`` or a bare
        ``asyncio.CancelledError``; None while the connection is open."""
        return closed_error(self.name, in_flight) if self._closing else None

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
        if self.tls == "grpc" and GRPC_TLS_FAILURE.search(exc.details() or ""):
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

    def start_streams(self, stdout: StdioSink | None, stderr: StdioSink | None) -> None:
        """H05: the stdio stream and the broker stream, right after connecting (the openers
        call this; ``None`` sinks mean this process's own stdout and stderr)."""
        loop = asyncio.get_running_loop()
        copy = copy_stdio(
            self.channel, sink_writer(stdout, sys.stdout), sink_writer(stderr, sys.stderr)
        )
        self._tasks.append(loop.create_task(copy))
        self._tasks.append(loop.create_task(self.broker.run(self.channel)))

    async def abort(self) -> None:
        """Close at once: a launched plugin is SIGKILLed without Shutdown, as go-plugin does
        when ``Start`` fails (what a failed launch does)."""
        await self._close(graceful=False)

    async def detach(self) -> None:
        """Close the channel and streams but leave the process alone, whatever the mode (what
        a failed attach does: somebody else's plugin must not be stopped)."""
        self._test = True
        await self._close(graceful=True)

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
        if self._dialed.relay_dir is not None:
            WATCHDOG.remove_path(self._dialed.relay_dir)
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._process is not None:
            if not await self._process.wait(KILL_WAIT):
                log.warning(
                    "plugin %r did not exit %g s after Shutdown; killing it", self.name, KILL_WAIT
                )
            await self._process.aclose()
            remove_stale_socket(self.endpoint)
        elif self.mode == "reattached" and not self._test and self._pid:
            await kill_foreign(self._pid, KILL_WAIT)
        _open.discard(self)

    def __repr__(self) -> str:
        return (
            f"<PluginConnection {self.name!r} v{self.version} {self.endpoint} tls={self.tls} "
            f"pid={self.pid} {self.mode}>"
        )
