"""A plugin with no services that prints to ``sys.stdout`` and ``sys.stderr`` once it serves
(both reach the host through ``plugin.GRPCStdio``) and logs one warning, for ``rpcplugin logs``.

Cookie ``CLI_STDIO_PLUGIN=stdio``, version 1.
"""

from __future__ import annotations

import rpcplugin

rpcplugin.guard_stdout()

import asyncio  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

HANDSHAKE = rpcplugin.Handshake("CLI_STDIO_PLUGIN", "stdio")


async def chatter() -> None:
    print("a line on stdout", flush=True)
    print("a line on stderr", file=sys.stderr, flush=True)
    logging.getLogger("stdio-plugin").warning("a warning", extra={"attempt": 2})


async def main() -> int:
    guarded = sys.stdout
    serving = asyncio.ensure_future(rpcplugin.serve_async(HANDSHAKE, {1: []}))
    while not serving.done():
        await asyncio.sleep(0.05)
        if sys.stdout is not guarded:  # serving: sys.stdout now feeds GRPCStdio
            await chatter()
            break
    return await serving


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
