"""gRPC server reflection on plugin servers, as go-plugin plugins serve it (docs/serving.md), so
that ``grpcurl`` and ``rpcplugin services`` can list and describe a plugin's services.

Served by grpcio-reflection, loaded on first use: what a server registers at start is
:class:`LazyReflection`, a small handler that answers only the reflection services' method and
imports ``grpc_reflection`` when the first reflection call arrives. A plugin's start-up never
pays for that import (about 5 ms), and a plugin nobody reflects on never does.

Both names a client may ask for are answered, with the same messages on the wire:
``grpc.reflection.v1alpha.ServerReflection`` (what grpc-go and grpcio serve) and
``grpc.reflection.v1.ServerReflection`` (what newer clients try first). The services listed are
those of the server (go-plugin's included) and of reflection that protobuf's default descriptor
pool can describe (every generated ``_pb2`` module registers its file there): a client can ask
for whatever it is shown. The hand-coded health service and the v1 name have no descriptor of
their own here, so they are answered but not listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from .goplugin import GoPluginServices

SERVICES = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")
"""The reflection service names answered."""

METHOD = "ServerReflectionInfo"


def service_names(handlers: Iterable[grpc.GenericRpcHandler]) -> list[str]:
    """The names of the services ``handlers`` serve (those that can say: a
    ``grpc.ServiceRpcHandler``, which is what ``grpc.method_handlers_generic_handler`` and
    generated code make, and go-plugin's services)."""
    names: list[str] = []
    for handler in handlers:
        if isinstance(handler, grpc.ServiceRpcHandler):
            names.append(handler.service_name())
        elif isinstance(handler, GoPluginServices):
            names.extend(handler.service_names())
    return names


def add_handlers(
    server: grpc.aio.Server, handlers: Sequence[grpc.GenericRpcHandler], *, reflection: bool
) -> None:
    """Serve ``handlers`` on ``server``, and with ``reflection`` (``RPCPLUGIN_REFLECTION``)
    the reflection services over them, imported on the first reflection call."""
    server.add_generic_rpc_handlers(tuple(handlers))
    if reflection:
        server.add_generic_rpc_handlers((LazyReflection(handlers),))


class LazyReflection(grpc.GenericRpcHandler):
    """The reflection services for a server serving ``handlers``; ``grpc_reflection`` is
    imported on the first reflection call."""

    def __init__(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        handlers = tuple(handlers)
        self.names = [*service_names(handlers), *SERVICES]
        """Every service reflection may list (those with a descriptor are)."""
        self._deferred = [h for h in handlers if isinstance(h, GoPluginServices)]
        self._handler: grpc.RpcMethodHandler[Any, Any] | None = None

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        if service not in SERVICES or method != METHOD:
            return None
        if self._handler is None:
            self._handler = self._load()
        return self._handler

    def _load(self) -> grpc.RpcMethodHandler[Any, Any]:
        from google.protobuf import descriptor_pool
        from grpc_reflection.v1alpha import reflection, reflection_pb2

        for services in self._deferred:  # their messages describe them
            services.load()
        pool = descriptor_pool.Default()
        servicer = reflection.aio.ReflectionServicer([n for n in self.names if _known(pool, n)])
        return grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )


def _known(pool: Any, service: str) -> bool:
    try:
        pool.FindServiceByName(service)
    except KeyError:
        return False
    return True
