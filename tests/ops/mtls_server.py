"""A plugin server in its own process for the certificate tests: health and ops.Echo/Say over
mutual TLS with certificates from files. Prints its port, serves until stdin closes.

    python mtls_server.py CERT KEY CLIENT_CA
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

from rpcplugin.ops.certs import server_credentials
from rpcplugin.services.health import HealthService


async def say(request: bytes, context: Any) -> bytes:
    return request


async def main(cert: str, key: str, client_ca: str) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            HealthService().handler(),
            grpc.method_handlers_generic_handler(
                "ops.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
            ),
        )
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(cert, key, client_ca))
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(None)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
