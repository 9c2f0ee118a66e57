"""rpcplugin: Python plugins and hosts that speak HashiCorp go-plugin's gRPC protocol.

Plugin side: :func:`serve`. Host side: :func:`launch`, :func:`reattach`, :func:`connect`.
Generated packages (``rpcplugin-gen``) import this runtime and nothing from the generator.
"""

from .dial import TLSFiles
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
from .host import PluginConnection, connect, launch, reattach
from .process_guard import guard_stdout
from .reattach import ReattachConfig, parse_reattach
from .server import serve, serve_async

__all__ = [
    "ChecksumError",
    "ConfigError",
    "Handshake",
    "HandshakeError",
    "HandshakeLine",
    "PluginConnection",
    "PluginError",
    "PluginExitedError",
    "ReattachConfig",
    "SecurityError",
    "StartTimeoutError",
    "TLSFiles",
    "TransportError",
    "VersionMismatchError",
    "connect",
    "guard_stdout",
    "launch",
    "parse_reattach",
    "reattach",
    "serve",
    "serve_async",
]
