"""rpcplugin: Python plugins and hosts that speak HashiCorp go-plugin's gRPC protocol.

Plugin side: :func:`serve`. Host side: :func:`launch`, :func:`reattach`, :func:`connect`.
Generated packages (``rpcplugin-gen``) import this runtime and nothing from the generator.
"""

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
from .process_guard import guard_stdout
from .server import serve, serve_async

__all__ = [
    "ChecksumError",
    "ConfigError",
    "Handshake",
    "HandshakeError",
    "HandshakeLine",
    "PluginError",
    "PluginExitedError",
    "SecurityError",
    "StartTimeoutError",
    "TransportError",
    "VersionMismatchError",
    "guard_stdout",
    "serve",
    "serve_async",
]
