# The greeter plugin's implementation: rpcplugin-gen wrote the skeleton of this file once (as
# greeter/servicer.py) and the bodies were filled in by hand. The example copies it into the
# generated package before generating; regeneration leaves it alone.
"""One plugin, two protocol versions: a servicer per version, both served by one process.

The host and the plugin settle on one version when the plugin starts (the highest both speak);
only that version's service is served on the connection.
"""

from __future__ import annotations

from typing import NoReturn

import grpc

from rpcplugin.servicer import current_call

from . import plugin
from .v1 import greeter_pb2 as v1_greeter_pb2
from .v1 import greeter_rpc as v1_greeter_rpc
from .v2 import greeter_pb2 as v2_greeter_pb2
from .v2 import greeter_rpc as v2_greeter_rpc

HELLO = {"en": "Hello", "fr": "Bonjour", "de": "Hallo"}


class GreeterV1(v1_greeter_rpc.GreeterServicer):
    """Implements ``greeter.v1.Greeter``. Greeter greets people."""

    async def greet(self, request: v1_greeter_pb2.GreetRequest, /) -> v1_greeter_pb2.GreetReply:
        """Greet says hello to name."""
        return v1_greeter_pb2.GreetReply(message=f"{HELLO['en']}, {request.name}!")


class GreeterV2(v2_greeter_rpc.GreeterServicer):
    """Implements ``greeter.v2.Greeter``. Greeter greets people, in their language."""

    async def greet(self, request: v2_greeter_pb2.GreetRequest, /) -> v2_greeter_pb2.GreetReply:
        """Greet says hello to person in language."""
        hello = HELLO.get(request.language)
        if hello is None:
            message = f"no greeting in language {request.language!r}"
            await current_call().abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        person = request.person
        return v2_greeter_pb2.GreetReply(
            message=f"{hello}, {person.given_name} {person.family_name}!"
        )


def main() -> NoReturn:
    """Serve the plugin until the host stops it (``python -m`` the package runs this)."""
    plugin.serve(greeter_v1=GreeterV1(), greeter_v2=GreeterV2())
