"""The error model: Abort with typed details, bounded messages, UNKNOWN for the rest, and never
RESOURCE_EXHAUSTED however long an exception's message is."""

from __future__ import annotations

import logging

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.protobuf import wrappers_pb2 as w
from google.rpc import error_details_pb2

import rpcplugin
from rpcplugin.calls import Caller
from rpcplugin.status import DETAILS_LIMIT, MESSAGE_LIMIT, Abort, bounded_message

from .echo_service import ABORT, FAIL, SYNC_ABORT


async def _error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


async def test_abort_carries_code_message_and_typed_details(caller: Caller) -> None:
    err = await _error(caller.unary(ABORT, w.StringValue(value="no such key")))
    # [read-details]
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "no such key"
    (info,) = rpcplugin.status_details(err, error_details_pb2.ErrorInfo)
    # [/read-details]
    assert (info.reason, info.domain, dict(info.metadata)) == ("NO_KEY", "test", {"k": "v"})
    (resource,) = rpcplugin.status_details(err, error_details_pb2.ResourceInfo)
    assert resource.resource_name == "key/1"
    every = rpcplugin.status_details(err)
    assert [type(d) for d in every] == [any_pb2.Any, any_pb2.Any]
    assert rpcplugin.status_details(err, error_details_pb2.RetryInfo) == ()
    # trailing metadata the handler set before raising is still sent
    assert ("x-trailer", "kept") in tuple(err.trailing_metadata() or ())


async def test_abort_from_a_sync_handler(caller: Caller) -> None:
    err = await _error(caller.unary(SYNC_ABORT, w.StringValue(value="x")))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == "not ready"
    (info,) = rpcplugin.status_details(err, error_details_pb2.ErrorInfo)
    assert info.reason == "x"


async def test_details_too_large_are_dropped_and_said_so(
    caller: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rpcplugin.servicer"):
        err = await _error(caller.unary(SYNC_ABORT, w.StringValue(value="x" * 20000)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "details dropped" in (err.details() or "")
    assert rpcplugin.status_details(err) == ()
    assert any("Abort details dropped" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("size", [1 << 20, 20000, -(1 << 18)])
async def test_a_huge_exception_message_arrives_as_unknown_cut(
    caller: Caller, caplog: pytest.LogCaptureFixture, size: int
) -> None:
    """1 MiB of message (and 256 Ki non-ASCII characters, which percent-encoding triples) is
    UNKNOWN with a bounded message, never RESOURCE_EXHAUSTED; the log has it in full."""
    with caplog.at_level(logging.ERROR, logger="rpcplugin.servicer"):
        err = await _error(caller.unary(FAIL, w.Int64Value(value=size)))
    assert err.code() == grpc.StatusCode.UNKNOWN
    text = err.details() or ""
    whole = len(("x" * size if size > 0 else "é" * -size).encode())
    assert text.endswith(f" ... [cut: {whole} bytes in all]")
    assert text.startswith("xxxx" if size > 0 else "éééé")
    assert len(text.encode()) <= MESSAGE_LIMIT
    (record,) = [r for r in caplog.records if "/test.Echo/Fail failed" in r.getMessage()]
    assert record.exc_info is not None
    assert len(str(record.exc_info[1])) == abs(size)  # logged whole, with its traceback


async def test_an_abort_with_a_huge_message_is_cut(caller: Caller) -> None:
    err = await _error(caller.unary(ABORT, w.StringValue(value="y" * (1 << 20))))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert (err.details() or "").endswith(f" ... [cut: {1 << 20} bytes in all]")
    assert len(rpcplugin.status_details(err)) == 2  # the details still fit


async def test_an_empty_exception_message_names_the_type(caller: Caller) -> None:
    err = await _error(caller.unary(FAIL, w.Int64Value(value=0)))
    assert (err.code(), err.details()) == (grpc.StatusCode.UNKNOWN, "ValueError")


def test_bounded_message_counts_wire_bytes() -> None:
    assert bounded_message("short") == "short"
    exact = "a" * MESSAGE_LIMIT
    assert bounded_message(exact) == exact
    assert bounded_message(exact + "a").endswith(f"[cut: {MESSAGE_LIMIT + 1} bytes in all]")
    percent = bounded_message("%" * MESSAGE_LIMIT)  # '%' is sent as %25
    assert percent.startswith("%" * 600) and "[cut:" in percent
    assert len(percent) < MESSAGE_LIMIT / 2


def test_abort_refuses_ok_and_non_messages() -> None:
    with pytest.raises(ValueError, match="other than OK"):
        Abort(grpc.StatusCode.OK, "fine")
    with pytest.raises(TypeError, match="protobuf messages"):
        Abort(grpc.StatusCode.INTERNAL, "x", details=["not a message"])  # type: ignore[list-item]
    assert "details=[1 messages]" in repr(Abort(grpc.StatusCode.INTERNAL, details=[w.Int64Value()]))


def test_status_details_of_other_errors_is_empty() -> None:
    assert rpcplugin.status_details(ValueError("x")) == ()
    assert DETAILS_LIMIT < 4096
