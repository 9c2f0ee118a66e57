"""A plugin that dies during a call: generated clients raise ``PluginExitedDuringCall``, which
carries the exit status and stderr tail and is still a ``grpc.aio.AioRpcError``."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

import rpcplugin

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "calculator"


@pytest.fixture(scope="module")
def calculator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sys.path.insert(0, str(EXAMPLE))
    import demo

    parent = tmp_path_factory.mktemp("calc")
    demo.generate(str(parent))
    sys.path.insert(0, str(parent))
    import calculator.plugin

    return calculator


@pytest.fixture
async def conn(calculator: Any) -> AsyncIterator[rpcplugin.PluginConnection]:
    parent = os.path.dirname(os.path.dirname(calculator.__file__))
    async with rpcplugin.launch(
        [sys.executable, "-m", "calculator"],
        handshake=calculator.plugin.HANDSHAKE,
        versions=calculator.plugin.VERSIONS,
        env={"PYTHONPATH": parent},
    ) as connection:
        yield connection


def _client(calculator: Any, conn: rpcplugin.PluginConnection) -> Any:
    from calculator.calculator_rpc import CalculatorClient

    return CalculatorClient(conn, timeout=10)


def _assert_exit_error(caught: pytest.ExceptionInfo[BaseException]) -> None:
    error = caught.value
    assert isinstance(error, rpcplugin.PluginExitedDuringCall)
    assert isinstance(error, rpcplugin.PluginExitedError)
    assert isinstance(error, grpc.aio.AioRpcError)  # old handlers still catch it
    assert error.returncode == -signal.SIGKILL
    lost = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL)
    assert error.code() in lost
    assert "exited during a call" in str(error) and "killed by SIGKILL" in str(error)


async def test_in_flight_server_stream(calculator: Any, conn: rpcplugin.PluginConnection) -> None:
    from calculator.calculator_pb2 import FibonacciRequest

    assert conn.pid is not None
    # frozen, the plugin cannot finish the stream before it dies: the call is surely in flight
    os.kill(conn.pid, signal.SIGSTOP)
    stream = _client(calculator, conn).fibonacci(FibonacciRequest(count=50))
    os.kill(conn.pid, signal.SIGKILL)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stream:
            pass
    _assert_exit_error(caught)


async def test_mid_bidi_and_next_unary(calculator: Any, conn: rpcplugin.PluginConnection) -> None:
    from calculator.calculator_pb2 import AddRequest, Number

    client = _client(calculator, conn)
    chat = client.running_total()
    await chat.send(Number(value=1))
    assert (await anext(chat)).value == 1
    assert conn.pid is not None
    os.kill(conn.pid, signal.SIGKILL)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chat.send(Number(value=2))
        await anext(chat)
    _assert_exit_error(caught)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.add(AddRequest(a=1, b=2))
    _assert_exit_error(caught)


async def test_other_failures_are_left_alone(
    calculator: Any, conn: rpcplugin.PluginConnection
) -> None:
    from calculator.calculator_pb2 import AddRequest

    def error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "boom")

    # a live plugin: nothing to explain, whatever the code
    assert await conn.explain_failure(error(grpc.StatusCode.DEADLINE_EXCEEDED)) is None
    assert await conn.explain_failure(error(grpc.StatusCode.UNAVAILABLE)) is None
    assert (await _client(calculator, conn).add(AddRequest(a=1, b=2))).sum == 3
