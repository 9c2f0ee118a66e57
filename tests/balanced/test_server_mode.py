"""Server mode (``RPCPLUGIN_LISTEN``): a plugin as a network service with operator certificates."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import wrappers_pb2
from workers import WORKER, make_pki, start_worker, stop_all

import rpcplugin
from rpcplugin.services import health

Str = wrappers_pb2.StringValue


async def who(channel: grpc.aio.Channel, text: str = "") -> str:
    method = channel.unary_unary(
        "/scaletest.Worker/Who",
        request_serializer=Str.SerializeToString,
        response_deserializer=Str.FromString,
    )
    reply = await method(Str(value=text), timeout=10)
    assert isinstance(reply, Str)
    return reply.value


async def test_plaintext_on_loopback_serves_health_and_the_plugin_only() -> None:
    worker = await start_worker("solo")
    try:
        async with rpcplugin.connect(worker.address) as conn:
            assert await who(conn.channel) == "solo"
            assert await health.check(conn.channel) == health.SERVING
            for path in ("/plugin.GRPCController/Shutdown", "/plugin.GRPCStdio/StreamStdio"):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await conn.channel.unary_unary(path)(b"", timeout=5)
                assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        started = time.monotonic()
        worker.terminate()  # SIGTERM: drain (0.5 s), then stop
        assert await asyncio.wait_for(worker.process.wait(), 10) == 0
        assert 0.4 < time.monotonic() - started < 5
    finally:
        await stop_all([worker])


async def test_mutual_tls_with_operator_certificates(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    worker = await start_worker("tls", pki.server_env())
    try:
        files = rpcplugin.TLSFiles(
            ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key)
        )
        async with rpcplugin.connect(worker.address, tls=files) as conn:
            assert conn.tls == "grpc"
            assert await who(conn.channel) == "tls"
        # no client certificate: refused
        with pytest.raises(rpcplugin.PluginError):
            await rpcplugin.connect(worker.address, tls=rpcplugin.TLSFiles(ca_file=str(pki.ca)))
        # a server the client's CA did not sign: refused
        (tmp_path / "other").mkdir()
        other = make_pki(tmp_path / "other")
        bad = rpcplugin.TLSFiles(
            ca_file=str(other.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key)
        )
        with pytest.raises(rpcplugin.PluginError):
            await rpcplugin.connect(worker.address, tls=bad)
    finally:
        await stop_all([worker])


def test_beyond_loopback_without_tls_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, str(WORKER)],
        env={**os.environ, "RPCPLUGIN_LISTEN": "0.0.0.0:0"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "RPCPLUGIN_LISTEN='0.0.0.0:0' is invalid: serving beyond loopback needs TLS" in (
        result.stderr
    )
