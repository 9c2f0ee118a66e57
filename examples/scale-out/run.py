"""Three worker plugin servers behind one client; one is killed mid-run.

Starts ``python -m worker`` three times in server mode (``RPCPLUGIN_LISTEN``) with mutual TLS
from a throw-away CA, connects one ``WorkerClient`` to all three with
``rpcplugin.connect_balanced`` (gRPC's round_robin plus health checking), keeps 8 callers busy
for 3 s, SIGKILLs server b after 1 s, and reports where the calls went and how many failed.
Exit status 0 when b left the rotation and no more calls failed than were in flight.

    PYTHONPATH=<dir holding worker/> python examples/scale-out/run.py [--drain]

``--drain`` stops b with SIGTERM instead (NOT_SERVING first, then the stop): no call fails.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import grpc
from worker import worker_pb2, worker_rpc

import rpcplugin
from rpcplugin.ops import certs

CALLERS = 8
SECONDS = 3.0
KILL_AT = 1.0
_readers: set[asyncio.Task[None]] = set()


def make_pki(directory: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as files."""
    ca = certs.create_ca("scale-out example CA")
    paths = {n: str(directory / f"{n}.pem") for n in ("ca", "server", "server-key")}
    paths |= {n: str(directory / f"{n}.pem") for n in ("client", "client-key")}
    Path(paths["ca"]).write_bytes(ca.cert_pem)
    server = certs.issue(ca, "localhost", names=["127.0.0.1"], usage="server")
    certs.write_issued(server, paths["server"], paths["server-key"])
    client = certs.issue(ca, "scale-out client", usage="client")
    certs.write_issued(client, paths["client"], paths["client-key"])
    return paths


async def start_server(name: str, pki: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    """``python -m worker`` in server mode; returns it and the address it logged."""
    # [server-mode]
    env = {
        **os.environ,
        "WORKER_NAME": name,
        "RPCPLUGIN_LISTEN": "127.0.0.1:0",  # any free port; the log line says which
        "RPCPLUGIN_TLS_CERT": pki["server"],
        "RPCPLUGIN_TLS_KEY": pki["server-key"],
        "RPCPLUGIN_TLS_CLIENT_CA": pki["ca"],  # clients need a certificate from this CA
    }
    # [/server-mode]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    while line := await asyncio.wait_for(process.stderr.readline(), 30):
        with contextlib.suppress(ValueError):
            address = json.loads(line).get("address")
            if address:
                _readers.add(asyncio.ensure_future(_drain(process.stderr)))
                return process, str(address)
    raise RuntimeError(f"worker {name} exited with {await process.wait()} before serving")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def main(drain: bool) -> int:
    with tempfile.TemporaryDirectory() as directory:
        pki = make_pki(Path(directory))
        started = await asyncio.gather(*(start_server(n, pki) for n in "abc"))
        servers = dict(zip("abc", started, strict=True))
        print("3 worker servers in server mode, mutual TLS:")
        for name, (process, address) in servers.items():
            print(f"  {name}: {address} (pid {process.pid})")
        try:
            return await drive(servers, pki, drain)
        finally:
            for process, _ in servers.values():
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


async def drive(
    servers: dict[str, tuple[asyncio.subprocess.Process, str]], pki: dict[str, str], drain: bool
) -> int:
    # [balanced]
    tls = rpcplugin.TLSFiles(ca_file=pki["ca"], cert_file=pki["client"], key_file=pki["client-key"])
    addresses = [address for _, address in servers.values()]
    async with rpcplugin.connect_balanced(addresses, tls=tls) as conn:
        worker = worker_rpc.WorkerClient(conn, timeout=10)
        # [/balanced]
        print(f"one WorkerClient over {conn.target} (round_robin, health-checked)")
        seen: set[str] = set()
        while len(seen) < 3:  # until every server is connected
            seen.add((await worker.square(worker_pb2.WorkRequest(n=1))).server)
        before: collections.Counter[str] = collections.Counter()
        after: collections.Counter[str] = collections.Counter()
        failed: collections.Counter[str] = collections.Counter()
        stopped = asyncio.Event()
        begin = time.monotonic()

        async def caller(index: int) -> None:
            n = index
            while time.monotonic() - begin < SECONDS:
                counts = after if stopped.is_set() else before
                try:
                    reply = await worker.square(worker_pb2.WorkRequest(n=n))
                    assert reply.square == n * n
                    counts[reply.server] += 1
                except grpc.aio.AioRpcError as exc:
                    failed[exc.code().name] += 1
                n += CALLERS

        async def stop_b() -> None:
            await asyncio.sleep(KILL_AT)
            process = servers["b"][0]
            process.send_signal(signal.SIGTERM if drain else signal.SIGKILL)
            how = "drained (SIGTERM)" if drain else "killed (SIGKILL)"
            print(f"{KILL_AT:.1f} s: server b {how}")
            await asyncio.sleep(0.3 if not drain else 0.6)  # calls already under way count before
            stopped.set()

        await asyncio.gather(stop_b(), *(caller(i) for i in range(CALLERS)))
    total = sum(before.values()) + sum(after.values()) + sum(failed.values())
    print(f"before: {_shares(before)}")
    print(f"after:  {_shares(after)}")
    print(f"calls: {total} by {CALLERS} callers in {SECONDS:.0f} s")
    print(
        f"failed calls: {sum(failed.values())}"
        + (f" ({', '.join(f'{n} {c}' for c, n in failed.items())})" if failed else "")
    )
    ok = set(before) == {"a", "b", "c"} and set(after) == {"a", "c"}
    ok = ok and sum(failed.values()) <= (0 if drain else CALLERS)
    print("OK: b left the rotation; a and c kept serving" if ok else "FAILED")
    return 0 if ok else 1


def _shares(counts: collections.Counter[str]) -> str:
    return " ".join(f"{name}={counts[name]}" for name in "abc" if counts[name])


if __name__ == "__main__":
    sys.exit(asyncio.run(main(drain="--drain" in sys.argv)))
