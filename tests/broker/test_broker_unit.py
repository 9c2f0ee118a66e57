"""GRPCBroker in one process: two brokers wired back to back, as the broker stream would.

Covers docs/protocol.md §6.4 and P18/P23: IDs, accept/dial in both TLS stacks, the 5 s rules
(with short timeouts), listeners under P11–P13, certificate checks that refuse strangers, and
cleanup.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from broker_plugin import call_echo, echo_handler

from rpcplugin._wire import mtls
from rpcplugin._wire.dial import automtls
from rpcplugin.config import PluginSettings
from rpcplugin.services.broker import (
    BrokerDialTimeout,
    BrokerError,
    BrokerTLS,
    GRPCBroker,
    current_broker,
)

Pair = tuple[GRPCBroker, GRPCBroker]


async def _pump(source: GRPCBroker, target: GRPCBroker) -> None:
    while True:
        target._received(await source._next_outgoing())


@pytest.fixture
async def wire() -> AsyncIterator[Any]:
    """``wire(a, b)`` carries ConnInfo both ways between two brokers until the test ends."""
    tasks: list[asyncio.Task[None]] = []
    brokers: list[GRPCBroker] = []

    def connect(a: GRPCBroker, b: GRPCBroker) -> Pair:
        tasks.append(asyncio.ensure_future(_pump(a, b)))
        tasks.append(asyncio.ensure_future(_pump(b, a)))
        brokers.extend((a, b))
        return a, b

    yield connect
    for task in tasks:
        task.cancel()
    for broker in brokers:
        await broker.close()


def tls_pair(backend: str = "auto", curve: str = "secp256r1") -> tuple[BrokerTLS, BrokerTLS]:
    """AutoMTLS material for a host (P-256, as ours) and a plugin (``curve``)."""
    host = mtls.generate_certificate()
    plugin = mtls.generate_certificate(curve)
    return (
        BrokerTLS(host, plugin.cert_der, backend),  # type: ignore[arg-type]
        BrokerTLS(plugin, host.cert_der, backend),  # type: ignore[arg-type]
    )


def settings_in(directory: object) -> PluginSettings:
    return PluginSettings(unix_socket_dir=str(directory))


def test_next_id_counts_from_1_per_side_and_wraps() -> None:
    a, b = GRPCBroker(), GRPCBroker()
    assert [a.next_id() for _ in range(3)] == [1, 2, 3]
    assert b.next_id() == 1
    a._next_id = 0xFFFFFFFE
    assert [a.next_id(), a.next_id()] == [0xFFFFFFFF, 1]


@pytest.mark.parametrize("mode", ["plaintext", "grpc", "openssl", "p521-peer"])
async def test_accept_on_one_side_dial_on_the_other(wire: Any, tmp_path: Any, mode: str) -> None:
    if mode == "plaintext":
        host_tls, plugin_tls = None, None
    elif mode == "p521-peer":  # a go-plugin peer's key: grpcio cannot verify it, OpenSSL can
        host_tls, plugin_tls = tls_pair("auto", "secp521r1")
    else:
        host_tls, plugin_tls = tls_pair(mode)
    host, plugin = wire(
        GRPCBroker(tls=host_tls, settings=settings_in(tmp_path)),
        GRPCBroker(tls=plugin_tls, settings=settings_in(tmp_path)),
    )
    # plugin serves, host dials
    server = await plugin.accept(plugin.next_id(), echo_handler("p:"))
    assert server.id == 1 and server.endpoint.network == "unix"
    assert os.path.dirname(server.endpoint.address) == str(tmp_path)
    async with await host.dial(server.id) as connection:
        assert await call_echo(connection.channel, "x") == "p:x"
    # host serves, plugin dials (the callback direction)
    callback = await host.accept(host.next_id(), echo_handler("h:"))
    async with await plugin.dial(callback.id) as connection:
        assert await call_echo(connection.channel, "y") == "h:y"
        expected = {"plaintext": "off", "grpc": "grpc", "openssl": "openssl"}.get(mode)
        if expected is not None:
            assert server.tls == callback.tls == connection.tls == expected
        else:  # the host's server must verify the P-521 client cert: OpenSSL; dialling it too
            assert (callback.tls, server.tls) == ("openssl", "grpc")
            assert connection.tls == "grpc"  # the plugin dials the host's P-256 cert natively


@pytest.mark.parametrize("backend", ["grpc", "openssl"])
async def test_a_brokered_server_refuses_clients_without_the_peers_certificate(
    wire: Any, tmp_path: Any, backend: str
) -> None:
    host_tls, plugin_tls = tls_pair(backend)
    _host, plugin = wire(
        GRPCBroker(tls=host_tls, settings=settings_in(tmp_path)),
        GRPCBroker(tls=plugin_tls, settings=settings_in(tmp_path)),
    )
    server = await plugin.accept(7, echo_handler("p:"))
    assert host_tls is not None
    plugin_der = host_tls.peer_der
    # a stranger that knows the plugin's certificate but presents its own
    stranger = await automtls(server.endpoint, mtls.generate_certificate(), plugin_der, backend)  # type: ignore[arg-type]
    # no client certificate at all
    plain = grpc.aio.insecure_channel(server.endpoint.grpc_target)
    try:
        for channel in (stranger.channel, plain):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await asyncio.wait_for(call_echo(channel, "x"), 10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await stranger.close()
        await plain.close()
    # and the dialler checks the server: a broker trusting another certificate cannot connect
    impostor = GRPCBroker(tls=BrokerTLS(host_tls.identity, mtls.generate_certificate().cert_der))
    impostor._received(_info(server))
    async with await impostor.dial(7) as connection:
        with pytest.raises(grpc.aio.AioRpcError):
            await asyncio.wait_for(call_echo(connection.channel, "x"), 10)
    await impostor.close()


def _info(server: Any) -> Any:
    from rpcplugin.protos import grpc_broker_pb2 as pb

    return pb.ConnInfo(
        service_id=server.id, network=server.endpoint.network, address=server.endpoint.address
    )


async def test_dial_waits_for_the_conninfo_then_times_out(wire: Any) -> None:
    host, plugin = wire(GRPCBroker(), GRPCBroker())
    started = time.monotonic()
    with pytest.raises(BrokerDialTimeout, match=r"id 42 within 0\.2 s"):
        await host.dial(42, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 10  # timed out (the upper bound: no hang)
    assert host._pending == {}
    # a dial that starts before the accept gets the ConnInfo when it arrives
    dialling = asyncio.ensure_future(host.dial(43, timeout=5))
    await asyncio.sleep(0.1)
    await plugin.accept(43, echo_handler("late:"))
    async with await dialling as connection:
        assert await call_echo(connection.channel, "x") == "late:x"


async def test_unclaimed_conninfo_is_dropped_after_the_ttl(wire: Any) -> None:
    host, plugin = wire(GRPCBroker(unclaimed_ttl=0.2), GRPCBroker())
    await plugin.accept(5, echo_handler(""))
    await plugin.accept(6, echo_handler("kept:"))
    await asyncio.sleep(0.05)
    assert set(host._pending) == {5, 6}
    async with await host.dial(6, timeout=1) as connection:  # claimed in time
        assert await call_echo(connection.channel, "x") == "kept:x"
    await asyncio.sleep(0.3)
    assert host._pending == {}
    with pytest.raises(BrokerDialTimeout):
        await host.dial(5, timeout=0.1)


async def test_one_brokered_server_serves_many_dials(wire: Any) -> None:
    host, plugin = wire(GRPCBroker(), GRPCBroker())
    await host.accept(8, echo_handler("h:"))
    for text in ("a", "b", "c"):  # each call of the plugin dials again
        async with await plugin.dial(8, timeout=1) as connection:
            assert await call_echo(connection.channel, text) == f"h:{text}"
    assert plugin._pending == {}


async def test_listeners_follow_the_main_listeners_rules(wire: Any, tmp_path: Any) -> None:
    group = str(os.getgid())
    tcp = PluginSettings(transport="tcp", min_port=23500, max_port=23600)
    host, plugin = wire(
        GRPCBroker(settings=PluginSettings(unix_socket_dir=str(tmp_path), unix_socket_group=group)),
        GRPCBroker(settings=tcp),
    )
    shared = await host.accept(1, echo_handler(""))
    mode = os.stat(shared.endpoint.address).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660  # P12
    served = await plugin.accept(1, echo_handler("tcp:"))
    assert served.endpoint.network == "tcp"  # P13: loopback, first free port in the range
    address, port = served.endpoint.address.rsplit(":", 1)
    assert address == "127.0.0.1" and 23500 <= int(port) <= 23600
    async with await host.dial(1) as connection:
        assert await call_echo(connection.channel, "x") == "tcp:x"
    await host.close()
    assert list(tmp_path.iterdir()) == []  # P11: removed on close


async def test_current_broker_inside_brokered_handlers_only(wire: Any) -> None:
    host, plugin = wire(GRPCBroker(), GRPCBroker())
    with pytest.raises(LookupError, match="only available while handling an RPC"):
        current_broker()
    seen: list[GRPCBroker] = []

    async def which(request: Any, context: Any) -> Any:
        seen.append(current_broker())
        return request

    from google.protobuf import wrappers_pb2

    handler = grpc.method_handlers_generic_handler(
        "brokertest.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                which,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=wrappers_pb2.StringValue.SerializeToString,
            )
        },
    )
    await plugin.accept(1, handler)
    async with await host.dial(1) as connection:
        await call_echo(connection.channel, "x")
    assert seen == [plugin]


async def test_misuse_is_reported(wire: Any) -> None:
    _host, plugin = wire(GRPCBroker(), GRPCBroker())
    await plugin.accept(3, echo_handler(""))
    with pytest.raises(BrokerError, match="already being served"):
        await plugin.accept(3, echo_handler(""))
    for bad in (-1, 1 << 32, True):
        with pytest.raises(BrokerError, match="uint32"):
            await plugin.accept(bad, echo_handler(""))  # type: ignore[arg-type]
    unavailable = GRPCBroker(unavailable="no broker here")
    with pytest.raises(BrokerError, match="no broker here"):
        await unavailable.dial(1)
    await plugin.close()
    with pytest.raises(BrokerError, match="closed"):
        await plugin.accept(4, echo_handler(""))
