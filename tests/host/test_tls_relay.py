"""The host's OpenSSL relay (the path Go peers' P-521 certificates take) never keeps a
connection it cannot carry.

When a plugin stops, gRPC redials the relay at once. The plugin's socket is gone by then, so the
relay's dial fails before asyncio has even handed it the accepted connection; or the relay is
being closed as the connection arrives. Either way the connection must be closed: left open, it
and gRPC's end of it stay in the host (the leak check of the autouse fixture fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import ssl

from rpcplugin._wire.tls_relay import TLSOriginator
from rpcplugin._wire.transport import Endpoint

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the other side has closed: EOF, or a reset (it closed with our bytes unread).
    The bound only rules out a hang."""
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        return True


async def test_a_connection_to_a_plugin_that_has_gone_is_closed(sock_dir: str) -> None:
    gone = Endpoint("unix", os.path.join(sock_dir, "plugin-gone.sock"))
    relay = TLSOriginator(ssl.create_default_context(), gone, "localhost")
    private = os.path.join(sock_dir, "relay")  # removed with the relay, as dial's own dir is
    os.mkdir(private, 0o700)
    local = await relay.listen(os.path.join(private, "relay.sock"))
    try:
        for _ in range(3):  # as gRPC's redials come
            reader, writer = await asyncio.open_unix_connection(local.address)
            writer.write(PREFACE)
            assert await closed_by_peer(reader)
            writer.close()
            with contextlib.suppress(ConnectionResetError):
                await writer.wait_closed()
        assert relay.last_error is not None and "plugin-gone.sock" in relay.last_error
    finally:
        await relay.close()
    assert os.listdir(sock_dir) == []


async def test_a_connection_arriving_as_the_relay_closes_is_closed(sock_dir: str) -> None:
    # asyncio's own unix server (Python 3.11) drops such a connection and leaves its socket to
    # the cyclic collector: with the collector paused, that shows as a leak every time
    gone = Endpoint("unix", os.path.join(sock_dir, "plugin-gone.sock"))
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for turns in range(6):  # the close lands at each step of the accept in turn
            private = os.path.join(sock_dir, f"relay{turns}")
            os.mkdir(private, 0o700)
            relay = TLSOriginator(ssl.create_default_context(), gone, "localhost")
            local = await relay.listen(os.path.join(private, "relay.sock"))
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setblocking(False)
            client.connect(local.address)  # a unix connect completes in the listen backlog
            client.send(PREFACE)
            for _ in range(turns):
                await asyncio.sleep(0)
            await relay.close()
            client.close()
    finally:
        if was_enabled:
            gc.enable()
