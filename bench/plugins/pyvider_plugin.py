"""pyvider-rpcplugin's plugin: its server with the bench service (run in its own venv).

Written the way its documentation shows: an ``RPCPluginProtocol`` that registers the service
on the server pyvider builds, and ``plugin_server(...).serve()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import service
from pyvider.rpcplugin import (  # type: ignore[import-not-found]  # its own venv
    RPCPluginProtocol,
    plugin_server,
)


class BenchProtocol(RPCPluginProtocol):  # type: ignore[misc]
    async def get_grpc_descriptors(self) -> tuple[Any, str]:
        return None, service.SERVICE

    async def add_to_server(self, server: Any, handler: Any) -> None:
        server.add_generic_rpc_handlers((service.handler(),))


async def main() -> None:
    await plugin_server(protocol=BenchProtocol(), handler=object()).serve()


if __name__ == "__main__":
    asyncio.run(main())
