"""User mistakes ``mypy --strict`` must catch. ``# E: code`` marks each expected error.

test_typecheck asserts mypy reports exactly these (line, code) pairs and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc.aio
from app.gen.sample import plugin
from app.gen.sample.acme.common.v1 import common_pb2
from app.gen.sample.acme.svc.v1 import svc_pb2, svc_rpc
from google.protobuf import empty_pb2


async def client_mistakes(channel: grpc.aio.Channel) -> None:
    client = svc_rpc.GreeterClient(channel)
    await client.get(svc_pb2.ListRequest())  # E: arg-type
    await client.list(svc_pb2.ListRequest())  # E: misc
    chat = client.chat()
    await chat.send(common_pb2.Item())  # E: arg-type
    await client.upload(common_pb2.Item())  # E: arg-type
    await client.get(svc_pb2.GetRequest(), timeout="soon")  # E: arg-type
    svc_pb2.GetRequest(idd="x")  # E: call-arg
    admin: svc_rpc.Admin = client  # E: assignment
    print(admin)


class WrongReturn(svc_rpc.GreeterServicer):
    async def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:
        return svc_pb2.UploadSummary()  # E: return-value

    async def list(self, request: svc_pb2.ListRequest, /) -> AsyncIterator[common_pb2.Item]:
        yield svc_pb2.Route()  # E: misc


class WrongOverride(svc_rpc.GreeterServicer):
    async def get(self, request: svc_pb2.ListRequest, /) -> common_pb2.Item:  # E: override
        return common_pb2.Item()


class WrongSync(svc_rpc.GreeterServicer):
    def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:
        return svc_pb2.UploadSummary()  # E: return-value

    def list(self, request: svc_pb2.ListRequest, /) -> Iterator[common_pb2.Item]:
        yield svc_pb2.Route()  # E: misc


class WrongSyncOverride(svc_rpc.GreeterServicer):
    def get(self, request: svc_pb2.GetRequest, /) -> svc_pb2.UploadSummary:  # E: override
        return svc_pb2.UploadSummary()

    def list(self, request: svc_pb2.ListRequest, /) -> common_pb2.Item:  # E: override
        return common_pb2.Item()

    def upload(self, requests: Iterator[svc_pb2.Route], /) -> svc_pb2.UploadSummary:  # E: override
        return svc_pb2.UploadSummary()


class StrictMixed(svc_rpc.AdminHandlers):
    """Strict mode with sync handlers: subclassing ``AdminHandlers`` and leaving out an RPC."""

    def with_options_(self, request: empty_pb2.Empty, /) -> common_pb2.Optional:
        return common_pb2.Optional()


class StrictAdmin(svc_rpc.Admin):
    """Strict mode: subclassing the protocol and leaving out an RPC."""

    async def with_options_(self, request: empty_pb2.Empty, /) -> common_pb2.Optional:
        return common_pb2.Optional()


class NotAGreeter:
    async def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:
        return common_pb2.Item()


def strict() -> None:
    StrictAdmin()  # E: abstract
    StrictMixed()  # E: abstract


class Partial(svc_rpc.GreeterServicer):
    async def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:
        return common_pb2.Item()


async def partial_is_not_a_greeter(greeter: svc_rpc.Greeter) -> None:
    """The ``Greeter`` protocol is async; a servicer's inherited RPCs may be sync."""
    await partial_is_not_a_greeter(Partial())  # E: arg-type


def not_a_greeter() -> None:  # serve() never returns: one call per function
    plugin.serve(greeter=NotAGreeter(), admin=svc_rpc.AdminServicer())  # E: arg-type


def service_left_out() -> None:
    plugin.serve(greeter=svc_rpc.GreeterServicer())  # E: call-arg
