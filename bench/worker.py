"""The host side of one implementation, as a long-lived process the suite drives.

``python -m bench.worker IMPL`` with IMPL ``ours`` (rpcplugin.launch), ``bare`` (spawn, read one
line, dial) or ``pyvider`` (pyvider-rpcplugin's client, run from its own venv). It reads one JSON
command per line on stdin and answers one JSON line on the stdout it was started with (anything
else that prints goes to stderr). Keeping the host warm means a cold-start sample measures the
plugin's start, not the host's imports; running every implementation in its own process keeps
their imports and garbage apart.

Commands (``sid`` names a session, i.e. one launched plugin)::

    {"op": "open", "sid": S, "tls": "off|on|plugin-relay|host-relay"}
        -> {"start": s, "line": s|null, "cpu": s, "pid": P}   (exec -> first Echo answered)
    {"op": "rss", "sid": S, "settle": s}        -> {"rss": bytes}
    {"op": "unary", "sid": S, "n": N, "client": "raw|typed"}   -> {"lat": [s, ...], CPU}
    {"op": "inflight", "sid": S, "n": N, "conc": C, "client": ...}  -> {"seconds": s, CPU}
    {"op": "stream", "sid": S, "n": N, "size": B, "client": ...}    -> {"seconds": s, CPU}
        (CPU: "cpu_host", "cpu_plugin": CPU seconds of the host worker and of the plugin,
        all threads, during the timed part)
    {"op": "close", "sid": S}                   -> {"close": s, "gone": bool}
    {"op": "pool_...", ...}                     (ours only: bench/pool_worker.py)
    {"op": "quit"}

Errors come back as ``{"error": "..."}``; the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

PLUGINS = Path(__file__).resolve().parent / "plugins"
ECHO = "/conformance.v1.Conformance/Echo"
COUNT = "/conformance.v1.Conformance/Count"
WARMUP = 20


def task_cpu(pid: int) -> float:
    """CPU seconds of every thread of ``pid`` so far, from ``schedstat`` (ns resolution)."""
    total = 0
    base = Path(f"/proc/{pid}/task")
    try:
        tasks = list(base.iterdir())
    except OSError:
        return float("nan")
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9


def plugin_rss(pid: int) -> int:
    """Resident set size in bytes (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def gone(pid: int) -> bool:
    """Whether the process no longer exists (reaped; a zombie counts as not gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "X"


class Calls:
    """The two calls the suite makes, given a channel; ``typed`` uses a generated client
    (whose messages come from the generated package, ``typed_pb``)."""

    def __init__(self, channel: Any, pb: Any, typed: Any | None, typed_pb: Any | None) -> None:
        self.pb = pb
        self.echo = channel.unary_unary(
            ECHO,
            request_serializer=pb.EchoRequest.SerializeToString,
            response_deserializer=pb.EchoReply.FromString,
        )
        self.count = channel.unary_stream(
            COUNT,
            request_serializer=pb.CountRequest.SerializeToString,
            response_deserializer=pb.CountReply.FromString,
        )
        self.typed = typed
        self.typed_pb = typed_pb

    def messages(self, client: str) -> Any:
        """The ``_pb2`` module whose classes the ``client`` takes."""
        if client == "typed":
            if self.typed is None:
                raise RuntimeError("no generated client for this implementation")
            return self.typed_pb
        return self.pb

    def unary(self, client: str) -> Callable[[Any], Awaitable[Any]]:
        if client == "typed":
            if self.typed is None:
                raise RuntimeError("no generated client for this implementation")
            method: Callable[[Any], Awaitable[Any]] = self.typed.echo
            return method
        return self.echo  # type: ignore[no-any-return]

    def stream(self, client: str, request: Any) -> AsyncIterator[Any]:
        if client == "typed":
            if self.typed is None:
                raise RuntimeError("no generated client for this implementation")
            return self.typed.count(request)  # type: ignore[no-any-return]
        return self.count(request)  # type: ignore[no-any-return]


class Session:
    """One launched plugin."""

    pid: int
    calls: Calls

    async def close(self) -> None:
        raise NotImplementedError


class Host:
    """An implementation's host side: how to launch a plugin and stop it."""

    def __init__(self, env: dict[str, str], pb: Any) -> None:
        self.env = env
        self.pb = pb

    async def open(self, tls: str) -> tuple[Session, float | None]:
        """Launch and connect; returns the session and, when known, when the line arrived."""
        raise NotImplementedError


class OursSession(Session):
    def __init__(
        self, conn: Any, pb: Any, typed_factory: Callable[[Any], Any] | None, typed_pb: Any
    ) -> None:
        self.conn = conn
        self.pid = conn.pid
        typed = typed_factory(conn) if typed_factory else None
        self.calls = Calls(conn.channel, pb, typed, typed_pb)

    async def close(self) -> None:
        await self.conn.close()


class OursHost(Host):
    """``rpcplugin.launch`` with its defaults (health check, stdio and broker streams)."""

    def __init__(self, env: dict[str, str], pb: Any) -> None:
        super().__init__(env, pb)
        import rpcplugin

        self.rpcplugin = rpcplugin
        self.typed_factory: Callable[[Any], Any] | None = None
        self.typed_pb: Any = None
        typed = os.environ.get("BENCH_TYPED_CLIENT")  # "module:Class" of a generated client
        if typed:
            module, _, name = typed.partition(":")
            self.typed_factory = getattr(importlib.import_module(module), name)
            self.typed_pb = importlib.import_module(os.environ["BENCH_TYPED_PB"])

    async def open(self, tls: str) -> tuple[Session, float | None]:
        env = dict(self.env)
        backend: Literal["auto", "openssl", "grpc"] = "auto"
        if tls == "plugin-relay":
            env["RPCPLUGIN_TLS_BACKEND"] = "openssl"
            backend = "grpc"
        elif tls == "host-relay":
            backend = "openssl"
        elif tls == "on":
            backend = "grpc"
        argv = json.loads(os.environ.get("BENCH_PLUGIN_ARGV", "null")) or [
            sys.executable,
            str(PLUGINS / "ours.py"),
        ]
        conn = await self.rpcplugin.launch(
            argv,
            cwd=os.environ.get("BENCH_PLUGIN_CWD"),
            handshake=self.rpcplugin.Handshake("RPCPLUGIN_BENCH", "bench-v1"),
            versions=[1],
            name="bench",
            env=env,
            auto_mtls=tls != "off",
            tls_backend=backend,
            unix_socket_dir=env["PLUGIN_UNIX_SOCKET_DIR"],
        )
        session = OursSession(conn, self.pb, self.typed_factory, self.typed_pb)
        return session, conn.startup_seconds


class BareSession(Session):
    def __init__(self, proc: asyncio.subprocess.Process, channel: Any, pb: Any) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.channel = channel
        self.calls = Calls(channel, pb, None, None)

    async def close(self) -> None:
        await self.channel.close(None)
        self.proc.terminate()
        await self.proc.wait()


class BareHost(Host):
    """The floor: spawn the plugin, read one stdout line, dial the address it names."""

    async def open(self, tls: str) -> tuple[Session, float | None]:
        import base64

        import grpc

        started = time.perf_counter()
        env = dict(self.env)
        env["RPCPLUGIN_BENCH"] = "bench-v1"
        identity = None
        if tls != "off":
            if str(PLUGINS) not in sys.path:
                sys.path.insert(0, str(PLUGINS))
            identity = importlib.import_module("baretls").generate()
            env["PLUGIN_CLIENT_CERT"] = identity.cert_pem.decode()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PLUGINS / "bare.py"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        line_at = time.perf_counter() - started
        fields = line.split("|")
        if len(fields) < 6 or fields[2] != "unix":
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"bad handshake line {line!r}")
        target = f"unix:{fields[3]}"
        if identity is None:
            channel = grpc.aio.insecure_channel(target)
        else:
            der = base64.b64decode(fields[5] + "=" * (-len(fields[5]) % 4))
            import ssl

            credentials = grpc.ssl_channel_credentials(
                root_certificates=ssl.DER_cert_to_PEM_cert(der).encode(),
                private_key=identity.key_pem,
                certificate_chain=identity.cert_pem,
            )
            channel = grpc.aio.secure_channel(
                target, credentials, options=(("grpc.ssl_target_name_override", "localhost"),)
            )
        return BareSession(proc, channel, self.pb), line_at


class PyviderSession(Session):
    def __init__(self, client: Any, pb: Any) -> None:
        self.client = client
        self.pid = client._process.pid
        self.calls = Calls(client.grpc_channel, pb, None, None)

    async def close(self) -> None:
        # what its own ``async with`` exit does
        await self.client.shutdown_plugin()
        await self.client.close()


class PyviderHost(Host):
    """pyvider-rpcplugin's ``RPCPluginClient`` with its defaults."""

    def __init__(self, env: dict[str, str], pb: Any) -> None:
        super().__init__(env, pb)
        from pyvider.rpcplugin import (  # type: ignore[import-not-found]  # its own venv
            RPCPluginClient,
            configure,
        )

        self.client_class = RPCPluginClient
        self.configure = configure

    async def open(self, tls: str) -> tuple[Session, float | None]:
        if tls not in ("off", "on"):
            raise RuntimeError(f"pyvider has no TLS mode {tls!r}")
        self.configure(auto_mtls=tls == "on")
        env = dict(self.env)
        env["PLUGIN_AUTO_MTLS"] = "true" if tls == "on" else "false"
        client = self.client_class(
            command=[sys.executable, str(PLUGINS / "pyvider_plugin.py")], config={"env": env}
        )
        await client.start()
        return PyviderSession(client, self.pb), None


HOSTS: dict[str, type[Host]] = {"ours": OursHost, "bare": BareHost, "pyvider": PyviderHost}


class Worker:
    def __init__(self, impl: str) -> None:
        sys.path.insert(0, os.environ["BENCH_PB_DIR"])
        self.pb: Any = importlib.import_module("conformance.v1.conformance_pb2")
        env = dict(os.environ)
        env.pop("BENCH_TYPED_CLIENT", None)
        self.host = HOSTS[impl](env, self.pb)
        self.sessions: dict[str, Session] = {}
        self.pools: Any = None
        self.cpu: dict[str, float] = {}
        self._marks = (0.0, 0.0)

    def mark(self, session: Session) -> None:
        """Start counting CPU (host worker and plugin, all threads) for the timed part."""
        self._marks = (task_cpu(os.getpid()), task_cpu(session.pid))

    def measured(self, session: Session) -> None:
        host, plugin = self._marks
        self.cpu = {
            "cpu_host": task_cpu(os.getpid()) - host,
            "cpu_plugin": task_cpu(session.pid) - plugin,
        }

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op.startswith("pool_"):
            if self.pools is None:
                from .pool_worker import PoolCommands

                self.pools = PoolCommands(self.host.env, self.pb)
            reply: dict[str, Any] = await self.pools.handle(cmd)
            return reply
        if op == "open":
            return await self.open(cmd["sid"], cmd["tls"])
        session = self.sessions[cmd["sid"]]
        if op == "rss":
            await asyncio.sleep(float(cmd.get("settle", 0)))
            return {"rss": plugin_rss(session.pid)}
        if op == "unary":
            lat = await self.unary(session, int(cmd["n"]), cmd.get("client", "raw"))
            return {"lat": lat, **self.cpu}
        if op == "inflight":
            seconds = await self.inflight(
                session, int(cmd["n"]), int(cmd["conc"]), cmd.get("client", "raw")
            )
            return {"seconds": seconds, **self.cpu}
        if op == "stream":
            seconds = await self.stream(
                session, int(cmd["n"]), int(cmd["size"]), cmd.get("client", "raw")
            )
            return {"seconds": seconds, **self.cpu}
        if op == "close":
            del self.sessions[cmd["sid"]]
            started = time.perf_counter()
            await session.close()
            elapsed = time.perf_counter() - started
            return {"close": elapsed, "gone": gone(session.pid)}
        raise ValueError(f"unknown op {op!r}")

    async def open(self, sid: str, tls: str) -> dict[str, Any]:
        started = time.perf_counter()
        session, line_at = await self.host.open(tls)
        request = self.pb.EchoRequest(text="hello")
        reply = await session.calls.echo(request, timeout=30)
        elapsed = time.perf_counter() - started
        cpu = task_cpu(session.pid)
        if reply.text != "hello":
            raise RuntimeError(f"Echo answered {reply.text!r}")
        self.sessions[sid] = session
        return {"start": elapsed, "line": line_at, "cpu": cpu, "pid": session.pid}

    async def unary(self, session: Session, n: int, client: str) -> list[float]:
        call = session.calls.unary(client)
        request = session.calls.messages(client).EchoRequest(text="ping")
        for _ in range(WARMUP):
            await call(request)
        clock = time.perf_counter
        out = []
        self.mark(session)
        for _ in range(n):
            started = clock()
            await call(request)
            out.append(clock() - started)
        self.measured(session)
        return out

    async def inflight(self, session: Session, n: int, conc: int, client: str) -> float:
        call = session.calls.unary(client)
        request = session.calls.messages(client).EchoRequest(text="ping")
        per_task = max(1, n // conc)

        async def loop() -> None:
            for _ in range(per_task):
                await call(request)

        await asyncio.gather(*(call(request) for _ in range(conc)))  # warm every stream slot
        self.mark(session)
        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(conc)))
        elapsed = time.perf_counter() - started
        self.measured(session)
        scale = n / (per_task * conc)
        self.cpu = {k: v * scale for k, v in self.cpu.items()}
        return elapsed * scale

    async def stream(self, session: Session, n: int, size: int, client: str) -> float:
        pb = session.calls.messages(client)
        request = pb.CountRequest(n=n, payload_size=size)
        async for _ in session.calls.stream(client, pb.CountRequest(n=10, payload_size=size)):
            pass
        self.mark(session)
        started = time.perf_counter()
        got = 0
        async for reply in session.calls.stream(client, request):
            got += 1
            if len(reply.payload) != size:
                raise RuntimeError("short payload")
        elapsed = time.perf_counter() - started
        self.measured(session)
        if got != n:
            raise RuntimeError(f"stream ended after {got} of {n} messages")
        return elapsed

    async def shutdown(self) -> None:
        if self.pools is not None:
            try:
                await self.pools.shutdown()
            except Exception:
                traceback.print_exc()
        for sid in list(self.sessions):
            try:
                await self.sessions.pop(sid).close()
            except Exception:
                traceback.print_exc()


async def serve(impl: str, out: int) -> None:
    worker = Worker(impl)
    loop = asyncio.get_running_loop()
    try:
        while True:
            raw = await loop.run_in_executor(None, sys.stdin.readline)
            if not raw:
                break
            cmd = json.loads(raw)
            if cmd["op"] == "quit":
                break
            try:
                reply = await asyncio.wait_for(worker.handle(cmd), float(cmd.get("timeout", 120)))
            except Exception as exc:
                traceback.print_exc()
                reply = {"error": f"{type(exc).__name__}: {exc}".strip()}
            os.write(out, (json.dumps(reply) + "\n").encode())
    finally:
        await worker.shutdown()


def main() -> None:
    impl = sys.argv[1]
    os.environ.pop("PYTHONPATH", None)  # set only so that this module imports; keep it from plugins
    out = os.dup(1)
    os.dup2(2, 1)  # stray prints (a host library's, say) must not corrupt the replies
    asyncio.run(serve(impl, out))


if __name__ == "__main__":
    main()
