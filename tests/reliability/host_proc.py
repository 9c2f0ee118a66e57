"""A host in a process of its own, for tests that SIGKILL the host or inspect everything it does.

``python host_proc.py CONFIG_JSON`` launches :mod:`relplugin` with ``rpcplugin.launch`` and
writes one JSON line to stdout::

    {"host_pid": P, "pid": PLUGIN_PID, "endpoint": "unix:/...", "tls": "grpc",
     "host_key": PEM or null, "plugin_key": PEM or null}

then waits for a line on stdin: ``calls N`` makes N Echo calls and a 10-message Count stream
(answering ``{"calls": N}``), ``close`` closes the plugin and exits 0 (after ``{"closed": RC}``).
EOF on stdin also closes.

CONFIG keys: ``transport`` (unix/tcp), ``variant`` (``kit.TLS_VARIANTS``), ``env`` (plugin
environment), ``log`` (``"all"``: every log record of every logger at level 1, including the
plugin's stderr lines, goes to stderr with all its attributes), ``expose_keys`` (report the
host's and the plugin's AutoMTLS private keys on stdout, a pipe, for tests that scan other
output for them), ``audit`` (a path: record every file this process opens for writing),
``cookie`` (the magic cookie's value; default ``reliability-v1``).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    import json

    CONFIG = json.loads(sys.argv[1])
    if CONFIG.get("audit"):
        import importlib

        importlib.import_module("audit").install_audit(CONFIG["audit"])

import asyncio
import json
import logging
from typing import Any

import grpc

import rpcplugin
from rpcplugin._wire import mtls

HERE = os.path.dirname(os.path.abspath(__file__))
ARGV = [sys.executable, os.path.join(HERE, "relplugin.py")]
HANDSHAKE = rpcplugin.Handshake("RELIABILITY_PLUGIN", "reliability-v1")


class EverythingFormatter(logging.Formatter):
    """Every attribute of the record, so that a scan of the output sees all that was logged."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{text} | {record.__dict__!r}"


async def main(config: dict[str, Any]) -> int:
    if config.get("log") == "all":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(EverythingFormatter("%(levelname)s %(name)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(1)
    host_keys: list[bytes] = []
    if config.get("expose_keys"):
        original = mtls.generate_certificate

        def generate(curve: str = "secp256r1") -> mtls.CertificateAndKey:
            identity = original(curve)
            host_keys.append(identity.key_pem)
            return identity

        mtls.generate_certificate = generate
    variant = config.get("variant", "grpc-tls")
    choices: dict[str, dict[str, Any]] = {
        "plaintext": {"auto_mtls": False},
        "grpc-tls": {"auto_mtls": True, "tls_backend": "grpc"},
        "openssl-tls": {"auto_mtls": True, "tls_backend": "openssl"},
    }
    kwargs = choices[variant]
    env = {
        "RPCPLUGIN_TRANSPORT": config.get("transport", "unix"),
        "PYTHONDONTWRITEBYTECODE": "1",
        **({"RPCPLUGIN_TLS_BACKEND": "openssl"} if variant == "openssl-tls" else {}),
        **config.get("env", {}),
    }
    cookie = config.get("cookie", HANDSHAKE.cookie_value)
    env["REL_COOKIE_EXPECTED"] = cookie
    handshake = rpcplugin.Handshake(HANDSHAKE.cookie_key, cookie)
    conn = await rpcplugin.launch(
        ARGV, handshake=handshake, versions=[1], env=env, start_timeout=30.0, **kwargs
    )
    plugin_key = None
    if config.get("expose_keys") and variant != "plaintext":
        echo: Any = conn.channel.unary_unary("/reliability.Probe/Key")
        plugin_key = (await echo(b"", timeout=10)).decode()
    report = {
        "host_pid": os.getpid(),
        "pid": conn.pid,
        "endpoint": str(conn.endpoint),
        "tls": conn.tls,
        "host_key": host_keys[-1].decode() if host_keys else None,
        "plugin_key": plugin_key,
    }
    print(json.dumps(report), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        words = line.split()
        if words[:1] == ["calls"]:
            call: Any = conn.channel.unary_unary("/reliability.Probe/Echo")
            count = int(words[1])
            for i in range(count):
                assert await call(f"call {i}".encode(), timeout=10) == f"call {i}".encode()
            counter: Any = conn.channel.unary_stream("/reliability.Probe/Count")
            got = [m async for m in counter(b"10 32", timeout=10)]
            assert len(got) == 10
            print(json.dumps({"calls": count}), flush=True)
            continue
        break
    await conn.close()
    print(json.dumps({"closed": conn.returncode}), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(CONFIG)))
    except grpc.aio.AioRpcError as exc:
        print(f"host_proc: call failed: {exc.code().name} {exc.details()}", file=sys.stderr)
        sys.exit(1)
