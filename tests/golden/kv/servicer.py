# Written by rpcplugin-gen 0.1.0 from kvtest/v1/kv.proto, kvtest/v2/kv.proto.
# This file is yours: rpcplugin-gen never overwrites it. It reports RPCs added to or removed
# from the protos since, and `rpcplugin-gen --add-stubs` appends stubs for new ones.
"""This plugin's implementation: a class per service, and ``main()`` to serve them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn

from rpcplugin.servicer import Unimplemented

from . import plugin
from .kvtest.v1 import kv_pb2 as v1_kv_pb2
from .kvtest.v1 import kv_rpc as v1_kv_rpc
from .kvtest.v2 import kv_pb2 as v2_kv_pb2
from .kvtest.v2 import kv_rpc as v2_kv_rpc


class KVV1(v1_kv_rpc.KVServicer):
    """Implements ``kvtest.v1.KV``. KV stores values by key (version 1)."""

    async def get(self, request: v1_kv_pb2.GetRequest, /) -> v1_kv_pb2.GetResponse:
        """Get returns the value of a key."""
        raise Unimplemented("/kvtest.v1.KV/Get")  # TODO: implement

    async def put(self, request: v1_kv_pb2.PutRequest, /) -> v1_kv_pb2.Empty:
        """Put sets a key."""
        raise Unimplemented("/kvtest.v1.KV/Put")  # TODO: implement


class KVV2(v2_kv_rpc.KVServicer):
    """Implements ``kvtest.v2.KV``. KV stores values by key (version 2)."""

    async def get(self, request: v2_kv_pb2.GetRequest, /) -> v2_kv_pb2.GetResponse:
        """Get returns the value of a key."""
        raise Unimplemented("/kvtest.v2.KV/Get")  # TODO: implement

    async def put(self, request: v2_kv_pb2.PutRequest, /) -> v2_kv_pb2.Empty:
        """Put sets a key."""
        raise Unimplemented("/kvtest.v2.KV/Put")  # TODO: implement

    async def watch(self, request: v2_kv_pb2.GetRequest, /) -> AsyncIterator[v2_kv_pb2.GetResponse]:
        """Watch streams the values a key takes (new in version 2)."""
        raise Unimplemented("/kvtest.v2.KV/Watch")  # TODO: implement
        yield  # never reached; makes this an async generator


def main() -> NoReturn:
    """Serve the plugin until the host stops it (``python -m`` the package runs this)."""
    plugin.serve(kv_v1=KVV1(), kv_v2=KVV2())
