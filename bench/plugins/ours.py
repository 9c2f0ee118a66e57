"""Our runtime's plugin: ``rpcplugin.serve`` with the bench service, as a user would write it."""

from __future__ import annotations

import rpcplugin

rpcplugin.guard_stdout()  # what generated __main__ modules do first

import service  # noqa: E402

if __name__ == "__main__":
    rpcplugin.serve(
        rpcplugin.Handshake(service.COOKIE_KEY, service.COOKIE_VALUE),
        versions={1: [service.handler()]},
        name="bench",
    )
