"""go-plugin's services registered as one handler and built once (issue 15): by the plugin server
right after its handshake line, or by the first call to one of them, whichever comes first."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from rpcplugin.protos import grpc_stdio_pb2
from rpcplugin.services import stdio
from rpcplugin.services.broker import GRPCBroker, current_broker
from rpcplugin.services.goplugin import (
    SERVICE_NAMES,
    BrokerCell,
    GoPluginServices,
    Loaded,
    bind,
    unbind,
)
from rpcplugin.services.reflection import service_names


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class _Loader:
    """Counts its calls; serves one Shutdown handler."""

    def __init__(self) -> None:
        self.calls = 0
        self.handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
            lambda request, context: request
        )
        self.broker = GRPCBroker()

    def __call__(self) -> Loaded:
        self.calls += 1
        methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "/plugin.GRPCController/Shutdown": self.handler
        }
        return methods, self.broker


def test_other_services_are_not_ours_and_load_nothing() -> None:
    loader = _Loader()
    services = GoPluginServices(loader)
    for method in ("/kv.KV/Get", "/plugin.GRPCControllerX/Shutdown", "/plugin"):
        assert services.service(_Details(method)) is None
    assert loader.calls == 0
    assert not services.loaded


def test_the_first_call_to_one_of_them_builds_them_once() -> None:
    loader = _Loader()
    services = GoPluginServices(loader)
    assert services.service(_Details("/plugin.GRPCController/Shutdown")) is loader.handler
    assert services.loaded
    # a method of one of the names that the services do not have: UNIMPLEMENTED, as before
    assert services.service(_Details("/plugin.GRPCController/Nope")) is None
    services.load()
    assert services.service(_Details("/plugin.GRPCController/Shutdown")) is loader.handler
    assert loader.calls == 1


def test_load_builds_them_before_any_call_and_fills_the_broker_cell() -> None:
    loader = _Loader()
    services = GoPluginServices(loader)
    services.load()
    assert loader.calls == 1
    assert services.broker_cell.broker is loader.broker


def test_current_broker_reads_the_cell_and_builds_the_services_when_needed() -> None:
    loader = _Loader()
    services = GoPluginServices(loader)
    token = bind(services.broker_cell)
    try:
        assert current_broker() is loader.broker
    finally:
        unbind(token)
    assert loader.calls == 1
    with pytest.raises(LookupError, match="only available while handling an RPC"):
        current_broker()


def test_an_empty_cell_says_so() -> None:
    with pytest.raises(LookupError):
        BrokerCell().get()
    broker = GRPCBroker()
    assert BrokerCell(broker).get() is broker


def test_reflection_lists_the_four_services() -> None:
    assert service_names([GoPluginServices(_Loader())]) == list(SERVICE_NAMES)


def test_stdio_channel_numbers_match_the_protocol() -> None:
    # the buffer and the capture use plain numbers so that they need no protobuf before the line
    assert stdio.STDOUT == grpc_stdio_pb2.StdioData.STDOUT
    assert stdio.STDERR == grpc_stdio_pb2.StdioData.STDERR
