"""Plugin servers in server mode for the tests: start them, learn their addresses, stop them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rpcplugin.ops import certs

WORKER = Path(__file__).resolve().parent / "worker_plugin.py"


@dataclass
class Worker:
    name: str
    process: asyncio.subprocess.Process
    address: str
    stderr: list[str] = field(default_factory=list)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


async def start_worker(name: str, env: dict[str, str] | None = None) -> Worker:
    """``worker_plugin.py`` with ``RPCPLUGIN_LISTEN=127.0.0.1:0``; returns once it serves."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        env={**os.environ, "RPCPLUGIN_LISTEN": "127.0.0.1:0", "WORKER_NAME": name, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(process.stderr.readline(), 30)
        if not raw:
            await process.wait()
            raise RuntimeError(f"worker {name} exited {process.returncode}: {lines}")
        line = raw.decode()
        lines.append(line)
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if "address" in record:
                return Worker(name, process, record["address"], lines)


async def stop_all(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.returncode is None:
            worker.kill()
        await worker.process.wait()


@dataclass(frozen=True)
class PKI:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_env(self, *, client_ca: bool = True) -> dict[str, str]:
        env = {
            "RPCPLUGIN_TLS_CERT": str(self.server_cert),
            "RPCPLUGIN_TLS_KEY": str(self.server_key),
        }
        if client_ca:
            env["RPCPLUGIN_TLS_CLIENT_CA"] = str(self.ca)
        return env


def make_pki(directory: Path) -> PKI:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    ca = certs.create_ca("scale-out test CA")
    server = certs.issue(ca, "localhost", names=["127.0.0.1"], usage="server")
    client = certs.issue(ca, "test-client", usage="client")
    paths = PKI(*(directory / n for n in ("ca.pem", "s.pem", "s-key.pem", "c.pem", "c-key.pem")))
    paths.ca.write_bytes(ca.cert_pem)
    certs.write_issued(server, str(paths.server_cert), str(paths.server_key))
    certs.write_issued(client, str(paths.client_cert), str(paths.client_key))
    return paths
