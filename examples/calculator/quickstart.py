"""The README's launch example, whole: start the generated calculator plugin, call Add, stop it.

Run it from the directory that holds the generated ``calculator/`` package::

    python quickstart.py
"""

# [quickstart]
import asyncio
import sys

from calculator import plugin
from calculator.calculator_pb2 import AddRequest
from calculator.calculator_rpc import CalculatorClient

import rpcplugin


async def main() -> None:
    command = [sys.executable, "-m", "calculator"]  # the plugin: the generated package
    async with rpcplugin.launch(
        command, handshake=plugin.HANDSHAKE, versions=plugin.VERSIONS, auto_mtls=True
    ) as conn:
        calculator = CalculatorClient(conn, timeout=10)
        reply = await calculator.add(AddRequest(a=19, b=23))
        print(f"19 + 23 = {reply.sum} (plugin pid {conn.pid}, TLS {conn.tls})")


asyncio.run(main())
# [/quickstart]
