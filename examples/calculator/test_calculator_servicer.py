"""The calculator's servicer tested in process with ``rpcplugin.testing``: the generated client
on a real gRPC channel, no plugin process.

Run it with pytest and pytest-asyncio (``asyncio_mode = "auto"``) from the directory holding
the generated ``calculator/`` package; tests/examples/test_calculator.py runs it that way.
"""

from __future__ import annotations

from typing import assert_type

# [imports]
from calculator import plugin
from calculator.calculator_pb2 import AddRequest, AddResponse, FibonacciRequest, Number
from calculator.calculator_rpc import CalculatorClient, CalculatorPlugin
from calculator.servicer import Calculator

import rpcplugin
from rpcplugin import testing

# [/imports]


# [serve]
async def test_add_and_fibonacci() -> None:
    async with testing.serve(CalculatorPlugin, Calculator()) as calculator:
        assert (await calculator.add(AddRequest(a=19, b=23))).sum == 42
        numbers = [n.value async for n in calculator.fibonacci(FibonacciRequest(count=7))]
        assert numbers == [0, 1, 1, 2, 3, 5, 8]


# [/serve]


# [connection]
async def test_code_that_takes_a_plugin_connection() -> None:
    async with testing.start(plugin.handlers(calculator=Calculator())) as conn:
        await conn.ping()  # grpc.health.v1, as on a launched plugin
        assert conn.version == 1
        chat = CalculatorClient(conn, timeout=10).running_total()
        totals = []
        for value in (5, 10, 20):
            await chat.send(Number(value=value))
            totals.append((await anext(chat)).value)
        await chat.done_writing()
        assert totals == [5, 15, 35]


# [/connection]


# [tls]
class PeerRecordingCalculator(Calculator):
    """Remembers who called ``Add``."""

    def __init__(self) -> None:
        self.peers: list[rpcplugin.Peer] = []

    async def add(self, request: AddRequest, /) -> AddResponse:
        self.peers.append(rpcplugin.current_peer())
        return await super().add(request)


async def test_the_handler_sees_the_hosts_certificate() -> None:
    servicer = PeerRecordingCalculator()
    async with testing.start(plugin.handlers(calculator=servicer), tls="openssl") as conn:
        await CalculatorClient(conn).add(AddRequest(a=1, b=2))
    (peer,) = servicer.peers
    assert (peer.security, peer.tls_backend) == ("tls", "openssl-relay")
    assert peer.certificate_der == conn.host_certificate


# [/tls]


async def test_the_client_type_comes_from_the_binding() -> None:
    async with testing.serve(CalculatorPlugin, Calculator()) as calculator:
        assert_type(calculator, CalculatorClient)  # checked by mypy --strict
