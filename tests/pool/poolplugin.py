"""The plugin the pool tests launch: ``rpcplugin.serve`` with ``pooltest.Work`` on protobuf's
``StringValue`` (so the tests' typed calls need no generated messages).

``Pid``
    replies this process's pid.
``Hold``
    ``await asyncio.sleep(<request seconds>)`` (an in-flight call that yields), then the pid.
``Repeat``
    server stream: the pid ``<request>`` times, 10 ms apart.
``Sick``
    report NOT_SERVING to ``grpc.health.v1.Health/Watch`` for ``<request>`` seconds, then
    SERVING again (the runtime's own health service never changes its mind in plugin mode, so
    an interceptor answers Watch here).

Environment: ``POOLTEST_EXIT_AFTER=S`` exits with status 3 S seconds after the first call it
gets (the host's start-up health check), at once for 0: a plugin that keeps crashing.
"""

from __future__ import annotations

import rpcplugin

rpcplugin.guard_stdout()

import asyncio  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
from google.protobuf.wrappers_pb2 import StringValue  # noqa: E402

HANDSHAKE = rpcplugin.Handshake("POOLTEST_PLUGIN", "pool-v1")


async def pid(request: StringValue, context: Any) -> StringValue:
    return StringValue(value=str(os.getpid()))


async def hold(request: StringValue, context: Any) -> StringValue:
    await asyncio.sleep(float(request.value or 0))
    return StringValue(value=str(os.getpid()))


async def repeat(request: StringValue, context: Any) -> AsyncIterator[StringValue]:
    for _ in range(int(request.value or 1)):
        yield StringValue(value=str(os.getpid()))
        await asyncio.sleep(0.01)


class Health:
    """``Watch`` for the interceptor: SERVING, and NOT_SERVING while sick."""

    def __init__(self) -> None:
        self.serving = True
        self.changed = asyncio.Event()

    async def sick(self, request: StringValue, context: Any) -> StringValue:
        asyncio.get_running_loop().call_later(float(request.value), self._set, True)
        self._set(False)
        return StringValue(value=str(os.getpid()))

    def _set(self, serving: bool) -> None:
        self.serving = serving
        self.changed.set()
        self.changed = asyncio.Event()

    async def watch(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        while True:
            changed = self.changed
            yield b"\x08\x01" if self.serving else b"\x08\x02"  # status SERVING / NOT_SERVING
            await changed.wait()


HEALTH = Health()


class WatchInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        if details.method == "/grpc.health.v1.Health/Watch":
            return grpc.unary_stream_rpc_method_handler(HEALTH.watch)
        return await continuation(details)


def handler() -> grpc.GenericRpcHandler:
    def unary(function: Any) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(
            function, StringValue.FromString, StringValue.SerializeToString
        )

    return grpc.method_handlers_generic_handler(
        "pooltest.Work",
        {
            "Pid": unary(pid),
            "Hold": unary(hold),
            "Sick": unary(HEALTH.sick),
            "Repeat": grpc.unary_stream_rpc_method_handler(
                repeat, StringValue.FromString, StringValue.SerializeToString
            ),
        },
    )


class ExitAfterFirstCall(grpc.aio.ServerInterceptor):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.timer: threading.Timer | None = None

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        if self.seconds <= 0:
            os._exit(3)
        if self.timer is None:
            self.timer = threading.Timer(self.seconds, os._exit, (3,))
            self.timer.daemon = True
            self.timer.start()
        return await continuation(details)


if __name__ == "__main__":
    exit_after = os.environ.get("POOLTEST_EXIT_AFTER")
    interceptors: list[grpc.aio.ServerInterceptor] = [WatchInterceptor()]
    if exit_after:
        interceptors.insert(0, ExitAfterFirstCall(float(exit_after)))
    rpcplugin.serve(
        HANDSHAKE, versions={1: [handler()]}, name="pooltest", interceptors=interceptors
    )
