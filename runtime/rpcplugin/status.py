"""Statuses with typed details: :class:`Abort` ends a call, :func:`status_details` reads them.

A handler raises ``Abort(code, message, details=[...])``; the call ends with that code and
message, and the details (any protobuf messages) travel as a ``google.rpc.Status`` in the
``grpc-status-details-bin`` trailer, the way grpc-go's ``status.WithDetails`` and
grpcio-status carry them, so Go hosts read them as well. A host reads them back from the
failed call's error with :func:`status_details`.

Everything that ends a call is bounded (:func:`bounded_message`, :func:`abort_trailer`): a gRPC
client refuses trailers over 8–16 KiB with ``RESOURCE_EXHAUSTED``, so a long message is cut and
oversized details are dropped (and said so), never sent whole.

grpcio-status (and googleapis-common-protos' ``google.rpc``) are imported only when details are
sent or read, so a plugin that never uses them does not load them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final, TypeVar, overload

import grpc
from google.protobuf.message import Message

if TYPE_CHECKING:
    from google.protobuf import any_pb2

__all__ = [
    "DETAILS_LIMIT",
    "MESSAGE_LIMIT",
    "Abort",
    "abort_trailer",
    "bounded_message",
    "status_details",
]

MsgT = TypeVar("MsgT", bound=Message)

_log = logging.getLogger("rpcplugin.servicer")

MESSAGE_LIMIT: Final = 2048
"""Most bytes a status message takes on the wire (``grpc-message``, percent-encoded: a byte
outside printable ASCII, or ``%``, counts three)."""

DETAILS_LIMIT: Final = 3072
"""Most bytes of the serialized ``google.rpc.Status`` (code, message and details) sent with an
:class:`Abort`; base64 in the trailer makes it at most 4 KiB there."""

DETAILS_KEY: Final = "grpc-status-details-bin"
"""The trailer that carries the ``google.rpc.Status`` (grpcio-status's and grpc-go's key)."""


class Abort(Exception):
    """Raise in a servicer method (``async def`` or ``def``) to end the call with a status.

    ``code`` must not be ``OK``. ``details`` are protobuf messages (for example
    ``google.rpc.error_details_pb2.ErrorInfo`` or your own); each is packed into a
    ``google.protobuf.Any`` unless it is one already. A host reads them with
    :func:`status_details`. The message is cut to :data:`MESSAGE_LIMIT` bytes on the wire;
    details that make the status larger than :data:`DETAILS_LIMIT` are dropped, and the message
    says so (docs/errors.md).
    """

    def __init__(
        self, code: grpc.StatusCode, message: str = "", *, details: Iterable[Message] = ()
    ) -> None:
        if not isinstance(code, grpc.StatusCode) or code is grpc.StatusCode.OK:
            raise ValueError(f"Abort needs a grpc.StatusCode other than OK, got {code!r}")
        self.code: Final = code
        self.message: Final = message
        self.details: Final = tuple(details)
        for detail in self.details:
            if not isinstance(detail, Message):
                raise TypeError(f"Abort details are protobuf messages, got {type(detail).__name__}")
        super().__init__(message)

    def __repr__(self) -> str:
        extra = f", details=[{len(self.details)} messages]" if self.details else ""
        return f"Abort({self.code}, {self.message!r}{extra})"


def _wire_size(text: str) -> int:
    """Bytes ``text`` takes as a ``grpc-message`` (percent-encoded UTF-8)."""
    data = text.encode("utf-8", "surrogatepass")
    plain = sum(1 for b in data if 0x20 <= b <= 0x7E and b != 0x25)
    return plain + 3 * (len(data) - plain)


def bounded_message(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` if it fits in ``limit`` wire bytes, else its head and a marker saying how long
    it was: ``"... [cut: 1048576 bytes in all]"``."""
    if len(text) * 9 <= limit or _wire_size(text) <= limit:  # 9: a char is at most 3×3 bytes
        return text
    total = len(text.encode("utf-8", "surrogatepass"))
    marker = f" ... [cut: {total} bytes in all]"
    room = limit - len(marker)
    head: list[str] = []
    used = 0
    for char in text[:room]:  # every char takes at least one byte
        size = _wire_size(char)
        if used + size > room:
            break
        head.append(char)
        used += size
    return "".join(head) + marker


def _pack(detail: Message) -> any_pb2.Any:
    from google.protobuf import any_pb2

    if isinstance(detail, any_pb2.Any):
        return detail
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def abort_trailer(abort: Abort, method: str) -> tuple[str, tuple[tuple[str, str | bytes], ...]]:
    """The bounded message and the trailing metadata (empty without details) that end a call
    with ``abort``. Details over :data:`DETAILS_LIMIT` are dropped, logged and noted in the
    message; ``method`` names the call in that log line."""
    message = bounded_message(abort.message)
    if not abort.details:
        return message, ()
    from google.rpc import status_pb2
    from grpc_status import rpc_status

    status = status_pb2.Status(
        code=abort.code.value[0], message=message, details=[_pack(d) for d in abort.details]
    )
    size = status.ByteSize()
    if size > DETAILS_LIMIT:
        kinds = ", ".join(sorted({type(d).DESCRIPTOR.full_name for d in abort.details}))
        _log.warning(
            "%s: Abort details dropped: %d bytes with the message, over the limit of %d (%s)",
            method,
            size,
            DETAILS_LIMIT,
            kinds,
        )
        note = f" [details dropped: {size} bytes, over {DETAILS_LIMIT}]"
        return bounded_message(abort.message, MESSAGE_LIMIT - len(note)) + note, ()
    # grpcio-status's own conversion, so its from_call() on the host accepts it
    converted = rpc_status.to_status(status)
    return converted.details, tuple(converted.trailing_metadata)


@overload
def status_details(error: BaseException) -> tuple[any_pb2.Any, ...]: ...


@overload
def status_details(error: BaseException, kind: type[MsgT]) -> tuple[MsgT, ...]: ...


def status_details(
    error: BaseException, kind: type[MsgT] | None = None
) -> tuple[any_pb2.Any, ...] | tuple[MsgT, ...]:
    """The typed details of a failed call, as a host reads them from a generated client's error.

    ``error`` is what the call raised (a ``grpc.aio.AioRpcError``, or a
    ``rpcplugin.PluginExitedDuringCall``, which is one). Without ``kind``: every detail, as
    ``google.protobuf.Any``. With ``kind`` (a message class): the details of that type,
    unpacked, in order. Empty when the status carried no details, when ``error`` is no gRPC
    error, or when the details' code or message disagree with the call's own (grpcio-status's
    consistency check: the status was not what the server sent).

    ::

        try:
            await client.get(request)
        except grpc.aio.AioRpcError as err:
            for info in rpcplugin.status_details(err, error_details_pb2.ErrorInfo):
                print(err.code(), err.details(), info.reason)
    """
    details = _all_details(error)
    if kind is None:
        return details
    found: list[MsgT] = []
    for packed in details:
        if packed.TypeName() == kind.DESCRIPTOR.full_name:
            message = kind()
            packed.Unpack(message)
            found.append(message)
    return tuple(found)


def _all_details(error: BaseException) -> tuple[any_pb2.Any, ...]:
    trailers = getattr(error, "trailing_metadata", None)
    if not isinstance(error, grpc.RpcError) or not callable(trailers):
        return ()
    pairs: Sequence[tuple[str, str | bytes]] | None = trailers()
    if not pairs or not any(key == DETAILS_KEY for key, _ in pairs):
        return ()  # the common case: no need to import grpcio-status
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]  # an RpcError that is a Call
    except ValueError:
        return ()
    return () if status is None else tuple(status.details)
