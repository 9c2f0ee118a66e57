"""Evidence for the recommendations in ``results/NOTES.md``: ``python -m bench.experiments``.

Each experiment runs a variant plugin (written to a scratch dir) against the unchanged one,
interleaved, and prints medians. Nothing here changes the runtime; the variants show what a
change would buy.

- ``exit``: our plugin as is vs the same plugin ending with ``os._exit`` after ``serve_async``
  has cleaned up (skipping interpreter finalization), closed by ``PluginConnection.close()``.
- ``tls``: the floor's AutoMTLS as is (``cryptography`` makes the certificate) vs an ``openssl
  req`` subprocess started before the imports, in parallel with them, and the host's PEM handed
  to grpcio unparsed: no ``cryptography`` import at all.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import os
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import prep
from .stats import median, rotate

FAST_EXIT = """\
import asyncio, os, sys
import rpcplugin
rpcplugin.guard_stdout()
sys.path.insert(0, {plugins!r})
import service
from rpcplugin.plugin import stdout_guard as process_guard
from rpcplugin.plugin.server import serve_async
process_guard.ignore_sigint()
code = asyncio.run(serve_async(
    rpcplugin.Handshake(service.COOKIE_KEY, service.COOKIE_VALUE), {{1: [service.handler()]}}
))
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""

OPENSSL_FLOOR = """\
import os, subprocess, sys, tempfile
_dir = tempfile.mkdtemp()
_gen = None
if os.environ.get("PLUGIN_CLIENT_CERT"):  # start first: it runs while we import
    _gen = subprocess.Popen(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-subj", "/O=HashiCorp/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement,keyCertSign",
         "-addext", "extendedKeyUsage=clientAuth,serverAuth",
         "-days", "10950", "-keyout", _dir + "/k.pem", "-out", _dir + "/c.pem"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
import asyncio, base64, signal, ssl
sys.path.insert(0, {plugins!r})
import grpc
import service


async def serve():
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((service.health_handler(), service.handler()))
    path = os.path.join(os.environ["PLUGIN_UNIX_SOCKET_DIR"], "o-%d.sock" % os.getpid())
    field = ""
    if _gen is not None:
        _gen.wait()
        key = open(_dir + "/k.pem", "rb").read()
        cert = open(_dir + "/c.pem", "rb").read()
        server.add_secure_port("unix:" + path, grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=os.environ["PLUGIN_CLIENT_CERT"].encode(),
            require_client_auth=True))
        field = base64.b64encode(ssl.PEM_cert_to_DER_cert(cert.decode())).decode().rstrip("=")
    else:
        server.add_insecure_port("unix:" + path)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    os.write(1, ("1|1|unix|%s|grpc|%s\\n" % (path, field)).encode())
    await stop.wait()
    await server.stop(None)


if os.environ.get(service.COOKIE_KEY) != service.COOKIE_VALUE:
    sys.exit("not launched by a host")
asyncio.run(serve())
"""


def _setup() -> tuple[Path, Any]:
    prep.bytecode_cache()
    pb_dir = prep.compile_messages()
    os.environ["BENCH_PB_DIR"] = str(pb_dir)
    sys.path.insert(0, str(pb_dir))
    scratch = Path(tempfile.mkdtemp(prefix="rpcplugin-experiment-"))
    os.environ["PLUGIN_UNIX_SOCKET_DIR"] = str(scratch)
    return scratch, importlib.import_module("conformance.v1.conformance_pb2")


async def _exit_experiment(rounds: int) -> None:
    import rpcplugin

    scratch, pb = _setup()
    variant = scratch / "fast_exit.py"
    variant.write_text(FAST_EXIT.format(plugins=str(prep.PLUGINS)))
    scripts = {"as is": str(prep.PLUGINS / "ours.py"), "os._exit": str(variant)}
    closes: dict[tuple[str, bool], list[float]] = {}
    for r in range(-1, rounds):
        for tls in (False, True):
            for name in rotate(list(scripts), r):
                conn = await rpcplugin.launch(
                    [sys.executable, scripts[name]],
                    handshake=rpcplugin.Handshake("RPCPLUGIN_BENCH", "bench-v1"),
                    versions=[1],
                    auto_mtls=tls,
                )
                await conn.channel.unary_unary(
                    "/conformance.v1.Conformance/Echo",
                    request_serializer=pb.EchoRequest.SerializeToString,
                    response_deserializer=pb.EchoReply.FromString,
                )(pb.EchoRequest(text="x"))
                await asyncio.sleep(0.1)
                started = time.perf_counter()
                await conn.close()
                if r >= 0:
                    closes.setdefault((name, tls), []).append(time.perf_counter() - started)
    for (name, tls), values in sorted(closes.items()):
        print(
            f"close → reaped, plugin {name:8} TLS {'on ' if tls else 'off'}: "
            f"median {median(values) * 1000:.1f} ms over {len(values)}"
        )
    shutil.rmtree(scratch, ignore_errors=True)


async def _tls_experiment(rounds: int) -> None:
    import grpc

    from .worker import BareSession, task_cpu

    scratch, pb = _setup()
    variant = scratch / "floor_openssl.py"
    variant.write_text(OPENSSL_FLOOR.format(plugins=str(prep.PLUGINS)))
    scripts = {"cryptography": str(prep.PLUGINS / "bare.py"), "openssl req": str(variant)}
    sys.path.insert(0, str(prep.PLUGINS))
    baretls: Any = importlib.import_module("baretls")
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(-1, rounds):
        for tls in ("off", "on"):
            for name in rotate(list(scripts), r):
                env = dict(os.environ, RPCPLUGIN_BENCH="bench-v1")
                started = time.perf_counter()
                identity = None
                if tls == "on":
                    identity = baretls.generate()
                    env["PLUGIN_CLIENT_CERT"] = identity.cert_pem.decode()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    scripts[name],
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    env=env,
                )
                assert proc.stdout is not None
                fields = (await proc.stdout.readline()).decode().strip().split("|")
                target = f"unix:{fields[3]}"
                if identity is None:
                    channel = grpc.aio.insecure_channel(target)
                else:
                    der = base64.b64decode(fields[5] + "=" * (-len(fields[5]) % 4))
                    credentials = grpc.ssl_channel_credentials(
                        root_certificates=ssl.DER_cert_to_PEM_cert(der).encode(),
                        private_key=identity.key_pem,
                        certificate_chain=identity.cert_pem,
                    )
                    channel = grpc.aio.secure_channel(
                        target,
                        credentials,
                        options=(("grpc.ssl_target_name_override", "localhost"),),
                    )
                session = BareSession(proc, channel, pb)
                await session.calls.echo(pb.EchoRequest(text="x"), timeout=30)
                elapsed = time.perf_counter() - started
                cpu = task_cpu(proc.pid)
                await session.close()
                if r >= 0:
                    found.setdefault((name, tls), []).append((elapsed, cpu))
    for (name, tls), values in sorted(found.items()):
        print(
            f"floor cold start, certificate by {name:12} TLS {tls:3}: "
            f"median {median([v[0] for v in values]) * 1000:.0f} ms, "
            f"plugin CPU {median([v[1] for v in values]) * 1000:.0f} ms"
        )
    shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.experiments", description=__doc__)
    parser.add_argument("which", choices=["exit", "tls"])
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    if args.which == "exit":
        asyncio.run(_exit_experiment(args.rounds))
    else:
        if shutil.which("openssl") is None:
            raise SystemExit("the tls experiment needs the openssl command")
        asyncio.run(_tls_experiment(args.rounds))


if __name__ == "__main__":
    main()
