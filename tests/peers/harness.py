"""Driving a plugin process at the raw protocol level: launch, read the handshake, dial, stop.

Deliberately independent of the runtime's own host side: the handshake line is split here, the
health/stdio/broker messages are encoded by hand, and the OpenSSL dial path is a small relay of
its own built on :mod:`ssl`. Only certificates come from :mod:`rpcplugin.mtls` (any curve).

The fixtures in ``tests/conftest.py`` wrap this module; tests import its types from here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from rpcplugin._wire import mtls

TESTS_DIR = Path(__file__).resolve().parent.parent
PYPLUGIN = TESTS_DIR / "peers" / "pyplugin.py"
COOKIE_KEY, COOKIE_VALUE = "RPCPLUGIN_CONFORMANCE", "conformance-v1"
HANDSHAKE_TIMEOUT = 20.0
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.enable_retries", 0),
)
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
_OWN_PREFIXES = ("PLUGIN_", "RPCPLUGIN_", "CONFORMANCE_")


def short_tmpdir(prefix: str = "rpt-") -> str:
    """A fresh 0700 directory with a short path (socket paths must stay under 104 bytes)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def plugin_env(
    pb_dir: Path | str, tmpdir: str, overrides: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """The environment a host would give the conformance plugin.

    This process's environment without any PLUGIN_/RPCPLUGIN_/CONFORMANCE_ variables, plus the
    cookie, ``PLUGIN_PROTOCOL_VERSIONS=1``, ``TMPDIR`` (where unix sockets go by default) and
    ``PYTHONPATH`` (the compiled protos). ``overrides`` wins; a ``None`` value removes the name.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env.pop(COOKIE_KEY, None)
    env.update(
        {
            COOKIE_KEY: COOKIE_VALUE,
            "PLUGIN_PROTOCOL_VERSIONS": "1",
            "TMPDIR": tmpdir,
            "PYTHONPATH": os.pathsep.join(
                [str(pb_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
    )
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


# ---- the handshake line ----


@dataclass(frozen=True)
class Handshake:
    """The handshake line as read from the plugin's stdout, split on every ``|``."""

    raw: bytes
    fields: list[str]

    @classmethod
    def parse(cls, raw: bytes) -> Handshake:
        assert raw.endswith(b"\n"), f"handshake line not newline-terminated: {raw!r}"
        text = raw[:-1].decode("utf-8")
        assert "\n" not in text and "\r" not in text, raw
        fields = text.split("|")
        assert len(fields) >= 6, f"handshake line has {len(fields)} fields: {raw!r}"
        return cls(raw, fields)

    @property
    def core(self) -> int:
        return int(self.fields[0])

    @property
    def version(self) -> int:
        return int(self.fields[1])

    @property
    def network(self) -> str:
        return self.fields[2]

    @property
    def address(self) -> str:
        return self.fields[3]

    @property
    def protocol(self) -> str:
        return self.fields[4]

    @property
    def cert_field(self) -> str:
        return self.fields[5]

    @property
    def cert_der(self) -> bytes | None:
        """Field 6 decoded (unpadded standard base64), or None when empty."""
        if not self.cert_field:
            return None
        padded = self.cert_field + "=" * (-len(self.cert_field) % 4)
        return base64.b64decode(padded, validate=True)

    @property
    def cert_pem(self) -> bytes:
        der = self.cert_der
        assert der is not None, "the plugin announced no certificate"
        return ssl.DER_cert_to_PEM_cert(der).encode()

    @property
    def target(self) -> str:
        """The address in gRPC target syntax."""
        return f"unix:{self.address}" if self.network == "unix" else self.address

    def connect_socket(self, timeout: float = 5.0) -> socket.socket:
        """A raw stream socket connected to the announced address (one attempt, no retry)."""
        if self.network == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = self.address
        else:
            host, _, port = self.address.rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (host, int(port))
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock


# ---- the plugin process ----


class PluginProcess:
    """A launched plugin: stdout read by hand (handshake, then EOF), stderr collected by a
    thread so the plugin can never block on it."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        stdin: int | None = subprocess.DEVNULL,
        owned_dirs: Sequence[str] = (),
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.owned_dirs = list(owned_dirs)
        self.allow_traceback = False
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._stdout_fd = self.proc.stdout.fileno()
        os.set_blocking(self._stdout_fd, False)
        self._stdout = b""
        self.stdout_eof = False
        self.handshake_at: float | None = None
        self._stderr_lines: list[bytes] = []
        self._stderr_cond = threading.Condition()
        self._stderr_done = False
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.hs: Handshake | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    # stdout

    def _read_stdout(self, until: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until() and not self.stdout_eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self._stdout_fd], [], [], left)
            if not ready:
                continue
            try:
                data = os.read(self._stdout_fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                self.stdout_eof = True
            else:
                if self.handshake_at is None and b"\n" in data:
                    self.handshake_at = time.monotonic()
                self._stdout += data

    def read_line(self, timeout: float = HANDSHAKE_TIMEOUT) -> bytes:
        """The next stdout line (with its newline); fail with the plugin's stderr."""
        self._read_stdout(lambda: b"\n" in self._stdout, timeout)
        if b"\n" not in self._stdout:
            state = "exited " + str(self.proc.poll()) if self.proc.poll() is not None else "running"
            raise AssertionError(
                f"no stdout line within {timeout} s (plugin {state}); stdout so far "
                f"{self._stdout!r}\nstderr:\n{self.stderr_text()}"
            )
        line, _, self._stdout = self._stdout.partition(b"\n")
        return line + b"\n"

    def read_handshake(self, timeout: float = HANDSHAKE_TIMEOUT) -> Handshake:
        """Wait for the first stdout line and parse it as the handshake."""
        self.hs = Handshake.parse(self.read_line(timeout))
        return self.hs

    def read_rest_of_stdout(self, timeout: float) -> bytes:
        """Everything after the handshake line until EOF (or until ``timeout``)."""
        self._read_stdout(lambda: False, timeout)
        return self._stdout

    # stderr

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            with self._stderr_cond:
                self._stderr_lines.append(line)
                self._stderr_cond.notify_all()
        with self._stderr_cond:
            self._stderr_done = True
            self._stderr_cond.notify_all()

    def stderr_lines(self) -> list[str]:
        with self._stderr_cond:
            return [raw.decode("utf-8", "replace").rstrip("\n") for raw in self._stderr_lines]

    def stderr_raw_lines(self) -> list[bytes]:
        with self._stderr_cond:
            return list(self._stderr_lines)

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines())

    def wait_stderr(self, predicate: Callable[[str], bool], timeout: float = 5.0) -> str:
        """The first stderr line matching ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._stderr_cond:
            while True:
                for raw in self._stderr_lines:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self._stderr_done:
                    break
                self._stderr_cond.wait(left)
        raise AssertionError(f"no matching stderr line within {timeout} s:\n{self.stderr_text()}")

    def wait_stderr_closed(self, timeout: float = 5.0) -> None:
        self._reader.join(timeout)

    # exit

    def wait(self, timeout: float) -> int:
        """Wait for the exit status; AssertionError (with stderr) if it is still running."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"plugin {self.pid} still running after {timeout} s\n{self.stderr_text()}"
            ) from None
        self._reader.join(5)
        return code

    async def wait_async(self, timeout: float) -> int:
        """:meth:`wait` without blocking the event loop (which may be carrying the connection,
        e.g. through an :class:`OpenSSLRelay`, that the plugin is closing)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"plugin {self.pid} still running after {timeout} s\n{self.stderr_text()}"
                )
            await asyncio.sleep(0.002)
        self._reader.join(5)
        return self.proc.returncode

    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, grace: float = 3.0) -> str | None:
        """End the process if it still runs: SIGTERM (the runtime cleans up), then SIGKILL.
        Returns a complaint when SIGKILL was needed."""
        complaint = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                complaint = f"plugin {self.pid} ignored SIGTERM for {grace} s"
        self._reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return complaint


def leftovers(directory: str) -> list[str]:
    """What is left in a socket directory (should be nothing once the plugin is gone)."""
    try:
        return sorted(os.listdir(directory))
    except OSError:  # gone, or not a directory
        return []


def assert_no_traceback(text: str) -> None:
    assert "Traceback (most recent call last)" not in text, text


def pid_gone(pid: int) -> bool:
    """The process is gone or a zombie (for processes that are not our children)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] in (b"Z", b"X")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def poll_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# ---- TLS material ----


@dataclass
class Identity:
    """A certificate and key (go-plugin's AutoMTLS profile) with files for :mod:`ssl`."""

    material: mtls.CertificateAndKey
    cert_path: str
    key_path: str

    @classmethod
    def make(cls, directory: str, curve: str = "secp256r1") -> Identity:
        material = mtls.generate_certificate(curve)
        fd, cert_path = tempfile.mkstemp(suffix=".crt", dir=directory)
        os.write(fd, material.cert_pem)
        os.close(fd)
        fd, key_path = tempfile.mkstemp(suffix=".key", dir=directory)
        os.write(fd, material.key_pem)
        os.close(fd)
        return cls(material, cert_path, key_path)

    @property
    def pem(self) -> str:
        """What a host puts into ``PLUGIN_CLIENT_CERT``."""
        return self.material.cert_pem.decode()


def client_context(
    hs: Handshake,
    identity: Identity | None,
    *,
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> ssl.SSLContext:
    """An OpenSSL client context like a go-plugin host's: trust only the announced certificate,
    server name ``localhost``, ALPN h2, and present ``identity`` (None: no certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = minimum
    context.maximum_version = maximum
    context.load_verify_locations(cadata=hs.cert_pem.decode())
    context.check_hostname = True
    context.set_alpn_protocols(["h2"])
    if identity is not None:
        context.load_cert_chain(identity.cert_path, identity.key_path)
    return context


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@dataclass
class ProbeResult:
    """What a raw TLS client saw: whether the plugin answered HTTP/2, and the TLS facts."""

    served: bool
    error: str = ""
    version: str | None = None
    alpn: str | None = None
    peer_der: bytes | None = None


def tls_probe(hs: Handshake, context: ssl.SSLContext, timeout: float = 5.0) -> ProbeResult:
    """Connect with ``context``, send the HTTP/2 preface and see whether the server answers with
    its SETTINGS frame. A refused client certificate shows up as an alert or EOF (under TLS 1.3
    the server checks the client's certificate after the client considers the handshake done)."""
    raw = hs.connect_socket(timeout)
    try:
        tls = context.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
    except BaseException:
        raw.close()
        raise
    result = ProbeResult(False)
    with tls:
        try:
            tls.do_handshake()
            result.version = tls.version()
            result.alpn = tls.selected_alpn_protocol()
            result.peer_der = tls.getpeercert(binary_form=True)
            tls.sendall(H2_PREFACE)
            data = b""
            while len(data) < 9:
                chunk = tls.recv(9 - len(data))
                if not chunk:
                    result.error = "EOF before the server's SETTINGS frame"
                    return result
                data += chunk
        except (ssl.SSLError, OSError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            return result
        if data[3] != 0x04:
            result.error = f"first frame is type {data[3]}, not SETTINGS"
            return result
        result.served = True
    return result


# ---- dialing with grpc.aio ----


@dataclass
class TLSSession:
    version: str | None
    alpn: str | None
    peer_der: bytes | None
    cipher: str | None


@dataclass
class OpenSSLRelay:
    """Client side of the OpenSSL path: grpc.aio speaks plaintext to a private unix socket, and
    each connection is carried over a new TLS connection (Python :mod:`ssl`) to the plugin."""

    hs: Handshake
    context: ssl.SSLContext
    sessions: list[TLSSession] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _dir: str = ""
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> str:
        self._dir = short_tmpdir("rpt-relay-")
        path = os.path.join(self._dir, "s")
        self._server = await asyncio.start_unix_server(self._handle, path)
        return f"unix:{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            try:
                if self.hs.network == "unix":
                    up_r, up_w = await asyncio.open_unix_connection(
                        self.hs.address, ssl=self.context, server_hostname="localhost"
                    )
                else:
                    host, _, port = self.hs.address.rpartition(":")
                    up_r, up_w = await asyncio.open_connection(
                        host, int(port), ssl=self.context, server_hostname="localhost"
                    )
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            self._writers.add(up_w)
            tls = up_w.get_extra_info("ssl_object")
            cipher = up_w.get_extra_info("cipher")
            self.sessions.append(
                TLSSession(
                    tls.version(),
                    tls.selected_alpn_protocol(),
                    tls.getpeercert(binary_form=True),
                    cipher[0] if cipher else None,
                )
            )
            await asyncio.gather(_pump(reader, up_w, self.errors), _pump(up_r, writer, self.errors))
        except asyncio.CancelledError:
            pass  # close() ends every connection; a cancelled handler is not an error here
        finally:
            writer.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        shutil.rmtree(self._dir, ignore_errors=True)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, errors: list[str]) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, ssl.SSLError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        dst.close()


@dataclass
class Dialed:
    """A grpc.aio channel to the plugin and, on the OpenSSL path, the relay carrying it."""

    channel: grpc.aio.Channel
    relay: OpenSSLRelay | None = None


@contextlib.asynccontextmanager
async def dial(
    hs: Handshake,
    identity: Identity | None = None,
    *,
    via: str = "auto",
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> AsyncIterator[Dialed]:
    """A grpc.aio channel to the plugin as a host would open it.

    Field 6 empty: plaintext. Otherwise mutual TLS trusting only the announced certificate,
    presenting ``identity``: ``via="grpc"`` uses grpcio's own TLS, ``via="openssl"`` the
    :class:`OpenSSLRelay`; ``"auto"`` picks grpc for a P-256/P-384 identity, else openssl.
    """
    relay = None
    if hs.cert_der is None:
        channel = grpc.aio.insecure_channel(hs.target, options=CHANNEL_OPTIONS)
    else:
        if via == "auto":
            curve = mtls.key_description(mtls.load_pem_certificate(identity.pem, source="test"))  # type: ignore[union-attr]
            via = "grpc" if curve in ("EC secp256r1", "EC secp384r1") else "openssl"
        if via == "grpc":
            credentials = grpc.ssl_channel_credentials(
                root_certificates=hs.cert_pem,
                private_key=identity.material.key_pem if identity else None,
                certificate_chain=identity.material.cert_pem if identity else None,
            )
            channel = grpc.aio.secure_channel(
                hs.target,
                credentials,
                options=(*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", "localhost")),
            )
        else:
            relay = OpenSSLRelay(hs, client_context(hs, identity, minimum=minimum))
            target = await relay.start()
            channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    try:
        yield Dialed(channel, relay)
    finally:
        await channel.close()
        if relay is not None:
            await relay.close()


# ---- the plugin's services, encoded by hand ----

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SHUTDOWN = "/plugin.GRPCController/Shutdown"
STREAM_STDIO = "/plugin.GRPCStdio/StreamStdio"
START_STREAM = "/plugin.GRPCBroker/StartStream"
SERVING = 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_fields(data: bytes) -> dict[int, list[int | bytes]]:
    """A protobuf message's fields (varint and length-delimited only), by number."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, kind = tag >> 3, tag & 7
        value: int | bytes
        if kind == 0:
            value, pos = _read_varint(data, pos)
        elif kind == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        else:
            raise ValueError(f"unexpected wire type {kind}")
        fields.setdefault(number, []).append(value)
    return fields


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def health_request(service: str) -> bytes:
    data = service.encode()
    return b"\x0a" + _varint(len(data)) + data if data else b""


async def health_check(channel: grpc.aio.Channel, service: str = "plugin") -> int:
    """``Health/Check`` with hand-made bytes; returns the status number."""
    call: Any = channel.unary_unary(HEALTH_CHECK)
    reply: bytes = await call(health_request(service), timeout=10)
    status = decode_fields(reply).get(1, [0])[-1]
    assert isinstance(status, int)
    return status


async def shutdown(channel: grpc.aio.Channel, timeout: float = 5.0) -> grpc.StatusCode:
    """``GRPCController/Shutdown``; returns the status code the call ended with."""
    call: Any = channel.unary_unary(SHUTDOWN)
    try:
        await call(b"", timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def stdio_stream(channel: grpc.aio.Channel) -> Any:
    """Open ``GRPCStdio/StreamStdio``; iterate it for raw ``StdioData`` bytes."""
    call: Any = channel.unary_stream(STREAM_STDIO)
    return call(b"")


def stdio_chunk(message: bytes) -> tuple[int, bytes]:
    fields = decode_fields(message)
    channel = fields.get(1, [0])[-1]
    data = fields.get(2, [b""])[-1]
    assert isinstance(channel, int) and isinstance(data, bytes)
    return channel, data


def conn_info(service_id: int, network: str = "", address: str = "") -> bytes:
    out = b"\x08" + _varint(service_id)
    for number, text in ((2, network), (3, address)):
        if text:
            out += bytes([number << 3 | 2]) + _varint(len(text.encode())) + text.encode()
    return out


class Conformance:
    """Hand-built stubs for ``conformance.v1`` (and v2's Echo) over any channel."""

    def __init__(self, channel: grpc.aio.Channel, pb: Any) -> None:
        v1, v2 = pb.v1, pb.v2
        base = "/conformance.v1.Conformance/"
        self.echo: Any = channel.unary_unary(
            base + "Echo", v1.EchoRequest.SerializeToString, v1.EchoReply.FromString
        )
        self.count: Any = channel.unary_stream(
            base + "Count", v1.CountRequest.SerializeToString, v1.CountReply.FromString
        )
        self.sum: Any = channel.stream_unary(
            base + "Sum", v1.SumRequest.SerializeToString, v1.SumReply.FromString
        )
        self.chat: Any = channel.stream_stream(
            base + "Chat", v1.ChatMessage.SerializeToString, v1.ChatMessage.FromString
        )
        self.info: Any = channel.unary_unary(
            base + "Info", v1.InfoRequest.SerializeToString, v1.InfoReply.FromString
        )
        self.echo2: Any = channel.unary_unary(
            "/conformance.v2.Conformance/Echo",
            v2.EchoRequest.SerializeToString,
            v2.EchoReply.FromString,
        )
        self._pb = pb

    async def command(self, text: str, timeout: float = 30.0) -> str:
        """Run a pyplugin ``!`` command through v1 Echo; returns the reply text."""
        reply = await self.echo(self._pb.v1.EchoRequest(text="!" + text), timeout=timeout)
        return str(reply.text)


@contextlib.contextmanager
def occupied_ports(ports: Sequence[int]) -> Iterator[list[socket.socket]]:
    """Hold 127.0.0.1 ports open (listening) for the duration."""
    held: list[socket.socket] = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
            held.append(sock)
        yield held
    finally:
        for sock in held:
            sock.close()


def free_port_run(length: int, start: int = 20000, stop: int = 60000) -> int:
    """The first port p >= ``start`` such that p .. p+length-1 all bind on 127.0.0.1 now."""
    port = start + (os.getpid() * 7) % 5000
    while port + length < stop:
        ok = True
        for candidate in range(port, port + length):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", candidate))
                except OSError:
                    ok = False
                    port = candidate + 1
                    break
        if ok:
            return port
    raise AssertionError("no run of free ports")


def python_argv(script: Path = PYPLUGIN) -> list[str]:
    return [sys.executable, str(script)]


# ---- the launcher behind the `launch` fixture ----


class Launcher:
    """Starts conformance plugins for one test and cleans up after it.

    Each launch gets a private short ``TMPDIR`` (where its unix socket goes by default). At
    teardown every plugin still running gets SIGTERM (which must make it clean up) and, after
    3 s, SIGKILL; then every socket directory it used must be empty and its stderr must hold no
    traceback.
    """

    def __init__(self, pb_dir: Path) -> None:
        self.pb_dir = pb_dir
        self.plugins: list[PluginProcess] = []
        self._dirs: list[str] = []
        self._secrets = short_tmpdir("rpt-keys-")

    def tmpdir(self) -> str:
        """A fresh short directory, removed (and checked for leftovers) at teardown."""
        path = short_tmpdir()
        self._dirs.append(path)
        return path

    def env(self, overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """A host-like environment for the plugin (see :func:`peers.harness.plugin_env`)."""
        return plugin_env(self.pb_dir, self.tmpdir(), overrides)

    def identity(self, curve: str = "secp256r1") -> Identity:
        """A host certificate (go-plugin's profile) of the given curve."""
        return Identity.make(self._secrets, curve)

    def __call__(
        self,
        overrides: Mapping[str, str | None] | None = None,
        *,
        argv: Sequence[str] | None = None,
        handshake: bool = True,
        stdin: int | None = subprocess.DEVNULL,
    ) -> PluginProcess:
        """Start the plugin with :meth:`env` plus ``overrides``; by default wait for and parse
        its handshake line (``plugin.hs``)."""
        env = self.env(overrides)
        dirs = [env["TMPDIR"]]
        if env.get("PLUGIN_UNIX_SOCKET_DIR"):
            dirs.append(env["PLUGIN_UNIX_SOCKET_DIR"])
        plugin = PluginProcess(argv or python_argv(), env, stdin=stdin, owned_dirs=dirs)
        self.plugins.append(plugin)
        if handshake:
            plugin.read_handshake()
        return plugin

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for plugin in self.plugins:
            complaint = plugin.stop()
            if complaint:
                problems.append(complaint)
                continue  # SIGKILL leaves the socket behind: nothing more to check
            if not plugin.allow_traceback:
                try:
                    assert_no_traceback(plugin.stderr_text())
                except AssertionError as exc:
                    problems.append(f"traceback on the plugin's stderr:\n{exc}")
            for directory in plugin.owned_dirs:
                left = leftovers(directory)
                if left:
                    problems.append(f"left behind in {directory}: {left}")
        for directory in [*self._dirs, self._secrets]:
            shutil.rmtree(directory, ignore_errors=True)
        return problems
