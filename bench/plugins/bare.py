"""The floor: a bare ``grpc.aio`` plugin with nothing but what a go-plugin host needs.

The magic cookie check, the bench service and a health service on a unix socket, a hand-written
handshake line, and, when the host sends ``PLUGIN_CLIENT_CERT``, mutual TLS through grpcio with a
fresh P-256 certificate (what any AutoMTLS plugin must do). SIGTERM stops the server and removes
the socket. No settings, no stdout guard, no controller, stdio or broker services.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
import tempfile

import grpc
import service


async def serve() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((service.health_handler(), service.handler()))
    directory = os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or tempfile.gettempdir()
    path = os.path.join(directory, f"bare-plugin-{os.getpid()}.sock")
    host_cert = os.environ.get("PLUGIN_CLIENT_CERT")
    cert_field = ""
    if host_cert:
        import baretls

        identity = baretls.generate()
        credentials = grpc.ssl_server_credentials(
            [(identity.key_pem, identity.cert_pem)],
            root_certificates=host_cert.encode(),
            require_client_auth=True,
        )
        server.add_secure_port(f"unix:{path}", credentials)
        cert_field = base64.b64encode(identity.cert_der).decode().rstrip("=")
    else:
        server.add_insecure_port(f"unix:{path}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    os.write(1, f"1|1|unix|{path}|grpc|{cert_field}\n".encode())
    await stop.wait()
    await server.stop(None)
    with contextlib.suppress(FileNotFoundError):  # grpcio usually removes it itself
        os.unlink(path)


if __name__ == "__main__":
    if os.environ.get(service.COOKIE_KEY) != service.COOKIE_VALUE:
        sys.exit("not launched by a host")
    asyncio.run(serve())
