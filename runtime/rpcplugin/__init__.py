"""rpcplugin: Python plugins and hosts that speak HashiCorp go-plugin's gRPC protocol.

Plugin side: :func:`serve`. Host side: :func:`launch`, :func:`reattach`, :func:`connect`.
Generated packages (``rpcplugin-gen``) import this runtime and nothing from the generator.

Names are imported on first use, so a plugin does not pay for the host side (nor a host for
the plugin side) when it starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ChecksumError,
    ConfigError,
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
    from .balanced import BalancedConnection, connect_balanced
    from .broker import BrokerError, GRPCBroker, current_broker
    from .calls import BidiStream, HasChannel, Metadata, ServerStream
    from .dial import TLSFiles
    from .host import Opening, PluginConnection, PluginExitedDuringCall, connect, launch, reattach
    from .process_guard import guard_stdout
    from .reattach_config import ReattachConfig, parse_reattach
    from .server import serve, serve_async
    from .servicer import PluginBinding, Unimplemented, current_call

_LAZY = {
    "BalancedConnection": "balanced",
    "connect_balanced": "balanced",
    "BrokerError": "broker",
    "GRPCBroker": "broker",
    "current_broker": "broker",
    "BidiStream": "calls",
    "HasChannel": "calls",
    "Metadata": "calls",
    "ServerStream": "calls",
    "PluginBinding": "servicer",
    "Unimplemented": "servicer",
    "current_call": "servicer",
    "Opening": "host",
    "PluginExitedDuringCall": "host",
    "TLSFiles": "dial",
    "PluginConnection": "host",
    "connect": "host",
    "launch": "host",
    "reattach": "host",
    "guard_stdout": "process_guard",
    "ReattachConfig": "reattach_config",
    "parse_reattach": "reattach_config",
    "serve": "server",
    "serve_async": "server",
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
    "BalancedConnection",
    "BidiStream",
    "BrokerError",
    "ChecksumError",
    "ConfigError",
    "GRPCBroker",
    "Handshake",
    "HandshakeError",
    "HandshakeLine",
    "HasChannel",
    "Metadata",
    "Opening",
    "PluginBinding",
    "PluginConnection",
    "PluginError",
    "PluginExitedDuringCall",
    "PluginExitedError",
    "ReattachConfig",
    "SecurityError",
    "ServerStream",
    "StartTimeoutError",
    "TLSFiles",
    "TransportError",
    "Unimplemented",
    "VersionMismatchError",
    "connect",
    "connect_balanced",
    "current_broker",
    "current_call",
    "guard_stdout",
    "launch",
    "parse_reattach",
    "reattach",
    "serve",
    "serve_async",
]
