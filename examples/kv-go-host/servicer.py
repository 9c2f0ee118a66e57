# The KV plugin's implementation: rpcplugin-gen wrote the skeleton of this file once (as
# kv/servicer.py) and the bodies were filled in by hand. The example copies it into the generated
# package before generating; regeneration leaves it alone.
"""This plugin's implementation: a class per service, and ``main()`` to serve them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn

import grpc

from rpcplugin.servicer import current_call

from . import kv_pb2, kv_rpc, plugin


class KV(kv_rpc.KVServicer):
    """Implements ``kv.v1.KV``. KV stores values under string keys, in memory."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    async def get(self, request: kv_pb2.GetRequest, /) -> kv_pb2.GetResponse:
        """Get returns the value stored under key; NOT_FOUND if there is none."""
        if request.key not in self._data:
            await current_call().abort(grpc.StatusCode.NOT_FOUND, f"no value under {request.key!r}")
        return kv_pb2.GetResponse(value=self._data[request.key])

    async def put(self, request: kv_pb2.PutRequest, /) -> kv_pb2.PutResponse:
        """Put stores value under key, replacing any value there."""
        self._data[request.key] = request.value
        return kv_pb2.PutResponse()

    async def list(self, request: kv_pb2.ListRequest, /) -> AsyncIterator[kv_pb2.Entry]:
        """List streams the entries whose key starts with prefix, in key order."""
        for key in sorted(self._data):
            if key.startswith(request.prefix):
                yield kv_pb2.Entry(key=key, value=self._data[key])


def main() -> NoReturn:
    """Serve the plugin until the host stops it (``python -m`` the package runs this)."""
    plugin.serve(kv=KV())
