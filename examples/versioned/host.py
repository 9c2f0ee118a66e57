"""Hosts asking the greeter plugin for protocol version 1, 2, or either.

A host offers the versions it speaks (``versions=``); the plugin answers with the highest one it
also serves, and the connection carries only that version's service. The host then picks the
generated client for ``conn.version``. Run it next to a generated ``greeter`` package::

    python host.py            # with the directory holding greeter/ on PYTHONPATH
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from greeter import plugin
from greeter.v1 import greeter_pb2 as v1_pb2
from greeter.v1 import greeter_rpc as v1_rpc
from greeter.v2 import greeter_pb2 as v2_pb2
from greeter.v2 import greeter_rpc as v2_rpc

import rpcplugin

OFFERS: tuple[tuple[int, ...], ...] = ((1,), (1, 2), (2,), (3,))
"""What the example's hosts ask for: an old host, a new host that speaks both, a new host that
speaks only version 2, and a host from the future."""


# [pick-client]
async def greet(conn: rpcplugin.PluginConnection, given_name: str, family_name: str) -> str:
    """Greet someone in whichever protocol version the host and the plugin settled on."""
    match conn.version:
        case 1:
            v1 = v1_rpc.GreeterClient(conn, timeout=10)
            reply = await v1.greet(v1_pb2.GreetRequest(name=given_name))
            return reply.message
        case 2:
            v2 = v2_rpc.GreeterClient(conn, timeout=10)
            person = v2_pb2.Person(given_name=given_name, family_name=family_name)
            reply2 = await v2.greet(v2_pb2.GreetRequest(person=person, language="fr"))
            return reply2.message
        case other:  # cannot happen: launch() only accepts a version the host offered
            raise AssertionError(f"no client for version {other}")


# [/pick-client]


@dataclass
class Outcome:
    """What one host got."""

    offered: tuple[int, ...]
    version: int | None = None
    greeting: str = ""
    error: str = ""
    returncode: int | None = None


async def run(offered: Sequence[int], package_parent: str) -> Outcome:
    """Launch ``python -m greeter`` offering ``offered`` and greet Ada Lovelace once."""
    outcome = Outcome(offered=tuple(offered))
    env = {"PYTHONPATH": package_parent + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        async with rpcplugin.launch(
            [sys.executable, "-m", "greeter"],
            handshake=plugin.HANDSHAKE,
            versions=offered,
            env=env,
        ) as conn:
            outcome.version = conn.version
            outcome.greeting = await greet(conn, "Ada", "Lovelace")
        outcome.returncode = conn.returncode
    except rpcplugin.VersionMismatchError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


def show(outcome: Outcome) -> str:
    """One line per host."""
    offered = f"host offers {list(outcome.offered)}"
    if outcome.error:
        return f"{offered:<22} -> {outcome.error}"
    return f"{offered:<22} -> version {outcome.version}: {outcome.greeting}"


async def main(package_parent: str) -> None:
    """One host per entry of ``OFFERS``, each launching its own plugin process."""
    print(f"the plugin serves versions {list(plugin.VERSIONS)}")
    for offered in OFFERS:
        print(show(await run(offered, package_parent)))


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(plugin.__file__))
    asyncio.run(main(os.path.dirname(here)))
