"""``rpcplugin.testing``: a servicer served in this event loop over a real gRPC channel, with
go-plugin's services beside it, plaintext or mutual TLS on either backend, and a real
``PluginConnection`` for host code.

The service is bound by hand here (``calls.Method``, ``servicer.Service``,
``servicer.PluginBinding``) over the conformance protos, so these tests need no generator; the
calculator example's tests (tests/examples/test_calculator.py) use generated code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

import rpcplugin
from rpcplugin import calls, servicer, testing
from rpcplugin.cli import schema
from rpcplugin.ops import auth
from rpcplugin.services import broker as broker_mod
from rpcplugin.services import controller

SERVICE = "conformance.v1.Conformance"


class Echoer:
    """Echo answers with the caller's peer in the text; Count streams 1..n."""

    def __init__(self, pb: SimpleNamespace) -> None:
        self.pb = pb
        self.peers: list[rpcplugin.Peer] = []

    async def echo(self, request: Any, /) -> Any:
        peer = rpcplugin.current_peer()
        self.peers.append(peer)
        who = auth.current_client()
        text = f"{request.text}|{peer.security}|{peer.tls_backend}|{who}"
        return self.pb.v1.EchoReply(text=text, version=1)

    async def count(self, request: Any, /) -> AsyncIterator[Any]:
        for i in range(1, request.n + 1):
            yield self.pb.v1.CountReply(i=i)


@pytest.fixture
def binding(pb: SimpleNamespace) -> Any:
    v1 = pb.v1
    echo = calls.Method(f"/{SERVICE}/Echo", calls.RpcKind.UNARY, v1.EchoRequest, v1.EchoReply)
    count = calls.Method(
        f"/{SERVICE}/Count", calls.RpcKind.SERVER_STREAM, v1.CountRequest, v1.CountReply
    )

    class Client(calls.ClientBase):
        async def echo(self, request: Any) -> Any:
            return await self._caller.unary(echo, request)

        def count(self, request: Any) -> calls.ServerStream[Any]:
            return self._caller.server_stream(count, request)

    service = servicer.Service[Echoer](SERVICE, {"echo": echo, "count": count})
    return servicer.PluginBinding(
        service, cookie_key="K", cookie_value="v", version=3, client=Client
    )


async def test_serve_hands_back_the_bindings_client(pb: SimpleNamespace, binding: Any) -> None:
    async with testing.serve(binding, Echoer(pb)) as client:
        reply = await client.echo(pb.v1.EchoRequest(text="hi"))
        assert reply.text == "hi|insecure|None|None"
        assert [r.i async for r in client.count(pb.v1.CountRequest(n=4))] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("tls", "seen_as"),
    [(True, "grpc"), ("grpc", "grpc"), ("openssl", "openssl-relay")],
    ids=["auto", "grpc", "openssl"],
)
async def test_mutual_tls_the_handler_sees_the_host_certificate(
    pb: SimpleNamespace, binding: Any, tls: Any, seen_as: str
) -> None:
    servicer_ = Echoer(pb)
    async with testing.start(binding.versions(servicer_), tls=tls) as conn:
        assert conn.tls == ("openssl" if tls == "openssl" else "grpc")
        reply = await binding.client(conn).echo(pb.v1.EchoRequest(text="x"))
    assert reply.text == f"x|tls|{seen_as}|None"
    (peer,) = servicer_.peers
    assert conn.host_certificate is not None and conn.plugin_certificate is not None
    assert peer.certificate_der == conn.host_certificate
    assert peer.certificate_der != conn.plugin_certificate
    assert peer.certificate is not None  # cryptography's view of the same DER
    assert peer.fingerprint is not None and len(peer.fingerprint) == 64


class SyncEchoer(Echoer):
    """Echo as a plain ``def``: it runs on a worker thread, where the call context must follow."""

    def echo(self, request: Any, /) -> Any:  # type: ignore[override]
        peer = rpcplugin.current_peer()
        self.peers.append(peer)
        text = f"{request.text}|{peer.security}|{peer.tls_backend}|{servicer.current_call().peer()}"
        return self.pb.v1.EchoReply(text=text, version=1)


@pytest.mark.parametrize("tls", ["grpc", "openssl"])
async def test_a_def_handler_on_a_worker_sees_the_same_peer(
    pb: SimpleNamespace, binding: Any, tls: str
) -> None:
    servicer_ = SyncEchoer(pb)
    async with testing.start(binding.versions(servicer_), tls=tls) as conn:
        reply = await binding.client(conn).echo(pb.v1.EchoRequest(text="x"))
    seen_as = "openssl-relay" if tls == "openssl" else "grpc"
    text, security, backend, address = reply.text.split("|", 3)
    assert (text, security, backend) == ("x", "tls", seen_as)
    (peer,) = servicer_.peers
    assert peer.certificate_der == conn.host_certificate
    assert address.startswith("unix:")  # current_call() itself works on the worker too


async def test_the_go_plugin_services_are_served(pb: SimpleNamespace, binding: Any) -> None:
    out: list[bytes] = []
    async with testing.start(binding.versions(Echoer(pb)), stdout=out.append) as conn:
        assert isinstance(conn, rpcplugin.PluginConnection)
        await conn.ping()  # grpc.health.v1
        conn.stdio.write(1, b"to the host\n")  # GRPCStdio
        for _ in range(500):
            if out:
                break
            await asyncio.sleep(0.01)
        assert b"".join(out) == b"to the host\n"
        # GRPCBroker: the plugin side serves a brokered server, the host side dials it
        brokered = await conn.plugin_broker.accept(7, *binding.versions(Echoer(pb))[3])
        dialed = await conn.broker.dial(7)
        reply = await binding.client(dialed.channel).echo(pb.v1.EchoRequest(text="b"))
        assert reply.text.startswith("b|insecure")
        await dialed.close()
        await brokered.close()
        # server reflection, as on a launched plugin
        found = await schema.from_reflection(conn.channel)
        assert found is not None and found.user_services() == [SERVICE]
        # GRPCController
        assert not conn.shutdown_requested.is_set()
        await controller.shutdown(conn.channel, 5.0)
        await asyncio.wait_for(conn.shutdown_requested.wait(), 5.0)
        directory = os.path.dirname(conn.endpoint.address)
    assert not os.path.exists(directory), "the socket directory was left behind"


async def test_plugin_side_auth_and_host_side_metadata(pb: SimpleNamespace, binding: Any) -> None:
    tokens = auth.BearerTokens({"ci": "s3cret"})
    versions = binding.versions(Echoer(pb))
    async with testing.start(versions, auth=tokens, metadata=auth.bearer("s3cret")) as conn:
        reply = await binding.client(conn).echo(pb.v1.EchoRequest(text="a"))
        assert reply.text.endswith("|ci")
    async with testing.start(versions, auth=tokens) as conn:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await binding.client(conn).echo(pb.v1.EchoRequest(text="a"))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_current_broker_and_tcp(pb: SimpleNamespace, binding: Any) -> None:
    seen: list[broker_mod.GRPCBroker] = []

    class Recording(Echoer):
        async def echo(self, request: Any, /) -> Any:
            seen.append(rpcplugin.current_broker())
            return await super().echo(request)

    async with testing.start(binding.versions(Recording(pb)), transport="tcp") as conn:
        assert conn.endpoint.network == "tcp"
        reply = await binding.client(conn).echo(pb.v1.EchoRequest(text="t"))
        assert reply.text.startswith("t|insecure")
        assert seen == [conn.plugin_broker]


async def test_a_version_that_is_not_served_is_a_config_error(
    pb: SimpleNamespace, binding: Any
) -> None:
    with pytest.raises(rpcplugin.ConfigError, match="one of the served versions"):
        await testing.start(binding.versions(Echoer(pb)), version=9)
