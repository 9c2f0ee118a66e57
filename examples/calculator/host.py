"""A Python host for the calculator plugin: launch it, call each RPC kind, shut it down.

Run it next to a generated ``calculator`` package (``make demo`` does all of it)::

    python host.py            # with the directory holding calculator/ on PYTHONPATH
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from calculator import plugin
from calculator.calculator_pb2 import AddRequest, FibonacciRequest, Number
from calculator.calculator_rpc import CalculatorClient

import rpcplugin

TLS_WORDS = {
    "off": "off",
    "grpc": "on: mutual (AutoMTLS), grpcio's TLS",
    "openssl": "on: mutual (AutoMTLS), OpenSSL relay",
}


@dataclass
class Report:
    """What happened, for printing and for the tests."""

    version: int = 0
    transport: str = ""
    tls: str = ""
    pid: int | None = None
    results: dict[str, object] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def timed(report: Report, what: str) -> Iterator[None]:
    """Record how long the body took, in milliseconds."""
    started = time.perf_counter()
    yield
    report.timings_ms[what] = (time.perf_counter() - started) * 1000


async def run(package_parent: str, *, auto_mtls: bool = True) -> Report:
    """Launch ``python -m calculator`` from ``package_parent`` and exercise it."""
    report = Report()
    command = [sys.executable, "-m", "calculator"]
    env = {"PYTHONPATH": package_parent + os.pathsep + os.environ.get("PYTHONPATH", "")}
    launching = time.perf_counter()
    # [launch]
    async with rpcplugin.launch(
        command, handshake=plugin.HANDSHAKE, versions=plugin.VERSIONS, env=env, auto_mtls=auto_mtls
    ) as conn:
        calculator = CalculatorClient(conn, timeout=10)
        # [/launch]
        report.timings_ms["launch → ready"] = (time.perf_counter() - launching) * 1000
        report.version, report.tls, report.pid = conn.version, conn.tls, conn.pid
        report.transport = str(conn.endpoint)
        await exercise(calculator, report)
        closing = time.perf_counter()
    report.timings_ms["close → reaped"] = (time.perf_counter() - closing) * 1000
    report.results["exit status"] = conn.returncode
    return report


async def exercise(calculator: CalculatorClient, report: Report) -> None:
    """Call each RPC kind once and record the results and timings in ``report``; the client may
    be on a launched plugin or on one served in process (``rpcplugin.testing``)."""
    # [calls]
    with timed(report, "unary Add"):
        added = await calculator.add(AddRequest(a=19, b=23))
    with timed(report, "server stream Fibonacci"):
        fib = [n.value async for n in calculator.fibonacci(FibonacciRequest(count=10))]
    with timed(report, "client stream Sum"):
        summed = await calculator.sum([Number(value=v) for v in (1, 2, 3, 4)])
    with timed(report, "bidi RunningTotal"):
        chat = calculator.running_total()  # interactive: send, then read the answer
        totals = []
        for value in (5, 10, 20):
            await chat.send(Number(value=value))
            totals.append((await anext(chat)).value)
        await chat.done_writing()
    # [/calls]
    report.results["Add(19, 23)"] = added.sum
    report.results["Fibonacci(10)"] = fib
    report.results["Sum(1, 2, 3, 4)"] = (summed.total, summed.count)
    report.results["RunningTotal(5, 10, 20)"] = totals


def show(report: Report) -> str:
    """The report as the demo prints it."""
    lines = [
        f"negotiated app protocol version: {report.version}",
        f"transport:                       {report.transport}",
        f"TLS:                             {TLS_WORDS.get(report.tls, report.tls)}",
        f"plugin pid:                      {report.pid}",
        "",
        "results:",
        *(f"  {name:<26} {value}" for name, value in report.results.items()),
        "",
        "timings:",
        *(f"  {name:<26} {ms:7.1f} ms" for name, ms in report.timings_ms.items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(plugin.__file__))
    print(show(asyncio.run(run(os.path.dirname(here)))))
