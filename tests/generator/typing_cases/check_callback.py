"""Host and plugin code using a host-provided service (``deploy.v1.Secrets``): type-checked by
tests/generator/test_callback.py against the generated ``deploy`` package."""

from __future__ import annotations

from collections.abc import AsyncIterator

from deploy.deploy.v1 import deploy_pb2, deploy_rpc

import rpcplugin
from rpcplugin.services.broker import BrokeredServer


class HostSecrets(deploy_rpc.SecretsServicer):
    async def get(self, request: deploy_pb2.SecretRequest, /) -> deploy_pb2.Secret:
        return deploy_pb2.Secret(value="s3cr3t")

    async def rotations(
        self, request: deploy_pb2.SecretRequest, /
    ) -> AsyncIterator[deploy_pb2.Secret]:
        yield deploy_pb2.Secret(value="v2")


async def host(conn: rpcplugin.PluginConnection) -> str:
    server: BrokeredServer = await deploy_rpc.SecretsCallback.serve(conn.broker, HostSecrets())
    deployer = deploy_rpc.DeployerPlugin.client(conn)
    reply = await deployer.deploy(deploy_pb2.DeployRequest(app="web", secrets_id=server.id))
    await server.close()
    return reply.summary


class PluginDeployer(deploy_rpc.DeployerServicer):
    async def deploy(self, request: deploy_pb2.DeployRequest, /) -> deploy_pb2.DeployReply:
        async with deploy_rpc.SecretsCallback.dial(request.secrets_id) as secrets:
            secret = await secrets.get(deploy_pb2.SecretRequest(name="db"))
            values = [s.value async for s in secrets.rotations(deploy_pb2.SecretRequest())]
        return deploy_pb2.DeployReply(summary=f"{secret.value} {values}")


async def wrong(conn: rpcplugin.PluginConnection) -> None:
    await deploy_rpc.SecretsCallback.serve(conn.broker, PluginDeployer())  # E: arg-type
    async with deploy_rpc.SecretsCallback.dial(1) as secrets:
        await secrets.get(deploy_pb2.DeployRequest())  # E: arg-type
