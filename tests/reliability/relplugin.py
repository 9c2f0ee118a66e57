"""The plugin the reliability suite drives: ``rpcplugin.serve`` with raw-bytes handlers.

Service ``reliability.Probe`` (no protobuf, so it starts fast and needs no generated code):

``Echo``
    unary: returns the request (``log-me``: after a debug line on logger ``relplugin``).
``Hold``
    unary: notes ``hold`` in the events file, then ``await asyncio.sleep(<request seconds>)``
    and answers ``held`` (an in-flight call that yields to the event loop).
``Block``
    unary: notes ``block``, then ``time.sleep(<request seconds>)`` *on the event loop thread*:
    the plugin is wedged, Shutdown cannot even be read.
``Count``
    server stream: request ``"N SIZE"``; notes ``count``, then sends N messages of SIZE bytes
    (N = 0: until cancelled).
``reliability.Typed``
    ``Wait`` and ``Flood``, through ``rpcplugin.servicer`` (see :mod:`typed`).
``Key``
    unary: the PEM private key of this plugin's AutoMTLS certificate, only with
    ``REL_EXPOSE_KEY=1`` (for the test that scans logs for it; a real plugin never does this).

Environment (all optional):

``REL_EVENTS=PATH``
    append ``<monotonic> <event> [detail]`` lines (``hold``, ``block``, ``count``, ``holder PID``,
    ``mode KIND PATH OCTAL``).
``REL_HOLDER=1``
    before anything else, start ``sleep 30`` in its own session inheriting the real stdout and
    stderr pipes: a grandchild that keeps the host's pipes open after the plugin is gone.
``REL_WATCH_MODES=1``
    set the umask to 0 (the worst a plugin can inherit), then record the permission bits of
    every unix socket the moment it is bound (gRPC's ``add_*_port``, ``socket.bind``) and after
    every ``os.chmod``/``os.chown`` of one (``mode bind|chmod|chown PATH OCTAL`` events). A
    control socket is bound outside the runtime first (``mode control ...``), showing the
    recording sees the umask's effect.
``REL_AUDIT=PATH``
    record every file this process opens for writing (``sys.addaudithook``), one path a line.
``REL_LEAK_KEY=1``
    misbehave on purpose, for the control of the key scan: once serving, write the AutoMTLS
    key to a temp file and remove it at once, to ``~/leaked.pem``, keep it in an open memfd,
    and log it.
``REL_STEAL_PORT=1``
    play the other plugin in a race for a TCP port: right after the runtime has found its first
    free port, bind and listen on it here (``stolen PORT`` event), as a plugin launched at the
    same moment does between the runtime's probe and its own bind.
"""

from __future__ import annotations

import os
import subprocess
import time


def event(name: str, detail: str = "") -> None:
    path = os.environ.get("REL_EVENTS")
    if not path:
        return
    line = f"{time.monotonic():.6f} {name} {detail}".rstrip() + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


if os.environ.get("REL_AUDIT"):
    import importlib

    importlib.import_module("audit").install_audit(os.environ["REL_AUDIT"])  # sys.path[0]

if os.environ.get("REL_HOLDER") == "1":
    # before rpcplugin.guard_stdout: this child holds the host's real stdout and stderr pipes
    holder = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL, start_new_session=True)
    event("holder", str(holder.pid))

import rpcplugin  # noqa: E402

rpcplugin.guard_stdout()

import asyncio  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
from collections.abc import AsyncIterator, Callable  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402

HANDSHAKE = rpcplugin.Handshake(
    "RELIABILITY_PLUGIN", os.environ.get("REL_COOKIE_EXPECTED", "reliability-v1")
)
Context = grpc.aio.ServicerContext[bytes, bytes]
_identities: list[Any] = []


def _record_mode(kind: str, path: object) -> None:
    if not isinstance(path, str) or not path.startswith("/"):
        return
    try:
        info = os.lstat(path)
    except OSError:
        return
    if stat.S_ISSOCK(info.st_mode):
        event("mode", f"{kind} {path} {stat.S_IMODE(info.st_mode):o}")


def watch_modes() -> None:
    os.umask(0)
    control_dir = os.environ.get("REL_CONTROL_DIR")
    if control_dir:
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = os.path.join(control_dir, "control.sock")
        control.bind(path)  # not through the runtime: shows what umask 0 alone gives
        _record_mode("control", path)
        control.close()
        os.unlink(path)

    original_bind = socket.socket.bind

    def bind(self: socket.socket, address: Any) -> None:
        original_bind(self, address)
        _record_mode("bind", address)

    setattr(socket.socket, "bind", bind)  # noqa: B010 (mypy: a method)

    from grpc.aio import _server

    def wrap_port(method: Callable[..., int]) -> Callable[..., int]:
        def wrapped(self: Any, address: str, *args: Any) -> int:
            port = method(self, address, *args)
            if address.startswith("unix:"):
                _record_mode("bind", address[len("unix:") :])
            return port

        return wrapped

    server_class: Any = _server.Server
    server_class.add_insecure_port = wrap_port(server_class.add_insecure_port)
    server_class.add_secure_port = wrap_port(server_class.add_secure_port)

    for name in ("chmod", "chown"):
        original: Callable[..., None] = getattr(os, name)

        def changed(path: Any, *args: Any, _original: Any = original, _name: str = name) -> None:
            _original(path, *args)
            _record_mode(_name, path)

        setattr(os, name, changed)


def steal_port() -> None:
    from rpcplugin._wire import listeners as server_module

    real: Callable[..., int] = getattr(server_module, "free_tcp_port")  # noqa: B009
    competitors: list[socket.socket] = []

    def racing(min_port: int | None, max_port: int | None, host: str = "127.0.0.1") -> int:
        port = real(min_port, max_port, host)
        if not competitors:
            competitor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            competitor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as listeners do
            competitor.bind((host, port))
            competitor.listen()
            competitors.append(competitor)
            event("stolen", str(port))
        return port

    setattr(server_module, "free_tcp_port", racing)  # noqa: B010


def expose_key() -> None:
    from rpcplugin._wire import early_cert, mtls

    original = mtls.generate_certificate
    original_collect = early_cert.collect

    def generate(curve: str = "secp256r1") -> Any:
        identity = original(curve)
        _identities.append(identity)
        return identity

    def collect() -> Any:  # the certificate `openssl req` made (rpcplugin._wire.early_cert)
        identity = original_collect()
        if identity is not None:
            _identities.append(identity)
        return identity

    mtls.generate_certificate = generate
    early_cert.collect = collect


async def echo(request: bytes, context: Context) -> bytes:
    if request == b"log-me":  # the plugin code's own debug line (the logging scope test)
        import logging

        logging.getLogger("relplugin").debug("echo was asked to log")
    return request


async def hold(request: bytes, context: Context) -> bytes:
    event("hold")
    await asyncio.sleep(float(request or b"0"))
    return b"held"


async def block(request: bytes, context: Context) -> bytes:
    event("block")
    time.sleep(float(request or b"0"))
    return b"unblocked"


async def count(request: bytes, context: Context) -> AsyncIterator[bytes]:
    n_text, _, size_text = request.decode().partition(" ")
    n, size = int(n_text or 0), int(size_text or 1)
    event("count")
    chunk = b"c" * size
    sent = 0
    while n == 0 or sent < n:
        yield chunk
        sent += 1


_held: list[int] = []


async def key(request: bytes, context: Context) -> bytes:
    if os.environ.get("REL_EXPOSE_KEY") != "1" or not _identities:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
    pem = bytes(_identities[-1].key_pem)
    if os.environ.get("REL_LEAK_KEY") == "1" and not _held:
        import logging
        import tempfile

        fd, path = tempfile.mkstemp()
        os.write(fd, pem)
        os.close(fd)
        os.unlink(path)
        with open(os.path.join(os.path.expanduser("~"), "leaked.pem"), "wb") as handle:
            handle.write(pem)
        _held.append(os.memfd_create("leaked-key"))
        os.write(_held[0], pem)
        logging.getLogger("relplugin").warning("my key: %s", pem.decode())
    return pem


class Typed:
    """``reliability.Typed`` (see :mod:`typed`)."""

    async def wait(self, request: Any) -> Any:
        event("wait")
        try:
            await asyncio.Event().wait()
        finally:
            event("wait-finally")

    async def flood(self, request: Any) -> AsyncIterator[Any]:
        from google.protobuf.wrappers_pb2 import StringValue

        chunk = StringValue(value="f" * 65536)
        try:
            while True:
                yield chunk
        finally:
            event("flood-finally")


def handler() -> grpc.GenericRpcHandler:
    unary = grpc.unary_unary_rpc_method_handler
    return grpc.method_handlers_generic_handler(
        "reliability.Probe",
        {
            "Echo": unary(echo),
            "Hold": unary(hold),
            "Block": unary(block),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Key": unary(key),
        },
    )


if __name__ == "__main__":
    if os.environ.get("REL_WATCH_MODES") == "1":
        watch_modes()
    if os.environ.get("REL_EXPOSE_KEY") == "1":
        expose_key()
    if os.environ.get("REL_STEAL_PORT") == "1":
        steal_port()
    import typed  # sys.path[0]: this directory

    rpcplugin.serve(HANDSHAKE, {1: [handler(), typed.SERVICE.handler(Typed())]}, name="reliability")
