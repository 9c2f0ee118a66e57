"""The client side: Caller options, ServerStream, BidiStream, ClientBase.with_options."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2 as w

from rpcplugin.calls import (
    UNSET,
    BidiStream,
    Caller,
    CallOptions,
    ClientBase,
    Method,
    RpcKind,
    ServerStream,
    channel_of,
)
from rpcplugin.servicer import Service, current_call

ECHO = Method("/t.S/Echo", RpcKind.UNARY, w.StringValue, w.StringValue)
SLOW = Method("/t.S/Slow", RpcKind.UNARY, w.StringValue, w.StringValue)
TICKS = Method("/t.S/Ticks", RpcKind.SERVER_STREAM, w.Int64Value, w.Int64Value)
ADD = Method("/t.S/Add", RpcKind.CLIENT_STREAM, w.Int64Value, w.Int64Value)
TALK = Method("/t.S/Talk", RpcKind.BIDI_STREAM, w.StringValue, w.StringValue)


class Impl:
    async def echo(self, request: w.StringValue, /) -> w.StringValue:
        metadata = current_call().invocation_metadata() or ()
        pairs = sorted(f"{k}={v!s}" for k, v in metadata if k.startswith("x-"))
        return w.StringValue(value=f"{request.value}|{','.join(pairs)}")

    async def slow(self, request: w.StringValue, /) -> w.StringValue:
        await asyncio.sleep(5)
        return request

    async def ticks(self, request: w.Int64Value, /) -> AsyncIterator[w.Int64Value]:
        current_call().set_trailing_metadata((("x-count", str(request.value)),))
        for i in range(request.value or 1_000_000):
            yield w.Int64Value(value=i)
            await asyncio.sleep(0)

    async def add(self, requests: AsyncIterator[w.Int64Value], /) -> w.Int64Value:
        return w.Int64Value(value=sum([r.value async for r in requests]))

    async def talk(self, requests: AsyncIterator[w.StringValue], /) -> AsyncIterator[w.StringValue]:
        async for r in requests:
            yield w.StringValue(value=r.value * 2)


SERVICE: Service[Impl] = Service(
    "t.S", {"echo": ECHO, "slow": SLOW, "ticks": TICKS, "add": ADD, "talk": TALK}
)


class Client(ClientBase):
    """What a generated client looks like."""

    __slots__ = ()

    async def echo(
        self, request: w.StringValue, /, *, timeout: float | None = None, metadata: object = None
    ) -> w.StringValue:
        return await self._caller.unary(ECHO, request, timeout=timeout, metadata=None)


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((SERVICE.handler(Impl()),))
    address = f"unix:{tmp_path}/s.sock"
    server.add_insecure_port(address)
    await server.start()
    async with grpc.aio.insecure_channel(address) as channel:
        yield channel
    await server.stop(None)


class Conn:
    """Like rpcplugin's PluginConnection: anything with a .channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel


async def test_channel_or_connection(channel: grpc.aio.Channel) -> None:
    assert channel_of(channel) is channel
    assert channel_of(Conn(channel)) is channel
    with pytest.raises(TypeError, match=r"grpc.aio.Channel or an object with a .channel"):
        channel_of(object())  # type: ignore[arg-type]


async def test_default_and_per_call_metadata_merge(channel: grpc.aio.Channel) -> None:
    caller = Caller(Conn(channel), CallOptions(metadata={"x-a": "1"}))
    reply = await caller.unary(ECHO, w.StringValue(value="v"), metadata=[("x-b", "2")])
    assert reply.value == "v|x-a=1,x-b=2"
    assert (await caller.unary(ECHO, None)).value == "|x-a=1"  # None: the default message


async def test_timeouts(channel: grpc.aio.Channel) -> None:
    caller = Caller(channel, CallOptions(timeout=0.05))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await caller.unary(SLOW, w.StringValue())
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await caller.with_options(timeout=None).unary(SLOW, w.StringValue(), timeout=0.05)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caller.with_options(timeout=None).options.timeout is None
    assert caller.with_options().options.timeout == 0.05
    assert caller.with_options(metadata=UNSET).options.metadata == ()


async def test_server_stream_reads_cancels_and_has_trailers(channel: grpc.aio.Channel) -> None:
    caller = Caller(channel)
    stream = caller.server_stream(TICKS, w.Int64Value(value=3))
    assert isinstance(stream, ServerStream)
    assert [r.value async for r in stream] == [0, 1, 2]
    assert ("x-count", "3") in await stream.trailing_metadata()

    endless = caller.server_stream(TICKS, w.Int64Value(value=0))
    got = []
    async for reply in endless:
        got.append(reply.value)
        if len(got) == 5:
            assert endless.cancel()
    assert got == [0, 1, 2, 3, 4]
    assert [r async for r in endless] == []

    async with caller.server_stream(TICKS, w.Int64Value(value=0)) as scoped:
        assert (await anext(scoped)).value == 0
    assert scoped._call.cancelled()


async def test_client_stream_takes_lists_and_async_iterables(channel: grpc.aio.Channel) -> None:
    caller = Caller(channel)

    async def numbers() -> AsyncIterator[w.Int64Value]:
        for i in range(4):
            yield w.Int64Value(value=i)

    assert (await caller.client_stream(ADD, [w.Int64Value(value=5)])).value == 5
    assert (await caller.client_stream(ADD, numbers())).value == 6
    assert (await caller.client_stream(ADD, ())).value == 0


async def test_bidi_interactive_and_from_iterable(channel: grpc.aio.Channel) -> None:
    caller = Caller(channel)
    chat = caller.bidi_stream(TALK)
    assert isinstance(chat, BidiStream)
    await chat.send(w.StringValue(value="a"))
    assert (await anext(chat)).value == "aa"
    await chat.send(w.StringValue(value="b"))
    await chat.done_writing()
    assert [r.value async for r in chat] == ["bb"]

    fed = caller.bidi_stream(TALK, [w.StringValue(value="x"), w.StringValue(value="y")])
    with pytest.raises(grpc.aio.UsageError):
        await fed.send(w.StringValue(value="z"))
    assert [r.value async for r in fed] == ["xx", "yy"]


async def test_client_base_with_options_copies(channel: grpc.aio.Channel) -> None:
    client = Client(Conn(channel), timeout=1.0, metadata={"x-k": "v"})
    other = client.with_options(metadata=None)
    assert type(other) is Client
    assert other is not client
    assert other._caller.options.timeout == 1.0
    assert (await client.echo(w.StringValue(value="m"))).value == "m|x-k=v"
    assert (await other.echo(w.StringValue(value="m"))).value == "m|"
    assert "Client(" in repr(client)


def test_method_paths_are_checked() -> None:
    with pytest.raises(ValueError, match=r"looks like /package\.Service/Method"):
        Method("t.S/Echo", RpcKind.UNARY, w.StringValue, w.StringValue)
    assert ECHO.name == "Echo"
    assert "UNARY" in repr(ECHO)


class Target(Conn):
    """A picked target: its channel, an explain_failure and a track hook, all recorded."""

    def __init__(self, channel: grpc.aio.Channel, name: str) -> None:
        super().__init__(channel)
        self.name = name
        self.tracked: list[object] = []

    async def explain_failure(self, error: grpc.aio.AioRpcError) -> BaseException | None:
        return LookupError(f"explained by {self.name}: {error.code().name}")

    def track(self, call: object) -> None:
        self.tracked.append(call)


class Picker:
    """Like a pool: picks a target per call, here in turn."""

    def __init__(self, *targets: Target) -> None:
        self.targets = targets
        self.picks: list[str] = []

    @property
    def channel(self) -> grpc.aio.Channel:
        return self.targets[0].channel

    def pick_channel(self) -> Target:
        target = self.targets[len(self.picks) % len(self.targets)]
        self.picks.append(target.name)
        return target

    def __repr__(self) -> str:
        return "<Picker>"


async def test_a_picker_is_asked_once_per_call_and_its_pick_explains_and_tracks(
    channel: grpc.aio.Channel,
) -> None:
    a, b = Target(channel, "a"), Target(channel, "b")
    picker = Picker(a, b)
    caller = Caller(picker, CallOptions(timeout=5))
    assert (await caller.unary(ECHO, w.StringValue(value="v"))).value == "v|"
    assert [r.value async for r in caller.server_stream(TICKS, w.Int64Value(value=3))] == [0, 1, 2]
    assert (await caller.client_stream(ADD, [w.Int64Value(value=2)])).value == 2
    assert [r.value async for r in caller.bidi_stream(TALK, [w.StringValue(value="x")])] == ["xx"]
    assert picker.picks == ["a", "b", "a", "b"]  # one pick per call, a stream's included
    assert (len(a.tracked), len(b.tracked)) == (2, 2)
    assert all(call.done() for call in a.tracked + b.tracked)  # type: ignore[attr-defined]

    with pytest.raises(LookupError, match="explained by a: DEADLINE_EXCEEDED"):
        await caller.with_options(timeout=0.05).unary(SLOW, w.StringValue())
    assert picker.picks[-1] == "a"
    client = Client(picker)
    assert repr(client) == "Client(<Picker>)"
    with pytest.raises(LookupError, match="explained by b"):
        await client.with_options(timeout=0.05)._caller.unary(SLOW, w.StringValue())
