"""The plugin: ``Deployer.Deploy`` asks the host for the app's database password mid-call."""

from __future__ import annotations

import hashlib
from typing import NoReturn

import grpc

import rpcplugin

from . import deploy_pb2, deploy_rpc, plugin


class Deployer(deploy_rpc.DeployerServicer):
    """Implements ``deploy.v1.Deployer``."""

    async def deploy(self, request: deploy_pb2.DeployRequest, /) -> deploy_pb2.DeployReply:
        """Deploy deploys an app with the secrets it asks the host for."""
        name = f"{request.app}/db"
        try:
            # [callback]
            async with deploy_rpc.SecretsCallback.dial(request.secrets_id) as secrets:
                password = await secrets.get(deploy_pb2.SecretRequest(name=name))
            # [/callback]
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            await rpcplugin.current_call().abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"the host has no secret {name}"
            )
        fingerprint = hashlib.sha256(password.value.encode()).hexdigest()[:8]
        return deploy_pb2.DeployReply(
            summary=f"deployed {request.app} with db password sha256:{fingerprint}..."
        )


def main() -> NoReturn:
    """Serve the plugin until the host stops it (``python -m`` the package runs this)."""
    plugin.serve(deployer=Deployer())
