"""The host: serves ``Secrets`` to the plugin through the broker, then calls ``Deploy``.

Run it next to the generated ``deploy`` package (README.md shows the commands)::

    PYTHONPATH=build/callback python examples/callback/host.py [--plaintext]
"""

from __future__ import annotations

import asyncio
import sys
import time

import grpc
from deploy import deploy_pb2, deploy_rpc, plugin

import rpcplugin

SECRETS = {"shop/db": "correct horse battery staple"}


class HostSecrets(deploy_rpc.SecretsServicer):
    """The host's secrets, served to the plugin on request; remembers what was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def get(self, request: deploy_pb2.SecretRequest, /) -> deploy_pb2.Secret:
        self.asked.append(request.name)
        if request.name not in SECRETS:
            await rpcplugin.current_call().abort(grpc.StatusCode.NOT_FOUND, request.name)
        return deploy_pb2.Secret(value=SECRETS[request.name])


async def main(auto_mtls: bool = True) -> None:
    command = [sys.executable, "-m", "deploy"]
    async with rpcplugin.launch(
        command, handshake=plugin.HANDSHAKE, versions=plugin.VERSIONS, auto_mtls=auto_mtls
    ) as conn:
        print(f"launched: python -m deploy, app protocol version {conn.version}, TLS {conn.tls}")
        for line in await deploy_with_secrets(conn):
            print(line)


async def deploy_with_secrets(conn: rpcplugin.PluginConnection) -> list[str]:
    """Serve ``Secrets`` through the connection's broker and deploy twice (one app whose secret
    the host has, one it lacks); returns what happened, one line each. ``conn`` may be a
    launched plugin or one served in process (``rpcplugin.testing``)."""
    deployer = deploy_rpc.DeployerPlugin.client(conn)
    secrets = HostSecrets()
    # [serve]
    async with await deploy_rpc.SecretsCallback.serve(conn.broker, secrets) as server:
        request = deploy_pb2.DeployRequest(app="shop", secrets_id=server.id)
        reply = await deployer.deploy(request)  # the plugin calls secrets.get() meanwhile
        # [/serve]
        started = time.perf_counter()
        await deployer.deploy(request)
        elapsed = (time.perf_counter() - started) * 1000
        failure = "no error"
        try:
            await deployer.deploy(deploy_pb2.DeployRequest(app="blog", secrets_id=server.id))
        except grpc.aio.AioRpcError as exc:
            failure = f"{exc.code().name}: {exc.details()}"
    return [
        f"Secrets served through the broker as id {server.id}, TLS {server.tls}",
        f"Deploy shop -> {reply.summary}",
        f"Deploy blog -> {failure}",
        f"the plugin asked the host for: {', '.join(secrets.asked)}",
        f"Deploy with its callback took {elapsed:.0f} ms",
    ]


if __name__ == "__main__":
    asyncio.run(main(auto_mtls="--plaintext" not in sys.argv))
