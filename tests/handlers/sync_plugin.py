"""A plugin process serving ``test.Echo`` (echo_service.py), plain ``def`` methods included.

Run as ``python tests/handlers/sync_plugin.py`` by a host with the handshake below.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rpcplugin

rpcplugin.guard_stdout()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handlers.echo_service import SERVICE, Echo  # noqa: E402

HANDSHAKE = rpcplugin.Handshake("RPCPLUGIN_SYNC_TEST", "sync-handlers")

if __name__ == "__main__":
    rpcplugin.serve(HANDSHAKE, {1: [SERVICE.handler(Echo())]}, name="sync-test")
