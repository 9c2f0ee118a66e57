# Written by rpcplugin-gen 0.1.0 from acme/svc/v1/svc.proto.
# This file is yours: rpcplugin-gen never overwrites it. It reports RPCs added to or removed
# from the protos since, and `rpcplugin-gen --add-stubs` appends stubs for new ones.
"""This plugin's implementation: a class per service, and ``main()`` to serve them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn

from google.protobuf import empty_pb2, struct_pb2
from rpcplugin.servicer import Unimplemented

from . import plugin
from .acme.common.v1 import common_pb2
from .acme.svc.v1 import svc_pb2, svc_rpc


class Greeter(svc_rpc.GreeterServicer):
    """Implements ``acme.svc.v1.Greeter``. Greeter serves items."""

    async def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:
        """Get returns one item by id."""
        raise Unimplemented("/acme.svc.v1.Greeter/Get")  # TODO: implement

    async def list(self, request: svc_pb2.ListRequest, /) -> AsyncIterator[common_pb2.Item]:
        """List streams the items whose id starts with a prefix."""
        raise Unimplemented("/acme.svc.v1.Greeter/List")  # TODO: implement
        yield  # never reached; makes this an async generator

    async def upload(self, requests: AsyncIterator[common_pb2.Item], /) -> svc_pb2.UploadSummary:
        """Upload stores every item sent and says how many."""
        raise Unimplemented("/acme.svc.v1.Greeter/Upload")  # TODO: implement

    async def chat(self, requests: AsyncIterator[svc_pb2.Route], /) -> AsyncIterator[svc_pb2.Route]:
        """Chat answers each route as it arrives."""
        raise Unimplemented("/acme.svc.v1.Greeter/Chat")  # TODO: implement
        yield  # never reached; makes this an async generator

    async def ping(self, request: empty_pb2.Empty, /) -> empty_pb2.Empty:
        """Ping does nothing; its request may be omitted."""
        raise Unimplemented("/acme.svc.v1.Greeter/Ping")  # TODO: implement

    async def import_(self, request: svc_pb2.Meta, /) -> struct_pb2.Struct:
        """Import is a Python keyword."""
        raise Unimplemented("/acme.svc.v1.Greeter/Import")  # TODO: implement

    async def close(self, request: empty_pb2.Empty, /) -> common_pb2.List:
        """Close must not clash with anything a client inherits."""
        raise Unimplemented("/acme.svc.v1.Greeter/Close")  # TODO: implement


class Admin(svc_rpc.AdminServicer):
    """Implements ``acme.svc.v1.Admin``. Admin is the second service in the file."""

    async def with_options_(self, request: empty_pb2.Empty, /) -> common_pb2.Optional:
        """WithOptions collides with the client's with_options()."""
        raise Unimplemented("/acme.svc.v1.Admin/WithOptions")  # TODO: implement

    async def lambda_(self, request: common_pb2.ItemAttr, /) -> common_pb2.Item.Attr:
        raise Unimplemented("/acme.svc.v1.Admin/Lambda")  # TODO: implement

    async def type(self, request: empty_pb2.Empty, /) -> empty_pb2.Empty:
        """A comment with a backslash \\ and \"\"\"triple quotes\"\"\" and a "quote" """
        raise Unimplemented("/acme.svc.v1.Admin/Type")  # TODO: implement


def main() -> NoReturn:
    """Serve the plugin until the host stops it (``python -m`` the package runs this)."""
    plugin.serve(greeter=Greeter(), admin=Admin())
