"""A handler sees the host's certificate, and it is the one the host presented: behind grpcio's
TLS and behind the OpenSSL relay, from a raw TLS client, from our Python host and from a real
go-plugin host (``rpcplugin.peer``, docs/security.md).

The conformance plugin's Info answers ``peer:FIELD`` names with the call's ``Peer``
(``tests/peers/pyplugin.py``), computed by the same ``peer_of`` that ``current_peer()`` uses.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from types import SimpleNamespace

import pytest
from gopeers import run_go_host
from peers.harness import COOKIE_KEY, Conformance, Launcher, dial, python_argv

import rpcplugin

FIELDS = ["peer:security", "peer:tls_backend", "peer:fingerprint", "peer:address"]
CURVES = {"grpc": "secp256r1", "openssl": "secp521r1"}
RELAY_NAME = {"grpc": "grpc", "openssl": "openssl-relay"}


def sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("backend", ["grpc", "openssl"])
async def test_handler_reads_the_certificate_a_tls_client_presented(
    launch: Launcher, pb: SimpleNamespace, backend: str, transport: str
) -> None:
    identity = launch.identity(CURVES[backend])
    plugin = launch(
        {
            "PLUGIN_CLIENT_CERT": identity.pem,
            "RPCPLUGIN_TRANSPORT": transport,
            "PLUGIN_PROTOCOL_VERSIONS": "1",
        }
    )
    assert plugin.hs is not None
    async with dial(plugin.hs, identity) as dialed:
        info = await Conformance(dialed.channel, pb).info(pb.v1.InfoRequest(env=FIELDS))
    env = dict(info.env)
    assert env["peer:security"] == "tls"
    assert env["peer:tls_backend"] == RELAY_NAME[backend]
    assert env["peer:fingerprint"] == sha256(identity.material.cert_der)
    if transport == "tcp":
        assert env["peer:address"].startswith("ipv4:127.0.0.1:"), env
    else:  # a unix client socket has no name: gRPC's spelling of that is "unix:"
        assert env["peer:address"] == "unix:", env


async def test_plaintext_calls_are_insecure_without_a_certificate(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch({"PLUGIN_PROTOCOL_VERSIONS": "1"})
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        info = await Conformance(dialed.channel, pb).info(pb.v1.InfoRequest(env=FIELDS))
    env = dict(info.env)
    assert (env["peer:security"], env["peer:tls_backend"]) == ("insecure", "None")
    assert env["peer:fingerprint"] == "None"


@pytest.mark.parametrize("plugin_backend", ["grpc", "openssl"])
async def test_our_python_host_certificate_reaches_the_handler(
    launch: Launcher, pb: SimpleNamespace, plugin_backend: str
) -> None:
    env = launch.env(
        {
            COOKIE_KEY: None,
            "PLUGIN_PROTOCOL_VERSIONS": None,
            "RPCPLUGIN_TLS_BACKEND": plugin_backend,
        }
    )
    async with rpcplugin.launch(
        python_argv(),
        handshake=rpcplugin.Handshake(COOKIE_KEY, "conformance-v1"),
        versions=[1],
        env=env,
        unix_socket_dir=env["TMPDIR"],
    ) as conn:
        asked = [*FIELDS, "PLUGIN_CLIENT_CERT"]
        info = await Conformance(conn.channel, pb).info(pb.v1.InfoRequest(env=asked))
    found = dict(info.env)
    announced = ssl.PEM_cert_to_DER_cert(found["PLUGIN_CLIENT_CERT"])
    assert found["peer:security"] == "tls"
    assert found["peer:tls_backend"] == RELAY_NAME[plugin_backend]
    assert found["peer:fingerprint"] == sha256(announced)


@pytest.mark.go
def test_a_go_plugin_host_certificate_reaches_the_handler(launch: Launcher) -> None:
    # go-plugin's P-521 certificate: the plugin serves it through the OpenSSL relay
    env = launch.env({COOKIE_KEY: None, "PLUGIN_PROTOCOL_VERSIONS": None})
    asked = ",".join([*FIELDS, "PLUGIN_CLIENT_CERT"])
    result = run_go_host(
        python_argv(),
        "-automtls",
        "-versions",
        "1",
        "-calls",
        "info",
        "-info-env",
        asked,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result
    found = result.one("info")["env"]
    announced = ssl.PEM_cert_to_DER_cert(found["PLUGIN_CLIENT_CERT"])
    assert found["peer:security"] == "tls", json.dumps(found)
    assert found["peer:tls_backend"] == "openssl-relay"
    assert found["peer:fingerprint"] == sha256(announced)
