"""A supervised pool of launched plugin processes behind one typed client.

::

    async with rpcplugin.launch_pool(["./hash-plugin"], size=4, handshake=HS, versions=[1]) as pool:
        client = HashClient(pool)        # any generated client takes the pool
        await asyncio.gather(*(client.digest(req) for req in requests))
        print(pool.members())            # index, pid, state, restarts, calls of each member

A Python plugin runs its handlers on one core (the GIL); a pool runs ``size`` copies of it, each
launched as :func:`rpcplugin.launch` does (its own handshake, AutoMTLS certificate, socket
directory and bounded close), and spreads calls over the members that are alive and SERVING.

**Balancing.** Each member keeps its own channel, and a small picker chooses a member per
call: generated clients ask the pool (:meth:`PluginPool.pick_channel`, the
:class:`rpcplugin.calls.ChannelPicker` seam) once per unary call and once per stream, so a
stream stays on the member it started on. It picks the member with the fewest calls in flight
(lowest index on a tie): concurrent calls spread over every member, and calls made one after
another stay on one warm process, as fast as with a single plugin. gRPC's own ``round_robin``
over one channel (what :func:`rpcplugin.connect_balanced` uses for a fixed set of network
servers) does not fit launched members: grpcio resolves one unix socket per target, the OpenSSL
relay a Go plugin needs terminates TLS per member, each member pins its own certificate, and a
relaunched member comes back at a new address, which grpcio's Python API cannot add to a live
channel. The picker costs about a microsecond per call (docs/pool.md has the measurements).

**Supervision.** A member's exit is noticed at once (the launched connection's pidfd watch): it
leaves the rotation before its next call is picked, the calls in flight on it fail with
:class:`rpcplugin.PluginExitedDuringCall` (exit status and stderr tail), the other members keep
serving, and it is relaunched: at once the first time, then after a backoff that doubles up to
``max_backoff``. A member relaunched ``max_restarts`` times within ``restart_window`` seconds is
given up: its state becomes ``failed`` and the pool reports itself :attr:`~PluginPool.degraded`
(it keeps serving from the others). A member whose ``grpc.health.v1`` watch reports anything but
SERVING leaves the rotation until it reports SERVING again.

``close()`` (or leaving ``async with``) closes every member concurrently, so it takes what one
plugin's close takes (Shutdown, 2 s grace, SIGKILL, reap), and no process, socket or directory
is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, Unpack, final

import grpc

from ..errors import ConfigError, PluginError, PluginExitedError, TransportError
from ..handshake import Handshake
from ..lifecycle import AsyncClosable
from ..plugin_name import from_argv as plugin_name_from_argv
from ..services import health as health_service
from .connection import ConnectionClosedDuringCall, PluginConnection, PluginExitedDuringCall
from .launcher import LaunchOptions, LaunchSettings, start_plugin
from .opening import Opening

if TYPE_CHECKING:
    from ..calls import HasChannel

__all__ = ["MemberInfo", "MemberState", "PluginPool", "RestartPolicy", "launch_pool"]

log = logging.getLogger("rpcplugin.pool")

MemberState = Literal["starting", "serving", "not_serving", "backoff", "failed", "closed"]
"""``starting``: being (re)launched; ``serving``: in the rotation; ``not_serving``: alive but
its health watch says otherwise; ``backoff``: exited, waiting to be relaunched; ``failed``:
given up after too many restarts; ``closed``: the pool was closed."""

_CONNECTION_LOST: Final = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL}
)
"""The codes a call gets when the process serving it dies (INTERNAL: a write that failed)."""
RETIRE_WAIT: Final = 2.0
"""Seconds a dead member's channel is kept open at most for gRPC to fail its calls."""
RETIRE_GRACE: Final = 0.1
"""Seconds its failed calls get to reach their callers once the channel saw the break."""
WATCH_RETRY: Final = 0.5
"""Seconds before a broken health watch of a live member is started again."""


_Opener: TypeAlias = Callable[[str], Awaitable[PluginConnection]]
"""Launches one member process (given its name) with the pool's ``launch()`` arguments."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a pool relaunches members that exit.

    The first relaunch is immediate; each further one within ``window`` seconds waits twice as
    long as the one before, starting at ``initial_backoff`` and capped at ``max_backoff``. The
    ``max_restarts``-th relaunch within ``window`` seconds is the last: a member that exits
    again is given up (``failed``) and the pool is :attr:`~PluginPool.degraded`.
    ``max_restarts=0`` never relaunches.
    """

    max_restarts: int = 5
    window: float = 60.0
    initial_backoff: float = 0.1
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ConfigError("max_restarts", self.max_restarts, "a whole number >= 0")
        for name in ("window", "initial_backoff", "max_backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(name, value, "a number of seconds >= 0")

    def delay(self, recent: int) -> float:
        """Seconds to wait before a relaunch, after ``recent`` relaunches within the window."""
        if recent <= 0:
            return 0.0
        return float(min(self.max_backoff, self.initial_backoff * 2 ** (recent - 1)))


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member of a pool, as :meth:`PluginPool.members` reports it."""

    index: int
    name: str
    """``<pool name>#<index>``: the name its logs and metrics carry."""
    state: MemberState
    pid: int | None
    """The current process (None while none runs)."""
    address: str
    """Where the current process listens (``unix:/path`` or ``tcp:host:port``), or ""."""
    tls: str
    """How the pool talks to it: ``off``, ``grpc`` or ``openssl`` (the relay), or ""."""
    restarts: int
    """Relaunches so far (successful or not)."""
    calls: int
    """Calls (and streams) the pool has sent to this member, over all its processes."""
    in_flight: int
    """Calls (and streams) running on its current process."""
    returncode: int | None
    """Exit status of its last process that exited (negative: killed by that signal)."""


@final
class _Route:
    """One member process as a call target: its channel, and the explanation of a failed call.

    A new route is made for every process of a member, so a call that picked this one is
    explained by the process it went to, even after the member was relaunched."""

    __slots__ = ("channel", "conn", "died", "in_flight", "member", "serving")

    def __init__(self, member: _Member, conn: PluginConnection) -> None:
        self.member = member
        self.conn = conn
        self.channel: grpc.aio.Channel = conn.channel
        self.serving = True
        self.died = False
        self.in_flight = 0

    def usable(self) -> bool:
        return self.serving and not self.died and not self.conn.exited

    def track(self, call: grpc.aio.Call) -> None:
        """Count ``call`` in flight here until it ends (generated clients call this)."""
        self.in_flight += 1
        call.add_done_callback(self._ended)

    def _ended(self, call: object) -> None:
        self.in_flight -= 1

    def closed_error(self, in_flight: bool) -> PluginError | None:
        """The connection's :meth:`PluginConnection.closed_error` (generated clients call it)."""
        if in_flight and self.member.pool.closing:
            return ConnectionClosedDuringCall(self.member.name)
        return self.conn.closed_error(in_flight)

    async def explain_failure(self, error: grpc.aio.AioRpcError) -> BaseException | None:
        """A :class:`PluginExitedDuringCall` when this member's process died under the call."""
        if error.code() not in _CONNECTION_LOST:
            return None
        if self.member.pool.closing or self.conn.closing:
            return ConnectionClosedDuringCall(self.member.name, error)
        if not self.died:
            better = await self.conn.explain_failure(error)  # waits briefly for the exit notice
            if better is not None or not self.conn.exited:
                return better
        exited = PluginExitedError(
            f"pool member {self.member.name!r} (pid {self.conn.pid}) exited during a call",
            returncode=self.conn.returncode,
            stderr_tail=self.conn.stderr_tail(),
        )
        return PluginExitedDuringCall(exited, error)


class _Member:
    def __init__(self, pool: PluginPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.name = f"{pool.name}#{index}"
        self.state: MemberState = "starting"
        self.route: _Route | None = None
        self.restarts = 0
        self.recent: list[float] = []
        """When its relaunches within the restart window started."""
        self.calls = 0
        self.returncode: int | None = None
        self.task: asyncio.Task[None] | None = None

    def info(self) -> MemberInfo:
        conn = self.route.conn if self.route is not None else None
        alive = conn is not None and not conn.exited
        return MemberInfo(
            index=self.index,
            name=self.name,
            state=self.state,
            pid=conn.pid if conn is not None and alive else None,
            address=str(conn.endpoint) if conn is not None and alive else "",
            tls=conn.tls if conn is not None and alive else "",
            restarts=self.restarts,
            calls=self.calls,
            in_flight=self.route.in_flight if self.route is not None else 0,
            returncode=self.returncode,
        )


@final
class PluginPool(AsyncClosable):
    """``size`` launched copies of one plugin behind one connection object.

    Generated clients take it (``KVClient(pool)``) and pick a member per call. Made by
    :func:`launch_pool`; ``close()`` (or leaving ``async with``) ends every member.
    """

    def __init__(
        self,
        name: str,
        size: int,
        opener: _Opener,
        restart: RestartPolicy,
        health_watch: bool,
    ) -> None:
        self.name: Final = name
        self.size: Final = size
        self.restart: Final = restart
        self._opener = opener
        self._health_watch = health_watch
        self._members = [_Member(self, i) for i in range(size)]
        self._rotation: list[_Route] = []
        self._changed = asyncio.Event()
        self._cleanups: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self.closing = False
        """True once :meth:`close` has begun."""

    # -- what it is ----------------------------------------------------------------------
    def members(self) -> list[MemberInfo]:
        """Every member: index, name, state, pid, address, restarts, calls, last exit status."""
        return [member.info() for member in self._members]

    @property
    def serving(self) -> int:
        """How many members are in the rotation now."""
        return sum(1 for route in self._rotation if route.usable())

    @property
    def degraded(self) -> bool:
        """Whether a member was given up after too many restarts (the others still serve)."""
        return any(member.state == "failed" for member in self._members)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel of one serving member, picked as for a call. Generated clients do not
        use it (they pick per call); code that keeps a plain channel, such as a
        ``grpc_tools`` stub, stays on that one member and fails when it exits."""
        return self._pick().channel

    def pick_channel(self) -> HasChannel:
        """The member for one call: of those alive and SERVING, the one with the fewest calls
        in flight, the lowest index on a tie (so calls made one after another stay on one warm
        process, and concurrent ones spread). What generated clients call
        (:class:`rpcplugin.calls.ChannelPicker`); ``TransportError`` when no member can take
        a call."""
        route = self._pick()
        route.member.calls += 1
        return route

    def _pick(self) -> _Route:
        best: _Route | None = None
        for route in self._rotation:
            if (best is None or route.in_flight < best.in_flight) and route.usable():
                best = route
                if not route.in_flight:
                    break
        if best is None:
            raise TransportError(self._unavailable())
        return best

    def _unavailable(self) -> str:
        if self.closing:
            return f"plugin pool {self.name!r} is closed"
        return f"no member of plugin pool {self.name!r} is serving ({self._states()})"

    def _states(self) -> str:
        return ", ".join(f"{m.name} {m.state}" for m in self._members)

    async def wait_serving(self, count: int | None = None, timeout: float = 60.0) -> None:
        """Wait until ``count`` members (default: all that are not ``failed``) are serving;
        ``TransportError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            wanted = (
                count if count is not None else sum(1 for m in self._members if m.state != "failed")
            )
            if self.serving >= wanted:
                return
            if self.closing:
                raise TransportError(self._unavailable())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError(
                    f"{self.serving} of {wanted} members of plugin pool {self.name!r} serving "
                    f"after {timeout:g} s ({self._states()})"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _notify(self) -> None:
        self._rotation = [
            m.route for m in self._members if m.route is not None and m.state == "serving"
        ]
        self._changed.set()
        self._changed = asyncio.Event()

    # -- supervision ---------------------------------------------------------------------
    async def _start(self) -> None:
        """Launch every member; if any fails, undo the others and raise its error."""
        launches = [asyncio.ensure_future(self._opener(m.name)) for m in self._members]
        try:
            await asyncio.gather(*launches)
        except BaseException:
            for task in launches:
                task.cancel()
            for task in launches:
                with contextlib.suppress(BaseException):
                    await task
            for task in launches:
                if task.done() and not task.cancelled() and task.exception() is None:
                    await task.result().close()
            raise
        for member, task in zip(self._members, launches, strict=True):
            member.task = asyncio.ensure_future(self._supervise(member, task.result()))

    async def _supervise(self, member: _Member, conn: PluginConnection) -> None:
        """Serve from ``conn`` until it exits, relaunch it, repeat; until given up or closed."""
        while True:
            route = _Route(member, conn)
            exited = asyncio.ensure_future(conn.wait_exit())
            exited.add_done_callback(functools.partial(self._on_exit, route))
            member.route = route
            member.state = "serving"
            self._notify()
            watch = asyncio.ensure_future(self._watch(route)) if self._health_watch else None
            try:
                member.returncode = await asyncio.shield(exited)
            finally:
                if watch is not None:
                    watch.cancel()
                    with contextlib.suppress(BaseException):
                        await watch
                if not exited.done():
                    exited.cancel()
            self._retire(conn)
            next_conn = await self._relaunch(member)
            if next_conn is None:
                return
            conn = next_conn

    def _on_exit(self, route: _Route, notice: asyncio.Future[int]) -> None:
        """At once, from the exit notice: out of the rotation before the next call is picked."""
        if notice.cancelled():
            return  # the supervisor stopped watching (the pool is closing)
        route.died = True
        member = route.member
        if member.route is route and not self.closing:
            member.state = "backoff"
            self._notify()

    async def _relaunch(self, member: _Member) -> PluginConnection | None:
        """A new process for ``member`` within the restart budget, or None (given up)."""
        policy = self.restart
        while True:
            now = time.monotonic()
            member.recent = [t for t in member.recent if now - t < policy.window]
            if len(member.recent) >= policy.max_restarts:
                member.state = "failed"
                member.route = None
                self._notify()
                log.error(
                    "plugin pool %r: member %s exited (exit status %s) after %d relaunches "
                    "within %g s; giving it up, the pool is degraded",
                    self.name,
                    member.name,
                    member.returncode,
                    len(member.recent),
                    policy.window,
                )
                return None
            delay = policy.delay(len(member.recent))
            log.warning(
                "plugin pool %r: member %s exited (exit status %s); relaunching it%s",
                self.name,
                member.name,
                member.returncode,
                f" in {delay:g} s" if delay else "",
            )
            member.state = "backoff"
            self._notify()
            if delay:
                await asyncio.sleep(delay)
            member.recent.append(time.monotonic())
            member.restarts += 1
            member.state = "starting"
            self._notify()
            try:
                return await self._opener(member.name)
            except PluginError as exc:
                log.warning(
                    "plugin pool %r: relaunch of %s failed: %s", self.name, member.name, exc
                )
            except Exception:  # a bug, not the plugin: counted against the budget all the same
                log.exception("plugin pool %r: relaunch of %s failed", self.name, member.name)

    async def _watch(self, route: _Route) -> None:
        """Follow the member's ``grpc.health.v1.Health/Watch`` for ``plugin``: anything but
        SERVING takes it out of the rotation until it serves again."""
        method: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = route.channel.unary_stream(
            f"/{health_service.SERVICE_NAME}/Watch"
        )
        while not route.died and not route.conn.exited:
            try:
                async for raw in method(health_service.encode_request("plugin")):
                    serving = health_service.decode_response(raw) == health_service.SERVING
                    if serving != route.serving:
                        route.serving = serving
                        member = route.member
                        if member.route is route and member.state in ("serving", "not_serving"):
                            member.state = "serving" if serving else "not_serving"
                            log.warning(
                                "plugin pool %r: member %s reports %s",
                                self.name,
                                member.name,
                                "SERVING" if serving else "not SERVING",
                            )
                            self._notify()
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return  # a plugin without Watch: its start-up Check said SERVING
            await asyncio.sleep(WATCH_RETRY)

    def _retire(self, conn: PluginConnection) -> None:
        """Close a dead member's connection once its calls have failed by themselves."""
        task = asyncio.ensure_future(self._close_when_broken(conn))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _close_when_broken(self, conn: PluginConnection) -> None:
        """The calls in flight on a dead member fail by themselves (UNAVAILABLE, explained as
        :class:`PluginExitedDuringCall`) once gRPC sees the connection break; closing the
        channel before that would cancel them instead (``CancelledError`` in the caller's task).
        So wait for the channel to leave READY (at most :data:`RETIRE_WAIT` seconds, or until
        the pool closes), give the failures a moment to reach their callers, then close."""
        channel = conn.channel
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            deadline = time.monotonic() + RETIRE_WAIT
            while channel.get_state() == grpc.ChannelConnectivity.READY and not closing.done():
                changed = asyncio.ensure_future(
                    channel.wait_for_state_change(grpc.ChannelConnectivity.READY)
                )
                await asyncio.wait(
                    {changed, closing},
                    timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                changed.cancel()
                if time.monotonic() >= deadline:
                    break
            if not closing.done():
                await asyncio.wait({closing}, timeout=RETIRE_GRACE)
        finally:
            closing.cancel()
            await conn.close()

    def _cleanup(self, conn: PluginConnection) -> None:
        """Close ``conn`` in a task :meth:`close` waits for (so cancelling a supervisor can
        never interrupt a reap half way)."""
        task = asyncio.ensure_future(conn.close())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    # -- lifecycle -----------------------------------------------------------------------
    async def close(self) -> None:
        """Close every member concurrently, in the bounded time of one plugin's close
        (Shutdown with a 1 s deadline, 2 s to exit, SIGKILL, reap); also stops relaunches in
        progress. Nothing is left behind."""
        if self.closing:
            await self._drain_cleanups()
            return
        self.closing = True
        self._closed.set()
        tasks = [m.task for m in self._members if m.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for member in self._members:
            if member.route is not None:
                self._cleanup(member.route.conn)  # (closing a closed connection does nothing)
            member.state = "closed"
        self._notify()
        await self._drain_cleanups()

    async def _drain_cleanups(self) -> None:
        while self._cleanups:
            await asyncio.gather(*list(self._cleanups), return_exceptions=True)

    def __repr__(self) -> str:
        return f"<PluginPool {self.name!r} size={self.size} serving={self.serving}>"


def launch_pool(
    cmd: Sequence[str] | str,
    *,
    size: int,
    handshake: Handshake,
    versions: Sequence[int],
    restart: RestartPolicy | None = None,
    health_watch: bool = True,
    **settings: Unpack[LaunchSettings],
) -> Opening[PluginPool]:
    """Launch ``size`` copies of a plugin and return one :class:`PluginPool` over them.

    Await it, or use it as ``async with`` (which closes the pool). Every member is launched as
    :func:`rpcplugin.launch` launches one plugin, with the same keyword arguments (the fields of
    :class:`rpcplugin.LaunchOptions`), named ``<name>#<index>`` in logs and metrics; all share
    one ``logger`` (default ``rpcplugin.plugin.<name>``), and every member is health-checked
    when it starts (``health_check=False`` is refused). The pool is returned when every member
    is up and healthy; if one fails to start, the others are closed and its error is raised.

    ``restart`` (:class:`RestartPolicy`) says how members that exit are relaunched;
    ``health_watch`` follows each member's ``grpc.health.v1`` Watch so that one reporting
    anything but SERVING takes no calls (plugins without Watch are trusted on their start-up
    check). ``metrics`` counts calls per member (their ``plugin`` is the member's name) and
    every (re)start.
    """
    argv = [cmd] if isinstance(cmd, str) else list(cmd)
    if not argv:
        raise ConfigError("cmd", cmd, "a non-empty argv")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError("size", size, "a whole number of members, at least 1")
    if settings.get("health_check") is False:
        raise ConfigError(
            "health_check", False, "True: a pool puts a member in its rotation once it is healthy"
        )
    pool_name = settings.get("name") or plugin_name_from_argv(argv)
    policy = restart if restart is not None else RestartPolicy()
    options = LaunchOptions(handshake=handshake, versions=tuple(versions), **settings)
    options = dataclasses.replace(
        options, logger=options.logger or logging.getLogger(f"rpcplugin.plugin.{pool_name}")
    )

    async def opener(member_name: str) -> PluginConnection:
        return await start_plugin(argv, dataclasses.replace(options, name=member_name))

    async def open_pool() -> PluginPool:
        pool = PluginPool(pool_name, size, opener, policy, health_watch)
        await pool._start()
        return pool

    return Opening(open_pool)
