"""The pool suite's commands in the ``ours`` worker (:mod:`bench.worker` hands them over).

Every subject is called through :class:`rpcplugin.calls.Caller`, the path generated clients
take (for a pool: its per-call ``pick_channel``), so one plugin, pools and gRPC's round_robin
channel are compared on the same client code::

    {"op": "pool_open", "sid": S, "kind": "single|pool|rr", "size": N, "transport": "unix|tcp",
     "of": SID}                      (rr: a round_robin channel over the members of pool SID)
        -> {"pids": [...]}
    {"op": "pool_calibrate", "ms": M}            -> {"iterations": I}   (~M ms of Hash work)
    {"op": "pool_hash", "sid": S, "n": N, "conc": C, "iterations": I}  -> {"seconds": s}
    {"op": "pool_unary", "sid": S, "n": N}       -> {"lat": [s, ...]}
    {"op": "pool_close", "sid": S}               -> {}
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

PLUGINS = Path(__file__).resolve().parent / "plugins"
ECHO = "/conformance.v1.Conformance/Echo"
HASH = "/bench.Work/Hash"
WARMUP = 20


def digest(iterations: int) -> str:
    """What ``plugins/pooled.py`` does per Hash call (kept in step with it)."""
    value = b"\0" * 32
    sha256 = hashlib.sha256
    for _ in range(iterations):
        value = sha256(value).digest()
    return value.hex()


class PoolSession:
    def __init__(self, target: Any, pb: Any, close: Callable[[], Awaitable[None]]) -> None:
        from rpcplugin.calls import Caller, Method, RpcKind

        self.target = target
        self.caller = Caller(target)
        self.echo = Method(ECHO, RpcKind.UNARY, pb.EchoRequest, pb.EchoReply)
        self.hash = Method(HASH, RpcKind.UNARY, pb.EchoRequest, pb.EchoReply)
        self.pb = pb
        self.close = close


class PoolCommands:
    def __init__(self, env: dict[str, str], pb: Any) -> None:
        import rpcplugin

        self.rpcplugin = rpcplugin
        self.env = env
        self.pb = pb
        self.sessions: dict[str, PoolSession] = {}

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "pool_open":
            return await self.open(cmd)
        if op == "pool_calibrate":
            return {"iterations": calibrate(float(cmd["ms"]))}
        if op == "pool_close":
            await self.sessions.pop(cmd["sid"]).close()
            return {}
        session = self.sessions[cmd["sid"]]
        if op == "pool_hash":
            seconds = await self.hash(
                session, int(cmd["n"]), int(cmd["conc"]), int(cmd["iterations"])
            )
            return {"seconds": seconds}
        if op == "pool_unary":
            return {"lat": await self.unary(session, int(cmd["n"]))}
        raise ValueError(f"unknown op {op!r}")

    async def open(self, cmd: dict[str, Any]) -> dict[str, Any]:
        rpcplugin = self.rpcplugin
        kind, sid = cmd["kind"], cmd["sid"]
        env = dict(self.env)
        env["RPCPLUGIN_TRANSPORT"] = cmd.get("transport", "unix")
        options: dict[str, Any] = {
            "handshake": rpcplugin.Handshake("RPCPLUGIN_BENCH", "bench-v1"),
            "versions": [1],
            "name": "bench",
            "env": env,
            "auto_mtls": False,
            "unix_socket_dir": env["PLUGIN_UNIX_SOCKET_DIR"],
        }
        argv = [sys.executable, str(PLUGINS / "pooled.py")]
        target: Any
        if kind == "single":
            target = await rpcplugin.launch(argv, **options)
            pids = [target.pid]
            close = target.close
        elif kind == "pool":
            target = await rpcplugin.launch_pool(argv, size=int(cmd["size"]), **options)
            pids = [m.pid for m in target.members()]
            close = target.close
        elif kind == "rr":
            members = self.sessions[cmd["of"]].target.members()
            addresses = [m.address.removeprefix("tcp:") for m in members]
            target = await rpcplugin.connect_balanced(addresses, name="bench-rr")
            pids = [m.pid for m in members]
            close = target.close
        else:
            raise ValueError(f"unknown kind {kind!r}")
        session = PoolSession(target, self.pb, close)
        # every member connected (round_robin connects its subchannels lazily) and warm
        request = self.pb.EchoRequest(text="warm")
        await asyncio.gather(*(session.caller.unary(session.echo, request) for _ in range(16)))
        self.sessions[sid] = session
        return {"pids": pids}

    async def hash(self, session: PoolSession, n: int, conc: int, iterations: int) -> float:
        request = self.pb.EchoRequest(text=str(iterations))
        expected = digest(iterations)
        left = n

        async def loop() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                reply = await session.caller.unary(session.hash, request, timeout=300)
                if reply.text != expected:
                    raise RuntimeError("Hash answered a wrong digest")

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(conc)))
        return time.perf_counter() - started

    async def unary(self, session: PoolSession, n: int) -> list[float]:
        request = self.pb.EchoRequest(text="ping")
        call = session.caller.unary
        method = session.echo
        for _ in range(WARMUP):
            await call(method, request)
        clock = time.perf_counter
        out = []
        for _ in range(n):
            started = clock()
            await call(method, request)
            out.append(clock() - started)
        return out

    async def shutdown(self) -> None:
        # round_robin channels first: they ride on the pools' members
        for sid in sorted(self.sessions, key=lambda s: not s.startswith("rr")):
            await self.sessions.pop(sid).close()


def calibrate(ms: float) -> int:
    """Iterations of :func:`digest` that take ``ms`` of this process's CPU time (the plugin
    runs the same Python on the same machine)."""
    iterations = 1000
    while True:
        started = time.process_time()
        digest(iterations)
        spent = time.process_time() - started
        if spent >= 0.05 or iterations >= 10_000_000:
            return max(1, int(iterations * ms / 1000 / spent))
        iterations *= 4
