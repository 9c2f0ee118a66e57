# Written by rpcplugin-gen 0.1.0 from acme/inventory/v1/inventory.proto.
# This file is yours: rpcplugin-gen never overwrites it. It reports RPCs added to or removed
# from the protos since, and `rpcplugin-gen --add-stubs` appends stubs for new ones.
"""This plugin's implementation: a class per service, and ``main()`` to serve them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn

from rpcplugin.servicer import Unimplemented

from . import plugin
from .acme.inventory.v1 import inventory_pb2, inventory_rpc


class InventoryManagementService(inventory_rpc.InventoryManagementServiceServicer):
    """Implements ``acme.inventory.v1.InventoryManagementService``. InventoryManagementService
    keeps the stock of every warehouse, and this comment is long enough to need reflowing.
    """

    async def get_inventory_item_with_details(
        self, request: inventory_pb2.ListInventoryItemsRequest, /
    ) -> inventory_pb2.InventoryItemWithAllDetails:
        """GetInventoryItemWithDetails returns one item."""
        raise Unimplemented(
            "/acme.inventory.v1.InventoryManagementService/GetInventoryItemWithDetails"
        )  # TODO: implement

    async def list_inventory_items_with_all_details(
        self, request: inventory_pb2.ListInventoryItemsRequest, /
    ) -> AsyncIterator[inventory_pb2.InventoryItemWithAllDetails]:
        raise Unimplemented(
            "/acme.inventory.v1.InventoryManagementService/ListInventoryItemsWithAllDetails"
        )  # TODO: implement
        yield  # never reached; makes this an async generator

    async def upload_inventory_items_in_bulk(
        self, requests: AsyncIterator[inventory_pb2.ListInventoryItemsRequest], /
    ) -> inventory_pb2.InventoryItemWithAllDetails:
        raise Unimplemented(
            "/acme.inventory.v1.InventoryManagementService/UploadInventoryItemsInBulk"
        )  # TODO: implement

    async def synchronize_inventory_items(
        self, requests: AsyncIterator[inventory_pb2.ListInventoryItemsRequest], /
    ) -> AsyncIterator[inventory_pb2.InventoryItemWithAllDetails]:
        raise Unimplemented(
            "/acme.inventory.v1.InventoryManagementService/SynchronizeInventoryItems"
        )  # TODO: implement
        yield  # never reached; makes this an async generator


def main() -> NoReturn:
    """Serve the plugin until the host stops it (``python -m`` the package runs this)."""
    plugin.serve(inventory_management_service=InventoryManagementService())
