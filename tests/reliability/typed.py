"""``reliability.Typed``: a service of :mod:`.relplugin` served through ``rpcplugin.servicer``
(the path generated code takes), called through ``rpcplugin.calls`` (what generated clients do).

``Wait``
    unary: notes ``wait``, then waits until cancelled; notes ``wait-finally`` when it ends.
``Flood``
    server stream: 64 KiB messages as fast as flow control allows, so that a cancel finds the
    handler suspended at ``yield``; notes ``flood-finally`` when it ends.
"""

from __future__ import annotations

from google.protobuf.wrappers_pb2 import StringValue

from rpcplugin.calls import Method, RpcKind
from rpcplugin.servicer import Service

WAIT = Method("/reliability.Typed/Wait", RpcKind.UNARY, StringValue, StringValue)
FLOOD = Method("/reliability.Typed/Flood", RpcKind.SERVER_STREAM, StringValue, StringValue)
SERVICE: Service[object] = Service("reliability.Typed", {"wait": WAIT, "flood": FLOOD})
