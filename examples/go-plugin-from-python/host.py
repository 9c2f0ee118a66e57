"""A Python host for a Go plugin: launch it, call it through the generated ``KVClient``, stop it.

The ``kv`` package is generated from ``../kv-go-host/kv.proto`` (a host needs no servicer, so
``--no-servicer``); the plugin is ``main.go`` here, built with go-plugin. See README.md::

    python host.py [--no-tls] PLUGIN_COMMAND...   # with the directory holding kv/ on PYTHONPATH
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from kv import plugin
from kv.kv_pb2 import GetRequest, ListRequest, PutRequest
from kv.kv_rpc import KVClient

import rpcplugin

TLS_WORDS = {
    "off": "off",
    "grpc": "on: mutual (AutoMTLS), grpcio's TLS",
    "openssl": "on: mutual (AutoMTLS), OpenSSL relay (the Go plugin's certificates are P-521)",
}

ENTRIES = {"fruit/apple": b"red", "fruit/banana": b"yellow", "veg/kale": b"green"}


@dataclass
class Report:
    """What happened, for printing and for the tests."""

    command: str = ""
    version: int = 0
    tls: str = ""
    pid: int | None = None
    endpoint: str = ""
    lines: list[str] = field(default_factory=list)
    returncode: int | None = None
    close_ms: float = 0.0


async def run(command: Sequence[str], *, auto_mtls: bool = True) -> Report:
    """Launch the plugin ``command``, store and read a few entries, close it."""
    report = Report(command=" ".join(command))
    async with rpcplugin.launch(
        command, handshake=plugin.HANDSHAKE, versions=plugin.VERSIONS, auto_mtls=auto_mtls
    ) as conn:
        report.version, report.tls, report.pid = conn.version, conn.tls, conn.pid
        report.endpoint = str(conn.endpoint)
        kv = KVClient(conn, timeout=10)

        for key, value in ENTRIES.items():
            await kv.put(PutRequest(key=key, value=value))
            report.lines.append(f"Put {key} = {value.decode()}")

        got = await kv.get(GetRequest(key="fruit/apple"))
        report.lines.append(f"Get fruit/apple -> {got.value.decode()}")

        # A status the Go plugin returns arrives as grpc.aio.AioRpcError with its code.
        try:
            await kv.get(GetRequest(key="fruit/cherry"))
        except grpc.aio.AioRpcError as exc:
            report.lines.append(f"Get fruit/cherry -> {exc.code().name}: {exc.details()}")
        else:
            report.lines.append("Get fruit/cherry -> found (unexpected)")

        entries = kv.list(ListRequest(prefix="fruit/"))
        listed = [f"{e.key}={e.value.decode()}" async for e in entries]
        report.lines.append(f"List fruit/ -> {' '.join(listed)}")
        closing = time.perf_counter()
    # leaving `async with`: GRPCController/Shutdown, then wait for the process to exit
    report.close_ms = (time.perf_counter() - closing) * 1000
    report.returncode = conn.returncode
    return report


def show(report: Report) -> str:
    """The report as the command line prints it."""
    return "\n".join(
        [
            f"launched: {report.command} (pid {report.pid}), app protocol version "
            f"{report.version}, {report.endpoint}",
            f"TLS: {TLS_WORDS.get(report.tls, report.tls)}",
            *report.lines,
            f"closed: exit status {report.returncode} after {report.close_ms:.0f} ms",
        ]
    )


def main(argv: Sequence[str]) -> int:
    """``host.py [--no-tls] PLUGIN_COMMAND...``"""
    auto_mtls = argv[:1] != ["--no-tls"]
    command = list(argv[0 if auto_mtls else 1 :])
    if not command:
        print("usage: host.py [--no-tls] PLUGIN_COMMAND...", file=sys.stderr)
        return 2
    report = asyncio.run(run(command, auto_mtls=auto_mtls))
    print(show(report))
    return 0 if report.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
