"""Per-client credentials: a call without the right token is UNAUTHENTICATED and never runs."""

from __future__ import annotations

import asyncio

import grpc
import pytest

import rpcplugin
from rpcplugin.errors import ConfigError
from rpcplugin.ops import auth
from rpcplugin.ops.interception import CONTROL_SERVICES

from .helpers import Echo, free_port, plain_server, say, served

TOKENS = {"ci": "s3cret-ci", "ops": "s3cret-ops"}


async def test_a_call_without_the_token_is_unauthenticated() -> None:
    echo = Echo()
    check = auth.BearerTokens(TOKENS)
    async with served(echo, auth=check, shutdown_metadata=auth.bearer("s3cret-ops")) as address:
        # health is exempt, so connecting (which health-checks) works without a token
        async with rpcplugin.connect(address) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await say(anonymous.channel)(b"hi")
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "missing credentials" in (caught.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await say(anonymous.channel)(b"hi", metadata=auth.bearer("guess"))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert caught.value.details() == "invalid credentials"
            with pytest.raises(grpc.aio.AioRpcError) as caught:  # not a bearer token
                await say(anonymous.channel)(b"hi", metadata=(("authorization", "Basic eDp5"),))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # the controller is not exempt: nobody may shut the plugin down anonymously
            shutdown = anonymous.channel.unary_unary("/plugin.GRPCController/Shutdown")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await shutdown(b"")
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert echo.served == 0

        async with rpcplugin.connect(address, metadata=auth.bearer("s3cret-ci")) as conn:
            assert await say(conn.channel)(b"hi") == b"hi"
            # every kind of call carries the default metadata
            assert [m async for m in conn.channel.unary_stream("/ops.Echo/Many")(b"m")] == [
                b"m"
            ] * 3
            assert await conn.channel.stream_unary("/ops.Echo/Gather")(iter([b"a", b"b"])) == b"ab"
            chat = conn.channel.stream_stream("/ops.Echo/Chat")(iter([b"c", b"d"]))
            assert [m async for m in chat] == [b"c", b"d"]
            # a call's own credentials win over the connection's
            assert await say(conn.channel)(b"x", metadata=auth.bearer("s3cret-ops")) == b"x"
    assert echo.clients == ["ci", "ops"]
    assert echo.served == 5


async def test_async_checks_custom_exemptions_and_failing_checks() -> None:
    seen: list[str] = []

    async def check(request: auth.AuthRequest) -> str | None:
        seen.append(request.method)
        await asyncio.sleep(0)
        if request.get("x-api-key") == "boom":
            raise RuntimeError("directory unavailable")
        return "svc" if request.get("x-api-key") == "k1" else None

    interceptor = auth.AuthInterceptor(check, exempt=CONTROL_SERVICES)
    echo = Echo()
    address = f"127.0.0.1:{free_port()}"
    server = await plain_server(address, echo, interceptors=[interceptor])
    try:
        async with rpcplugin.connect(address, metadata=(("x-api-key", "k1"),)) as conn:
            assert await say(conn.channel)(b"ok") == b"ok"
            for key in ("boom", "nope"):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await say(conn.channel)(b"x", metadata=(("x-api-key", key),))
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(None)
    assert seen == ["/ops.Echo/Say"] * 3  # the exempt health check never reached the check
    assert echo.clients == ["svc"] and interceptor.refused == 2


def test_tokens_are_validated_and_never_shown() -> None:
    with pytest.raises(ConfigError):
        auth.bearer("")
    with pytest.raises(ConfigError):
        auth.bearer("two words")
    with pytest.raises(ConfigError):
        auth.BearerTokens([])
    with pytest.raises(ConfigError):
        auth.DefaultMetadata((("grpc-timeout", "1"),))
    assert "s3cret" not in repr(auth.BearerTokens(TOKENS))
    assert "s3cret" not in repr(auth.DefaultMetadata(auth.bearer("s3cret")))
    anonymous = auth.BearerTokens(["t1", "t2"])
    assert anonymous(auth.AuthRequest("/x/y", auth.bearer("t2"))) == "client-2"
    assert anonymous(auth.AuthRequest("/x/y", (("authorization", "bearer  t1 "),))) == "client-1"
    assert anonymous(auth.AuthRequest("/x/y", (("authorization", "Bearer"),))) is None
