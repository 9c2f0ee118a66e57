# Written by rpcplugin-gen 0.1.0 from deploy/v1/deploy.proto.
# This file is yours: rpcplugin-gen never overwrites it. It reports RPCs added to or removed
# from the protos since, and `rpcplugin-gen --add-stubs` appends stubs for new ones.
"""This plugin's implementation: a class per service, and ``main()`` to serve them."""

from __future__ import annotations

from typing import NoReturn

from rpcplugin.servicer import Unimplemented

from . import plugin
from .deploy.v1 import deploy_pb2, deploy_rpc


class Deployer(deploy_rpc.DeployerServicer):
    """Implements ``deploy.v1.Deployer``. Deployer is served by the plugin."""

    async def deploy(self, request: deploy_pb2.DeployRequest, /) -> deploy_pb2.DeployReply:
        """Deploy deploys an app, asking the host for the secrets it needs."""
        raise Unimplemented("/deploy.v1.Deployer/Deploy")  # TODO: implement


def main() -> NoReturn:
    """Serve the plugin until the host stops it (``python -m`` the package runs this)."""
    plugin.serve(deployer=Deployer())
