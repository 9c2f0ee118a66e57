"""The broker between real processes: a Python host (``rpcplugin.launch``) and a go-plugin 1.0.1
host (``tests/go/src/brokerhost``) with the Python plugin ``broker_plugin.py``, both
directions, with AutoMTLS (grpcio's TLS and the OpenSSL relay) and in plaintext (P18, P23).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from broker_plugin import HANDSHAKE, Str, call_echo, echo_handler
from google.protobuf import empty_pb2, wrappers_pb2
from gopeers import PROTO_DIR, build_go_program

import rpcplugin

PLUGIN = [sys.executable, str(Path(__file__).resolve().parent / "broker_plugin.py")]
TESTS = Path(__file__).resolve().parents[1]


def control(conn: rpcplugin.PluginConnection, method: str, response: Any = Str) -> Any:
    request = wrappers_pb2.UInt32Value if method == "DialMissing" else Str
    if method == "NextId":
        request, response = empty_pb2.Empty, wrappers_pb2.UInt32Value
    return conn.channel.unary_unary(
        f"/brokertest.Control/{method}",
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )


MODES = {
    "plaintext": {"auto_mtls": False},
    "automtls-grpc": {"auto_mtls": True, "tls_backend": "grpc"},
    "automtls-openssl": {"auto_mtls": True, "tls_backend": "openssl"},
}


@pytest.mark.parametrize("mode", list(MODES))
async def test_python_host_and_python_plugin_both_ways(tmp_path: Path, mode: str) -> None:
    options: dict[str, Any] = dict(MODES[mode])
    backend = options.get("tls_backend", "auto")
    env = {"TMPDIR": str(tmp_path), "RPCPLUGIN_TLS_BACKEND": backend}
    async with rpcplugin.launch(
        PLUGIN, handshake=HANDSHAKE, versions=[1], env=env, **options
    ) as conn:
        tls = "off" if not options["auto_mtls"] else backend
        # the plugin serves, the host dials
        offer = (await control(conn, "Offer")(Str(value="p:"))).value.split()
        assert offer[0] == "1" and offer[1] == "unix" and offer[3] == tls
        # P11: the plugin's brokered socket is in PLUGIN_UNIX_SOCKET_DIR (the host's private dir)
        assert os.path.dirname(offer[2]) == os.path.dirname(conn.endpoint.address)
        async with await conn.broker.dial(int(offer[0])) as brokered:
            assert brokered.tls == tls
            assert await call_echo(brokered.channel, "hi") == "p:hi"
        # the host serves, the plugin dials mid-call (a callback)
        server = await conn.broker.accept(conn.broker.next_id(), echo_handler("h:"))
        assert server.tls == tls
        reply = (await control(conn, "CallHost")(Str(value=f"{server.id} yo"))).value.split()
        assert reply[:2] == ["h:yo", tls]
        # IDs are per side: the plugin's counter is at 2 after one accept
        assert (await control(conn, "NextId")(empty_pb2.Empty())).value == 2
        missing = (await control(conn, "DialMissing")(wrappers_pb2.UInt32Value(value=99))).value
        assert missing.startswith("BrokerDialTimeout: ") and "id 99 within 0.3 s" in missing
    assert list(tmp_path.iterdir()) == [], "brokered sockets or relay dirs left behind"


async def test_dial_latency(tmp_path: Path) -> None:
    """Time from ``dial()`` to the first reply, host → plugin, with AutoMTLS (reported)."""
    async with rpcplugin.launch(PLUGIN, handshake=HANDSHAKE, versions=[1]) as conn:
        samples = []
        for _ in range(10):
            offer = (await control(conn, "Offer")(Str(value=""))).value.split()
            started = time.monotonic()
            async with await conn.broker.dial(int(offer[0])) as brokered:
                await call_echo(brokered.channel, "x")
                samples.append((time.monotonic() - started) * 1000)
        back = []
        for _ in range(10):
            server = await conn.broker.accept(conn.broker.next_id(), echo_handler(""))
            reply = (await control(conn, "CallHost")(Str(value=f"{server.id} x"))).value
            back.append(float(reply.split()[-1]))
            await server.close()
    print(
        f"broker dial → first reply, AutoMTLS ({conn.tls}): host→plugin median "
        f"{statistics.median(samples):.1f} ms (max {max(samples):.1f}); plugin→host median "
        f"{statistics.median(back):.1f} ms (max {max(back):.1f})"
    )
    assert statistics.median(samples) < 500


async def test_host_close_stops_brokered_servers(tmp_path: Path) -> None:
    conn = await rpcplugin.launch(PLUGIN, handshake=HANDSHAKE, versions=[1])
    server = await conn.broker.accept(conn.broker.next_id(), echo_handler(""))
    address = server.endpoint.address
    assert os.path.exists(address)
    await conn.close()
    assert not os.path.exists(address)
    with pytest.raises(rpcplugin.PluginError, match="closed"):
        await conn.broker.accept(9, echo_handler(""))


# -- a go-plugin 1.0.1 host --------------------------------------------------------------------


def brokerhost() -> Path:
    return build_go_program(
        TESTS / "go" / "src" / "brokerhost",
        ["brokertest/v1/brokertest.proto"],
        proto_path=[PROTO_DIR],
    )


@pytest.mark.go
@pytest.mark.parametrize("auto_mtls", [True, False], ids=["automtls", "plaintext"])
def test_go_host_and_python_plugin_both_ways(tmp_path: Path, auto_mtls: bool) -> None:
    result = subprocess.run(
        [str(brokerhost()), f"-automtls={str(auto_mtls).lower()}", "--", *PLUGIN],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdin=subprocess.DEVNULL,
        timeout=90,
    )
    events = {e["event"]: e for e in map(json.loads, result.stdout.splitlines())}
    assert result.returncode == 0 and "error" not in events, result.stdout + result.stderr[-3000:]
    # go-plugin's AcceptAndServe + the plugin's dial: the host's P-521 certificate is verified
    # through the OpenSSL relay
    reply, plugin_tls, plugin_ms = events["plugin_dials_host"]["reply"].split()
    assert reply == "go:hello"
    assert plugin_tls == ("openssl" if auto_mtls else "off")
    # the plugin's accept + go-plugin's Dial: the plugin requires the host's client certificate
    dialled = events["host_dials_plugin"]
    assert dialled["reply"] == "py:hi"
    assert dialled["tls"] == ("TLS 1.3 localhost" if auto_mtls else "off")
    assert dialled["offer"].split()[3] == ("openssl" if auto_mtls else "off")
    assert events["killed"]["graceful"], result.stderr[-3000:]
    print(
        f"go-plugin 1.0.1 host ({'AutoMTLS' if auto_mtls else 'plaintext'}): plugin dial → "
        f"reply {float(plugin_ms):.1f} ms; host Offer+Dial → reply {dialled['ms']:.1f} ms"
    )
    assert list(tmp_path.iterdir()) == [], "sockets left behind"
