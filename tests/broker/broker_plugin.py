"""A plugin served by ``rpcplugin.serve`` that uses the broker both ways (tests/broker).

``brokertest.Control`` (messages are ``google.protobuf`` wrappers):

- ``Offer(StringValue prefix) -> StringValue``: serve ``brokertest.Echo`` (answers
  ``prefix + text``) through the broker under ``next_id()``; answers
  ``"<id> <network> <address> <tls>"``.
- ``CallHost(StringValue "<id> <text>") -> StringValue``: dial the host's brokered server
  ``id``, call its ``brokertest.Echo`` with ``text``; answers ``"<reply> <tls> <ms>"``
  (``ms``: from the dial to the reply).
- ``DialMissing(UInt32Value id) -> StringValue``: dial an ID nobody accepted with a 0.3 s
  timeout; answers the error.
- ``NextId(Empty) -> UInt32Value``.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf import empty_pb2, wrappers_pb2

import rpcplugin
from rpcplugin.services.broker import BrokeredServer, BrokerError, current_broker

HANDSHAKE = rpcplugin.Handshake("BROKERTEST_PLUGIN", "broker")
ECHO_PATH = "/brokertest.Echo/Echo"

Str = wrappers_pb2.StringValue


def echo_handler(prefix: str) -> grpc.GenericRpcHandler:
    """``brokertest.Echo``: answers ``prefix + text``."""

    async def echo(request: Str, context: Any) -> Str:
        return Str(value=prefix + request.value)

    return grpc.method_handlers_generic_handler(
        "brokertest.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                echo,
                request_deserializer=Str.FromString,
                response_serializer=Str.SerializeToString,
            )
        },
    )


async def call_echo(channel: grpc.aio.Channel, text: str) -> str:
    method = channel.unary_unary(
        ECHO_PATH, request_serializer=Str.SerializeToString, response_deserializer=Str.FromString
    )
    reply = await method(Str(value=text), timeout=10)
    assert isinstance(reply, Str)
    return reply.value


_served: list[BrokeredServer] = []


async def offer(request: Str, context: Any) -> Str:
    # [accept]
    broker = current_broker()  # the broker of the connection this call came in on
    server = await broker.accept(broker.next_id(), echo_handler(request.value))
    # [/accept]
    _served.append(server)
    return Str(
        value=f"{server.id} {server.endpoint.network} {server.endpoint.address} {server.tls}"
    )


async def call_host(request: Str, context: Any) -> Str:
    id_text, _, text = request.value.partition(" ")
    started = time.monotonic()
    # [dial]
    async with await current_broker().dial(int(id_text)) as connection:
        reply = await call_echo(connection.channel, text)
        # [/dial]
        ms = (time.monotonic() - started) * 1000
        return Str(value=f"{reply} {connection.tls} {ms:.1f}")


async def dial_missing(request: wrappers_pb2.UInt32Value, context: Any) -> Str:
    try:
        await current_broker().dial(request.value, timeout=0.3)
    except BrokerError as exc:
        return Str(value=f"{type(exc).__name__}: {exc}")
    return Str(value="dialled?!")


async def next_id(request: empty_pb2.Empty, context: Any) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=current_broker().next_id())


def _unary(fn: Any, request: Any, response: Any) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_unary_rpc_method_handler(
        fn, request_deserializer=request.FromString, response_serializer=response.SerializeToString
    )


CONTROL = grpc.method_handlers_generic_handler(
    "brokertest.Control",
    {
        "Offer": _unary(offer, Str, Str),
        "CallHost": _unary(call_host, Str, Str),
        "DialMissing": _unary(dial_missing, wrappers_pb2.UInt32Value, Str),
        "NextId": _unary(next_id, empty_pb2.Empty, wrappers_pb2.UInt32Value),
    },
)

if __name__ == "__main__":
    rpcplugin.serve(HANDSHAKE, {1: [CONTROL]}, name="brokertest")
