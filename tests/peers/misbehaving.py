#!/usr/bin/env python3
"""A go-plugin plugin that misbehaves on request, for the host-side tests (``tests/host``).

It does not use the project's runtime: the handshake line, the unix/tcp listener, AutoMTLS and
the services a host needs (``grpc.health.v1.Health/Check``, ``plugin.GRPCController/Shutdown``)
are hand-rolled on ``grpc.aio``, so a bug in ``rpcplugin.serve`` cannot hide one in the host.

Usage: ``misbehaving.py MODE [ARG...]`` (or ``MISBEHAVE="MODE ARG..."`` when argv is empty).

Modes
-----
``ok``
    behave: check the cookie (``MISBEHAVE_COOKIE=KEY=VALUE``, default
    ``MISBEHAVE_PLUGIN=yes``), negotiate among ``MISBEHAVE_VERSIONS`` (default ``1``), listen,
    print the handshake, serve until Shutdown, exit 0.
``exit CODE [TEXT]``
    write TEXT (default ``misbehaving: exiting before the handshake``) to stderr, exit CODE,
    before any handshake.
``garbage [TEXT]``
    print TEXT as a stdout line *before* the real handshake line.
``stderr-noise``
    write awkward stderr lines (hclog JSON at every level, malformed JSON, non-string
    ``@message``, non-UTF-8, a 100 KiB line, ``[LEVEL]`` prefixes) before and after the
    handshake, then behave.
``line TEMPLATE``
    print TEMPLATE instead of the handshake line. ``{line}`` is the real line (no newline),
    ``{version}``, ``{network}``, ``{addr}`` and ``{cert}`` (unpadded base64 DER, or empty) its
    parts; ``\\n`` and ``\\0`` are expanded. The server runs behind it as in ``ok``.
``core N`` / ``app N`` / ``netrpc`` / ``oversize`` / ``nul``
    shorthands for ``line``: core version N; app version N; protocol ``netrpc``; a 70 KiB
    line (a valid line padded with spaces, which a 64 KiB scanner must reject); a NUL byte.
``silent``
    never print a handshake (sleep; the host's start timeout must fire).
``close-stdout``
    close stdout without printing anything, then keep running.
``die-after MS CODE``
    handshake, serve, then exit CODE MS milliseconds later (writing a last stderr line).
``wedged reply|hang``
    ignore Shutdown: answer it and keep running (``reply``) or never answer (``hang``);
    SIGINT and SIGTERM are ignored too. Only SIGKILL ends it.
``slow-health``
    behave, but never answer the health check.
``flood MIB``
    after the handshake write MIB MiB to stdout and MIB MiB to stderr (1 KiB lines plus one
    200 KiB line), from the event loop thread: if the host stops draining, the server stalls.
``unasked-cert``
    announce a certificate even though the host sent no ``PLUGIN_CLIENT_CERT``.
``swap-cert``
    announce certificate A, serve TLS with certificate B (same profile).
``no-tls``
    serve plaintext and announce no certificate although ``PLUGIN_CLIENT_CERT`` is set.
``plaintext-with-cert``
    announce a certificate but serve plaintext.
``fork-holder before CODE`` / ``fork-holder after``
    start ``sleep 30`` (own session) inheriting stdout and stderr, then exit CODE before the
    handshake, or behave (and exit on Shutdown) leaving it behind holding both pipes.

Environment
-----------
``MISBEHAVE_EVENTS=PATH``: append ``<monotonic> <event> [detail]`` lines (``handshake``,
``shutdown``, ``signal NAME``, ``child PID``, ``flood-done``, ``dying`` (just before an
``exit`` or ``die-after`` exit), ``listening ADDR``,
``unimplemented /pkg.Service/Method`` for calls to anything it does not serve).
``MISBEHAVE_CURVE``: ``secp256r1`` (default) or ``secp521r1`` for the plugin certificate.
``MISBEHAVE_SAN``: the certificate's DNS name (default ``localhost``).
``MISBEHAVE_TCP=1`` (or ``RPCPLUGIN_TRANSPORT=tcp``): listen on 127.0.0.1.
``MISBEHAVE_COOKIE=KEY=VALUE``, ``MISBEHAVE_VERSIONS=1,2``.

Service ``misbehaving.Probe`` (raw bytes, no protobuf): ``Echo`` returns the request;
``Info`` returns JSON ``{"pid", "env", "argv", "mode"}``; ``Hold`` sleeps the number of
seconds in the request, then answers ``held``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used, so that `exit` mode is out before grpc loads
    import grpc

SHORTHANDS = {
    "netrpc": "1|{version}|{network}|{addr}|netrpc|{cert}",
    "nul": "1|{version}|{network}|{addr}|grpc|\\0{cert}",
}
OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def event(name: str, detail: str = "") -> None:
    """Append one line to the events file, if there is one."""
    path = os.environ.get("MISBEHAVE_EVENTS")
    if not path:
        return
    line = f"{time.monotonic():.6f} {name} {detail}".rstrip() + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def err(text: str) -> None:
    os.write(2, (text + "\n").encode("utf-8", "replace"))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass
class Cert:
    cert_pem: bytes
    key_pem: bytes
    der: bytes


def make_cert(curve_name: str) -> Cert:
    """A self-signed certificate with go-plugin's AutoMTLS profile."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    curve: ec.EllipticCurve = ec.SECP521R1() if curve_name == "secp521r1" else ec.SECP256R1()
    digest: hashes.SHA256 | hashes.SHA512 = (
        hashes.SHA512() if curve_name == "secp521r1" else hashes.SHA256()
    )
    key = ec.generate_private_key(curve)
    san = os.environ.get("MISBEHAVE_SAN", "localhost")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, digest)
    )
    return Cert(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        der=cert.public_bytes(serialization.Encoding.DER),
    )


def unary(
    fn: Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]],
) -> grpc.RpcMethodHandler[bytes, bytes]:
    import grpc

    return grpc.unary_unary_rpc_method_handler(fn)  # raw bytes both ways


class Plugin:
    def __init__(self, mode: str, args: list[str]) -> None:
        self.mode = mode
        self.args = args
        self.stop = asyncio.Event()
        self.socket_path: str | None = None

    # -- services ------------------------------------------------------------------------
    async def health(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        if self.mode == "slow-health":
            await asyncio.Event().wait()
        return b"\x08\x01"  # SERVING, whatever the service name

    async def shutdown(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        event("shutdown")
        if self.mode == "wedged":
            if self.args[:1] == ["hang"]:
                await asyncio.Event().wait()
            return b""
        asyncio.get_running_loop().call_later(0.005, self.stop.set)
        return b""

    async def echo(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    async def info(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        info = {"pid": os.getpid(), "env": dict(os.environ), "argv": sys.argv, "mode": self.mode}
        return json.dumps(info).encode()

    async def hold(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await asyncio.sleep(float(request.decode() or "0"))
        return b"held"

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        import grpc

        class Unimplemented(grpc.GenericRpcHandler):
            """Records calls to methods this plugin does not serve (they stay UNIMPLEMENTED)."""

            def service(
                self, handler_call_details: grpc.HandlerCallDetails
            ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
                event("unimplemented", str(getattr(handler_call_details, "method", "")))
                return None

        generic = grpc.method_handlers_generic_handler
        return [
            generic("grpc.health.v1.Health", {"Check": unary(self.health)}),
            generic("plugin.GRPCController", {"Shutdown": unary(self.shutdown)}),
            generic(
                "misbehaving.Probe",
                {"Echo": unary(self.echo), "Info": unary(self.info), "Hold": unary(self.hold)},
            ),
            Unimplemented(),
        ]

    # -- the run -------------------------------------------------------------------------
    async def run(self) -> int:
        import grpc

        mode, args = self.mode, self.args
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(watch_parent())]
        if mode == "fork-holder":
            child = subprocess.Popen(
                ["sleep", "30"], stdin=subprocess.DEVNULL, start_new_session=True
            )
            event("child", str(child.pid))
            err(f"misbehaving: started holder {child.pid}")
            if args[0] == "before":
                return int(args[1])
        if mode == "silent":
            err("misbehaving: starting very slowly")
            await asyncio.Event().wait()
        if mode == "close-stdout":
            os.close(1)
            err("misbehaving: closed my stdout")
            await asyncio.Event().wait()
        if mode == "wedged":
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, event, "signal", sig.name)
        if mode == "stderr-noise":
            noise()
        cookie_key, _, cookie_value = os.environ.get(
            "MISBEHAVE_COOKIE", "MISBEHAVE_PLUGIN=yes"
        ).partition("=")
        if os.environ.get(cookie_key) != cookie_value:
            err("misbehaving: this is a plugin; its host starts it (wrong or missing cookie)")
            return 1
        version = negotiate()
        client_pem = os.environ.get("PLUGIN_CLIENT_CERT")
        curve = os.environ.get("MISBEHAVE_CURVE", "secp256r1")
        announced: Cert | None = None
        credentials: grpc.ServerCredentials | None = None
        if client_pem and mode not in ("no-tls", "plaintext-with-cert"):
            served = make_cert(curve)
            announced = make_cert(curve) if mode == "swap-cert" else served
            credentials = grpc.ssl_server_credentials(
                [(served.key_pem, served.cert_pem)],
                root_certificates=client_pem.encode(),
                require_client_auth=True,
            )
        elif mode in ("unasked-cert", "plaintext-with-cert"):
            announced = make_cert(curve)

        server = grpc.aio.server(options=OPTIONS)
        server.add_generic_rpc_handlers(self.handlers())
        tcp = os.environ.get("MISBEHAVE_TCP") == "1" or (
            os.environ.get("RPCPLUGIN_TRANSPORT") == "tcp"
        )
        if tcp:
            target = "127.0.0.1:0"
        else:
            directory = os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or tempfile.gettempdir()
            fd, path = tempfile.mkstemp(prefix="plugin", dir=directory)
            os.close(fd)
            os.unlink(path)
            self.socket_path = path
            target = f"unix:{path}"
        if credentials is None:
            port = server.add_insecure_port(target)
        else:
            port = server.add_secure_port(target, credentials)
        await server.start()
        network, addr = ("tcp", f"127.0.0.1:{port}") if tcp else ("unix", self.socket_path or "")
        event("listening", f"{network}:{addr}")
        cert = base64.b64encode(announced.der).decode().rstrip("=") if announced else ""
        real = f"1|{version}|{network}|{addr}|grpc|{cert}"
        line = handshake_line(
            mode, args, real, version=version, network=network, addr=addr, cert=cert
        )
        if mode == "garbage":
            write_all(1, ((args[0] if args else "this is not a handshake") + "\n").encode())
        write_all(1, line)
        event("handshake")

        if mode == "die-after":
            code = int(args[1])

            def die() -> None:
                err(f"misbehaving: dying with status {code} as told")
                event("dying")
                os._exit(code)

            loop.call_later(int(args[0]) / 1000, die)
        if mode == "flood":
            tasks.append(loop.create_task(flood(int(args[0]) << 20)))
        if mode == "stderr-noise":
            noise()
        try:
            await self.stop.wait()
        finally:
            await server.stop(0.1)
            if self.socket_path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.socket_path)
        return 0


def negotiate() -> int:
    ours = sorted(int(v) for v in os.environ.get("MISBEHAVE_VERSIONS", "1").split(","))
    offered = set()
    for item in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(","):
        if item.strip().isdigit():
            offered.add(int(item))
    for version in reversed(ours):
        if version in offered:
            return version
    return ours[0]


def handshake_line(
    mode: str, args: list[str], real: str, *, version: int, network: str, addr: str, cert: str
) -> bytes:
    if mode == "core":
        template = args[0] + "|{version}|{network}|{addr}|grpc|{cert}"
    elif mode == "app":
        template = "1|" + args[0] + "|{network}|{addr}|grpc|{cert}"
    elif mode == "oversize":
        return (real + " " * (70 * 1024) + "\n").encode()
    elif mode in SHORTHANDS:
        template = SHORTHANDS[mode]
    elif mode == "line":
        template = args[0]
    else:
        return (real + "\n").encode()
    text = (
        template.replace("\\n", "\n")
        .replace("\\0", "\0")
        .replace("{line}", real)
        .replace("{version}", str(version))
        .replace("{network}", network)
        .replace("{addr}", addr)
        .replace("{cert}", cert)
    )
    return (text + "\n").encode()


def noise() -> None:
    """Stderr lines a host must survive."""
    lines: list[bytes] = [
        b'{"@level":"info","@message":"noise info","@timestamp":"2026-11-23T10:00:00.000000Z",'
        b'"@module":"misbehaving","answer":42}',
        b'{"@level":"ERROR","@message":"noise error","@timestamp":"2026-11-23T10:00:00.000000Z"}',
        b'{"@level":"warn","@message":"noise warn"}',
        b'{"@level":"trace","@message":"noise trace"}',
        b'{"@level":"debug","@message":"noise debug"}',
        b'{"@level":"info","@message":12345}',
        b'{"@level":null,"@message":null,"@timestamp":7}',
        b'{"@level":"bogus","@message":"noise unknown level"}',
        b'{"@level": "info", "@message": "truncated json',
        b"[]",
        b"[WARN] noise plain warn",
        b"[ERROR] noise plain error",
        b"[INFO] noise plain info",
        b"just some noise text",
        b"\xff\xfe not utf-8 \x80",
        b"\x00\x01 control bytes \x1b[31m",
        b"{" + b"x" * (100 * 1024) + b"}",
        b"",
    ]
    for line in lines:
        write_all(2, line + b"\n")


async def flood(size: int) -> None:
    """Write ``size`` bytes to stdout and to stderr from the loop thread (blocking writes)."""
    out_chunk = b"o" * 1023 + b"\n"
    err_chunk = (b"[DEBUG] " + b"e" * 1015 + b"\n") * 16
    written = 0
    while written < size:
        write_all(1, out_chunk * 16)
        write_all(2, err_chunk)
        written += len(err_chunk)
        if written == 16 * 16 * 1024:
            write_all(2, b"E" * (200 * 1024) + b"\n")  # one line longer than 64 KiB
        await asyncio.sleep(0)
    event("flood-done")
    err("misbehaving: flood done")


async def watch_parent() -> None:
    parent = os.getppid()
    while True:
        await asyncio.sleep(0.5)
        if os.getppid() != parent:
            os._exit(70)


def main() -> int:
    argv = sys.argv[1:] or shlex.split(os.environ.get("MISBEHAVE", "ok"))
    mode, args = argv[0], argv[1:]
    if mode == "exit":
        err(args[1] if len(args) > 1 else "misbehaving: exiting before the handshake")
        event("dying")
        os._exit(int(args[0]))
    return asyncio.run(Plugin(mode, args).run())


if __name__ == "__main__":
    sys.exit(main())
