"""rpcplugin: Python plugins and hosts that speak HashiCorp go-plugin's gRPC protocol.

Plugin side: :func:`serve`; in a handler, :func:`current_call` and :func:`current_peer`. Host
side: :func:`launch`, :func:`launch_pool`, :func:`reattach`, :func:`connect`. Tests:
:mod:`rpcplugin.testing` serves a servicer in process (docs/testing.md).
Generated packages (``rpcplugin-gen``) import this runtime and nothing from the generator: only
these top-level names and the two contract modules :mod:`rpcplugin.calls` (clients) and
:mod:`rpcplugin.servicer` (servicers and bindings). The subpackages (``plugin``, ``host``,
``services``, ``ops`` and the private ``_wire``) are described in docs/architecture.md.

Names are imported on first use, so a plugin does not pay for the host side (nor a host for
the plugin side) when it starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ChecksumError,
    ConfigError,
    ConnectionClosedError,
    HandshakeError,
    PluginError,
    PluginExitedError,
    SecurityError,
    StartTimeoutError,
    TransportError,
    VersionMismatchError,
)
from .handshake import Handshake, HandshakeLine

if TYPE_CHECKING:
    from ._wire.dial import TLSFiles
    from .calls import BidiStream, HasChannel, Metadata, ServerStream
    from .host.attach import connect, reattach
    from .host.balanced import BalancedConnection, connect_balanced
    from .host.connection import (
        ConnectionClosedDuringCall,
        PluginConnection,
        PluginExitedDuringCall,
    )
    from .host.launcher import LaunchOptions, launch
    from .host.on_signal import close_on_signals
    from .host.opening import Opening
    from .host.pool import MemberInfo, PluginPool, RestartPolicy, launch_pool
    from .host.reattach_config import ReattachConfig, parse_reattach
    from .peer import Peer
    from .plugin.server import serve, serve_async
    from .plugin.stdout_guard import guard_stdout
    from .servicer import PluginBinding, Unimplemented, current_call, current_peer
    from .services.broker import BrokerError, GRPCBroker, current_broker
    from .status import Abort, status_details

_LAZY = {
    "Abort": "status",
    "status_details": "status",
    "BalancedConnection": "host.balanced",
    "connect_balanced": "host.balanced",
    "BrokerError": "services.broker",
    "GRPCBroker": "services.broker",
    "current_broker": "services.broker",
    "BidiStream": "calls",
    "HasChannel": "calls",
    "Metadata": "calls",
    "ServerStream": "calls",
    "PluginBinding": "servicer",
    "Unimplemented": "servicer",
    "current_call": "servicer",
    "current_peer": "servicer",
    "Peer": "peer",
    "Opening": "host.opening",
    "PluginExitedDuringCall": "host.connection",
    "ConnectionClosedDuringCall": "host.connection",
    "close_on_signals": "host.on_signal",
    "TLSFiles": "_wire.dial",
    "PluginConnection": "host.connection",
    "connect": "host.attach",
    "launch": "host.launcher",
    "LaunchOptions": "host.launcher",
    "reattach": "host.attach",
    "MemberInfo": "host.pool",
    "PluginPool": "host.pool",
    "RestartPolicy": "host.pool",
    "launch_pool": "host.pool",
    "guard_stdout": "plugin.stdout_guard",
    "ReattachConfig": "host.reattach_config",
    "parse_reattach": "host.reattach_config",
    "serve": "plugin.server",
    "serve_async": "plugin.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rpcplugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Abort",
    "BalancedConnection",
    "BidiStream",
    "BrokerError",
    "ChecksumError",
    "ConfigError",
    "ConnectionClosedDuringCall",
    "ConnectionClosedError",
    "GRPCBroker",
    "Handshake",
    "HandshakeError",
    "HandshakeLine",
    "HasChannel",
    "LaunchOptions",
    "MemberInfo",
    "Metadata",
    "Opening",
    "Peer",
    "PluginBinding",
    "PluginConnection",
    "PluginError",
    "PluginExitedDuringCall",
    "PluginExitedError",
    "PluginPool",
    "ReattachConfig",
    "RestartPolicy",
    "SecurityError",
    "ServerStream",
    "StartTimeoutError",
    "TLSFiles",
    "TransportError",
    "Unimplemented",
    "VersionMismatchError",
    "close_on_signals",
    "connect",
    "connect_balanced",
    "current_broker",
    "current_call",
    "current_peer",
    "guard_stdout",
    "launch",
    "launch_pool",
    "parse_reattach",
    "reattach",
    "serve",
    "serve_async",
    "status_details",
]
