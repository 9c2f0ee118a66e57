"""The worker plugin: squares numbers and says which server did it."""

from __future__ import annotations

import asyncio
import os
from typing import NoReturn

from . import plugin, worker_pb2, worker_rpc


class Worker(worker_rpc.WorkerServicer):
    """Implements ``worker.v1.Worker``."""

    def __init__(self) -> None:
        self.name = os.environ.get("WORKER_NAME", str(os.getpid()))

    async def square(self, request: worker_pb2.WorkRequest, /) -> worker_pb2.WorkReply:
        """Square returns n * n after about 5 ms of "work"."""
        await asyncio.sleep(0.005)
        return worker_pb2.WorkReply(server=self.name, square=request.n * request.n)


def main() -> NoReturn:
    """Serve the plugin (``python -m`` the package runs this): launched by a host, or with
    ``RPCPLUGIN_LISTEN`` as a network service."""
    plugin.serve(worker=Worker())
