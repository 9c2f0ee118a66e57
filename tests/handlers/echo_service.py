"""One test service, ``test.Echo``, with every call kind in both flavours: ``async def`` and
plain ``def`` (sync) methods, plus methods that abort and fail. Shared by the in-process tests
and by ``sync_plugin.py``, the plugin process of the concurrency test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import grpc
from google.protobuf import wrappers_pb2 as w
from google.rpc import error_details_pb2

import rpcplugin
from rpcplugin.calls import Method, RpcKind
from rpcplugin.servicer import RequestStream, Service, current_call

S = w.StringValue
I = w.Int64Value  # noqa: E741

UPPER = Method("/test.Echo/Upper", RpcKind.UNARY, S, S)
SYNC_UPPER = Method("/test.Echo/SyncUpper", RpcKind.UNARY, S, S)
SLEEP = Method("/test.Echo/Sleep", RpcKind.UNARY, w.DoubleValue, S)
SYNC_COUNT = Method("/test.Echo/SyncCount", RpcKind.SERVER_STREAM, I, I)
SYNC_SUM = Method("/test.Echo/SyncSum", RpcKind.CLIENT_STREAM, I, I)
SYNC_CHAT = Method("/test.Echo/SyncChat", RpcKind.BIDI_STREAM, S, S)
ASYNC_SUM = Method("/test.Echo/AsyncSum", RpcKind.CLIENT_STREAM, I, I)
BLOCK_LOOP = Method("/test.Echo/BlockLoop", RpcKind.UNARY, w.DoubleValue, S)
ABORT = Method("/test.Echo/Abort", RpcKind.UNARY, S, S)
SYNC_ABORT = Method("/test.Echo/SyncAbort", RpcKind.UNARY, S, S)
FAIL = Method("/test.Echo/Fail", RpcKind.UNARY, I, S)


class Echo:
    """Records what its plain methods saw, for the tests to check."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.ended = threading.Event()
        self.ending: list[str] = []
        self.started = threading.Event()
        self._lock = threading.Lock()
        self._sleeping = self._peak = 0

    async def upper(self, request: S, /) -> S:
        return S(value=request.value.upper())

    # [sync-unary]
    def sync_upper(self, request: S, /) -> S:
        self.threads.append(threading.current_thread().name)
        who = dict(current_call().invocation_metadata() or ()).get("x-who", "")
        return S(value=f"{request.value.upper()}|{who}")
        # [/sync-unary]

    def sleep(self, request: w.DoubleValue, /) -> S:
        """Sleeps on its worker thread; replies the most calls seen sleeping at once."""
        with self._lock:
            self._sleeping += 1
            self._peak = max(self._peak, self._sleeping)
        time.sleep(request.value)  # blocks its worker thread, not the loop
        with self._lock:
            self._sleeping -= 1
            return S(value=f"slept|{self._peak}")

    def sync_count(self, request: I, /) -> Iterator[I]:
        try:
            for i in range(1, request.value + 1):
                self.threads.append(threading.current_thread().name)
                self.started.set()
                yield I(value=i)
                if request.value > 100:
                    time.sleep(0.01)
        finally:
            self.ending.append(threading.current_thread().name)
            self.ended.set()

    def sync_sum(self, requests: RequestStream[I], /) -> I:
        total = 0
        try:
            for request in requests:
                self.started.set()
                total += request.value
        except BaseException as exc:
            self.ending.append(type(exc).__name__)
            raise
        finally:
            self.ended.set()
        return I(value=total)

    # [sync-bidi]
    def sync_chat(self, requests: RequestStream[S], /) -> Iterator[S]:
        for request in requests:  # blocks this worker thread until the next request
            yield S(value=f"re: {request.value}|{threading.current_thread().name[:17]}")
        # [/sync-bidi]

    async def async_sum(self, requests: RequestStream[I], /) -> I:
        return I(value=sum([r.value async for r in requests]))

    async def block_loop(self, request: w.DoubleValue, /) -> S:
        time.sleep(request.value)  # the mistake the stall detector is for
        await asyncio.sleep(0)
        return S(value="blocked")

    # [abort]
    async def abort(self, request: S, /) -> S:
        current_call().set_trailing_metadata((("x-trailer", "kept"),))
        raise rpcplugin.Abort(
            grpc.StatusCode.NOT_FOUND,
            request.value,
            details=[
                error_details_pb2.ErrorInfo(reason="NO_KEY", domain="test", metadata={"k": "v"}),
                error_details_pb2.ResourceInfo(resource_name="key/1"),
            ],
        )
        # [/abort]

    def sync_abort(self, request: S, /) -> S:
        raise rpcplugin.Abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            "not ready",
            details=[error_details_pb2.ErrorInfo(reason="x" * request.value.count("x"))],
        )

    async def fail(self, request: I, /) -> S:
        n = request.value
        raise ValueError("x" * n if n >= 0 else "é" * -n)


SERVICE: Service[Echo] = Service(
    "test.Echo",
    {
        "upper": UPPER,
        "sync_upper": SYNC_UPPER,
        "sleep": SLEEP,
        "sync_count": SYNC_COUNT,
        "sync_sum": SYNC_SUM,
        "sync_chat": SYNC_CHAT,
        "async_sum": ASYNC_SUM,
        "block_loop": BLOCK_LOOP,
        "abort": ABORT,
        "sync_abort": SYNC_ABORT,
        "fail": FAIL,
    },
)
