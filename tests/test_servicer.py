"""The server adapter: servicer objects behind grpc.aio, statuses, current_call()."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2 as w
from handlers.inprocess import serving

from rpcplugin.calls import Caller, Method, RpcKind
from rpcplugin.handshake import Handshake
from rpcplugin.servicer import PluginBinding, Service, Unimplemented, current_call

UPPER = Method("/test.Echo/Upper", RpcKind.UNARY, w.StringValue, w.StringValue)
COUNT = Method("/test.Echo/Count", RpcKind.SERVER_STREAM, w.Int64Value, w.Int64Value)
SUM = Method("/test.Echo/Sum", RpcKind.CLIENT_STREAM, w.Int64Value, w.Int64Value)
CHAT = Method("/test.Echo/Chat", RpcKind.BIDI_STREAM, w.StringValue, w.StringValue)
PEER = Method("/test.Echo/Peer", RpcKind.UNARY, w.StringValue, w.StringValue)
FAIL = Method("/test.Echo/Fail", RpcKind.UNARY, w.StringValue, w.StringValue)
WRONG = Method("/test.Echo/Wrong", RpcKind.UNARY, w.StringValue, w.StringValue)
MISSING = Method("/test.Echo/Missing", RpcKind.SERVER_STREAM, w.Int64Value, w.Int64Value)


class Echo:
    async def upper(self, request: w.StringValue, /) -> w.StringValue:
        return w.StringValue(value=request.value.upper())

    async def count(self, request: w.Int64Value, /) -> AsyncIterator[w.Int64Value]:
        for i in range(1, request.value + 1):
            yield w.Int64Value(value=i)

    async def sum(self, requests: AsyncIterator[w.Int64Value], /) -> w.Int64Value:
        return w.Int64Value(value=sum([r.value async for r in requests]))

    async def chat(self, requests: AsyncIterator[w.StringValue], /) -> AsyncIterator[w.StringValue]:
        async for r in requests:
            yield w.StringValue(value=f"re: {r.value}")

    async def peer(self, request: w.StringValue, /) -> w.StringValue:
        call = current_call()
        metadata = {k: str(v) for k, v in call.invocation_metadata() or ()}
        if request.value == "abort":
            await call.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
        call.set_trailing_metadata((("x-trailer", "t"),))
        return w.StringValue(
            value=f"{metadata.get('x-who', '')}|{call.time_remaining() is not None}"
        )

    async def fail(self, request: w.StringValue, /) -> w.StringValue:
        if request.value == "unimplemented":
            raise Unimplemented("test.Echo/Fail")
        raise ValueError("boom")

    async def wrong(self, request: w.StringValue, /) -> w.StringValue:
        return w.Int64Value(value=1)  # type: ignore[return-value]

    def missing(self, request: w.Int64Value, /) -> AsyncIterator[w.Int64Value]:
        raise Unimplemented("test.Echo/Missing")


SERVICE: Service[Echo] = Service(
    "test.Echo",
    {
        "upper": UPPER,
        "count": COUNT,
        "sum": SUM,
        "chat": CHAT,
        "peer": PEER,
        "fail": FAIL,
        "wrong": WRONG,
        "missing": MISSING,
    },
)


@pytest.fixture
async def caller(tmp_path: Path) -> AsyncIterator[Caller]:
    async with serving(SERVICE.handler(Echo()), tmp_path) as caller:
        yield caller


async def test_all_four_kinds(caller: Caller) -> None:
    assert (await caller.unary(UPPER, w.StringValue(value="hi"))).value == "HI"
    assert [r.value async for r in caller.server_stream(COUNT, w.Int64Value(value=3))] == [1, 2, 3]
    assert (await caller.client_stream(SUM, [w.Int64Value(value=v) for v in (1, 2, 3)])).value == 6
    replies = [r.value async for r in caller.bidi_stream(CHAT, [w.StringValue(value="a")])]
    assert replies == ["re: a"]


async def test_current_call_gives_metadata_deadline_and_trailers(caller: Caller) -> None:
    stream = caller.server_stream(COUNT, w.Int64Value(value=0))
    assert [r async for r in stream] == []
    reply = await caller.unary(PEER, w.StringValue(), metadata={"x-who": "me"}, timeout=5)
    assert reply.value == "me|True"


async def test_abort_passes_through(caller: Caller) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await caller.unary(PEER, w.StringValue(value="abort"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details() == "no"


async def test_unimplemented_maps_to_status(caller: Caller) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await caller.unary(FAIL, w.StringValue(value="unimplemented"))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        _ = [r async for r in caller.server_stream(MISSING, w.Int64Value())]
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "test.Echo/Missing" in (info.value.details() or "")


async def test_other_exceptions_are_unknown_and_logged(
    caller: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="rpcplugin.servicer"),
        pytest.raises(grpc.aio.AioRpcError) as info,
    ):
        await caller.unary(FAIL, w.StringValue(value="x"))
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert info.value.details() == "boom"
    assert any("/test.Echo/Fail failed" in r.getMessage() for r in caplog.records)


async def test_wrong_reply_type_is_reported(caller: Caller) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await caller.unary(WRONG, w.StringValue())
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert "expected google.protobuf.StringValue" in (info.value.details() or "")


def test_current_call_outside_a_handler() -> None:
    with pytest.raises(LookupError, match="only available while handling"):
        current_call()


def test_service_rejects_foreign_methods() -> None:
    with pytest.raises(ValueError, match=r"not a method of other\.Svc"):
        Service("other.Svc", {"upper": UPPER})


def test_plugin_binding() -> None:
    made: list[object] = []

    def client(channel: object) -> str:
        made.append(channel)
        return "client"

    binding: PluginBinding[Echo, str] = PluginBinding(
        SERVICE, cookie_key="K", cookie_value="V", version=3, client=client
    )
    assert binding.handshake == Handshake(cookie_key="K", cookie_value="V")
    assert list(binding.versions(Echo())) == [3]
    assert isinstance(binding.handler(Echo()), grpc.GenericRpcHandler)
    assert binding.client("conn") == "client"  # type: ignore[arg-type]
    assert made == ["conn"]


async def test_handlers_run_concurrently_with_their_own_call(caller: Caller) -> None:
    """Each RPC sees its own context, even when many run at once."""
    replies = await asyncio.gather(
        *(caller.unary(PEER, w.StringValue(), metadata={"x-who": str(i)}) for i in range(20))
    )
    assert [r.value.split("|")[0] for r in replies] == [str(i) for i in range(20)]


def _numbers() -> Iterator[w.Int64Value]:
    yield from (w.Int64Value(value=i) for i in range(5))


async def test_client_stream_from_generator(caller: Caller) -> None:
    assert (await caller.client_stream(SUM, _numbers())).value == 10
