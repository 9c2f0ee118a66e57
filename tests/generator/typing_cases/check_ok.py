"""User code that must pass ``mypy --strict`` against the generated sample package."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc.aio
from app.gen.sample import plugin
from app.gen.sample.acme.common.v1 import common_pb2
from app.gen.sample.acme.svc.v1 import svc_pb2, svc_rpc
from google.protobuf import empty_pb2, struct_pb2, wrappers_pb2

import rpcplugin
from rpcplugin.servicer import RequestStream, current_call


class Store(svc_rpc.GreeterServicer):
    """Forward-compatible: implements some RPCs, the rest answer UNIMPLEMENTED."""

    async def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:
        peer = current_call().peer()
        return common_pb2.Item(id=request.id, note=wrappers_pb2.StringValue(value=peer))

    async def list(self, req: svc_pb2.ListRequest, /) -> AsyncIterator[common_pb2.Item]:
        for i in range(req.limit):
            yield common_pb2.Item(id=f"{req.prefix}{i}")

    async def upload(self, requests: AsyncIterator[common_pb2.Item], /) -> svc_pb2.UploadSummary:
        return svc_pb2.UploadSummary(count=len([r async for r in requests]))

    async def chat(self, requests: AsyncIterator[svc_pb2.Route], /) -> AsyncIterator[svc_pb2.Route]:
        async for route in requests:
            yield route


class SyncStore(svc_rpc.GreeterServicer):
    """Plain ``def`` handlers of every kind: the base allows either form per RPC."""

    def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:
        return common_pb2.Item(id=request.id)

    def list(self, req: svc_pb2.ListRequest, /) -> Iterator[common_pb2.Item]:
        for i in range(req.limit):
            yield common_pb2.Item(id=f"{req.prefix}{i}")

    def upload(self, requests: Iterator[common_pb2.Item], /) -> svc_pb2.UploadSummary:
        return svc_pb2.UploadSummary(count=sum(1 for _ in requests))

    def chat(self, requests: Iterator[svc_pb2.Route], /) -> Iterator[svc_pb2.Route]:
        yield from requests


class MixedStore(svc_rpc.GreeterServicer):
    """One sync and one async handler side by side; the request stream type works as both."""

    def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:
        return common_pb2.Item(id=request.id)

    async def ping(self, request: empty_pb2.Empty, /) -> empty_pb2.Empty:
        return request

    def upload(self, requests: RequestStream[common_pb2.Item], /) -> svc_pb2.UploadSummary:
        return svc_pb2.UploadSummary(count=len(list(requests)))

    async def chat(self, requests: RequestStream[svc_pb2.Route], /) -> AsyncIterator[svc_pb2.Route]:
        async for route in requests:
            yield route


class StrictMixedAdmin(svc_rpc.AdminHandlers):
    """Strict, sync and async mixed: subclassing ``AdminHandlers`` makes every RPC mandatory."""

    def with_options_(self, request: empty_pb2.Empty, /) -> common_pb2.Optional:
        return common_pb2.Optional(value="x")

    async def lambda_(self, request: common_pb2.ItemAttr, /) -> common_pb2.Item.Attr:
        return common_pb2.Item.Attr(key=str(request.x))

    def type(self, request: empty_pb2.Empty, /) -> empty_pb2.Empty:
        return request


class StrictAdmin(svc_rpc.Admin):
    """Strict: subclassing the protocol makes every RPC mandatory (all implemented here)."""

    async def with_options_(self, request: empty_pb2.Empty, /) -> common_pb2.Optional:
        return common_pb2.Optional(value="x")

    async def lambda_(self, request: common_pb2.ItemAttr, /) -> common_pb2.Item.Attr:
        return common_pb2.Item.Attr(key=str(request.x))

    async def type(self, request: empty_pb2.Empty, /) -> empty_pb2.Empty:
        return request


async def use_greeter(greeter: svc_rpc.Greeter) -> list[str]:
    """Written against the protocol: works with a client or a local all-async object."""
    item = await greeter.get(svc_pb2.GetRequest(id="a"))
    ids = [item.id]
    async for listed in greeter.list(svc_pb2.ListRequest(prefix="p", limit=2)):
        ids.append(listed.id)
    await greeter.ping(empty_pb2.Empty())
    return ids


async def use_admin(admin: svc_rpc.Admin) -> str:
    return (await admin.with_options_(empty_pb2.Empty())).value


async def host(channel: grpc.aio.Channel) -> None:
    client = svc_rpc.GreeterClient(channel, timeout=5.0, metadata={"x-app": "demo"})
    await use_greeter(client)
    await use_admin(StrictAdmin())
    await use_admin(svc_rpc.AdminClient(channel))
    quick = client.with_options(timeout=0.5)
    item: common_pb2.Item = await quick.get(svc_pb2.GetRequest(id="x"), metadata=[("k", "v")])
    stream = client.list(svc_pb2.ListRequest(prefix="a"))
    async for listed in stream:
        item = listed
    stream.cancel()
    trailers = await stream.trailing_metadata()
    summary = await client.upload([item, common_pb2.Item(id="2")])
    count: int = summary.count

    async def items() -> AsyncIterator[common_pb2.Item]:
        yield item

    await client.upload(items(), timeout=1)
    chat = client.chat()
    await chat.send(svc_pb2.Route(type="a"))
    await chat.done_writing()
    async for route in chat:
        print(route.type, count, trailers)
    async for route in client.chat([svc_pb2.Route(type="b")]):
        print(route.type)
    await client.ping()
    struct: struct_pb2.Struct = await client.import_(svc_pb2.Meta())
    listing: common_pb2.List = await client.close()
    print(struct, listing)
    admin = svc_rpc.AdminPlugin.client(channel)
    await admin.with_options_()
    await admin.type(empty_pb2.Empty())


async def launch() -> None:
    async with rpcplugin.launch(
        ["python", "-m", "app.gen.sample"], handshake=plugin.HANDSHAKE, versions=plugin.VERSIONS
    ) as conn:
        client = svc_rpc.GreeterClient(conn)
        await client.ping()


def serve() -> None:
    plugin.serve(greeter=Store(), admin=StrictAdmin())


def serve_sync() -> None:
    plugin.serve(greeter=SyncStore(), admin=StrictMixedAdmin())


def serve_mixed() -> None:
    plugin.serve(greeter=MixedStore(), admin=svc_rpc.AdminServicer())


def handlers() -> None:
    versions = plugin.handlers(greeter=svc_rpc.GreeterServicer(), admin=StrictAdmin())
    assert list(versions) == [1]
    assert svc_rpc.GreeterPlugin.version == plugin.VERSIONS[0]
