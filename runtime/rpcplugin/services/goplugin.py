"""go-plugin's own services on a plugin server (health, controller, stdio, broker), loaded once the
handshake line is out rather than before it.

A host waits for the handshake line on every launch, and after it the plugin sits idle while the
host dials, so a plugin server registers :class:`GoPluginServices` before it starts: a handler
that knows the four service names and nothing else. The server calls :meth:`~GoPluginServices.load`
right after printing the line, which imports and builds the services while the host is still
connecting; a call to one of them that arrives first loads them itself. Either way every call
is answered exactly as before, and a start-up does not pay for their modules and messages.

:func:`rpcplugin.current_broker` reads the :class:`BrokerCell` bound here, which is filled in
when the services load, so the server can bind it before the broker exists.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import grpc

if TYPE_CHECKING:
    from .broker import GRPCBroker

SERVICE_NAMES: Final = (
    "grpc.health.v1.Health",
    "plugin.GRPCController",
    "plugin.GRPCStdio",
    "plugin.GRPCBroker",
)
"""The services every go-plugin host may call on a plugin."""

_PREFIXES: Final = tuple(f"/{name}/" for name in SERVICE_NAMES)

MethodHandlers = Mapping[str, "grpc.RpcMethodHandler[Any, Any]"]
"""Method handlers by full method path (``/plugin.GRPCController/Shutdown``)."""

Loaded = tuple[MethodHandlers, "GRPCBroker"]
"""What a loader returns: the services' method handlers and the server's broker."""


class BrokerCell:
    """The broker that :func:`rpcplugin.current_broker` returns in one server's handlers, or
    how to make it: bound before the server starts, filled in when its services load."""

    __slots__ = ("_load", "broker")

    def __init__(
        self, broker: GRPCBroker | None = None, *, load: Callable[[], object] | None = None
    ) -> None:
        self.broker = broker
        self._load = load

    def get(self) -> GRPCBroker:
        """The broker, loading the services first if they have not loaded yet."""
        if self.broker is None and self._load is not None:
            self._load()
        if self.broker is None:
            raise LookupError("this server's broker is not available")
        return self.broker


CURRENT_BROKER: contextvars.ContextVar[BrokerCell] = contextvars.ContextVar("rpcplugin_broker")
"""The cell of the server whose RPC the running task handles (its tasks copy the context)."""


def bind(cell: BrokerCell) -> contextvars.Token[BrokerCell]:
    """Make ``cell`` what :func:`rpcplugin.current_broker` reads in this context (and so in every
    handler of a ``grpc.aio`` server started from it)."""
    return CURRENT_BROKER.set(cell)


def unbind(token: contextvars.Token[BrokerCell]) -> None:
    """Undo :func:`bind`."""
    CURRENT_BROKER.reset(token)


class GoPluginServices(grpc.GenericRpcHandler):
    """Serves :data:`SERVICE_NAMES` with what ``loader`` builds, called once: by :meth:`load`,
    or by the first call to one of them. ``broker_cell`` gets the broker it returns."""

    def __init__(self, loader: Callable[[], Loaded]) -> None:
        self._loader: Callable[[], Loaded] | None = loader
        self._methods: MethodHandlers = {}
        self.broker_cell: Final = BrokerCell(load=self.load)

    @property
    def loaded(self) -> bool:
        """Whether the services have been built."""
        return self._loader is None

    def load(self) -> None:
        """Import and build the services now (a no-op once done)."""
        loader, self._loader = self._loader, None
        if loader is not None:
            self._methods, self.broker_cell.broker = loader()

    def service_names(self) -> tuple[str, ...]:
        """The services served (what reflection lists)."""
        return SERVICE_NAMES

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        if not method.startswith(_PREFIXES):
            return None
        self.load()
        return self._methods.get(method)
