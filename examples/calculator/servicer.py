# The calculator plugin's implementation: rpcplugin-gen wrote the skeleton of this file once
# (as calculator/servicer.py) and the bodies were filled in by hand. The demo copies it into
# the generated package before generating, to show that regeneration leaves it alone.
"""This plugin's implementation: a class per service, and ``main()`` to serve them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn

from . import calculator_pb2, calculator_rpc, plugin


# [servicer]
class Calculator(calculator_rpc.CalculatorServicer):
    """Implements ``calculator.v1.Calculator``. Calculator does arithmetic for its host."""

    async def add(self, request: calculator_pb2.AddRequest, /) -> calculator_pb2.AddResponse:
        """Add returns a + b."""
        return calculator_pb2.AddResponse(sum=request.a + request.b)

    async def fibonacci(
        self, request: calculator_pb2.FibonacciRequest, /
    ) -> AsyncIterator[calculator_pb2.Number]:
        """Fibonacci streams the first `count` Fibonacci numbers."""
        a, b = 0, 1
        for _ in range(request.count):
            yield calculator_pb2.Number(value=a)
            a, b = b, a + b

    # [/servicer]

    async def sum(
        self, requests: AsyncIterator[calculator_pb2.Number], /
    ) -> calculator_pb2.SumResponse:
        """Sum adds up every number the host sends."""
        total = count = 0
        async for number in requests:
            total += number.value
            count += 1
        return calculator_pb2.SumResponse(total=total, count=count)

    async def running_total(
        self, requests: AsyncIterator[calculator_pb2.Number], /
    ) -> AsyncIterator[calculator_pb2.Number]:
        """RunningTotal answers each number with the total so far."""
        total = 0
        async for number in requests:
            total += number.value
            yield calculator_pb2.Number(value=total)


def main() -> NoReturn:
    """Serve the plugin until the host stops it (``python -m`` the package runs this)."""
    plugin.serve(calculator=Calculator())
