"""go-plugin reattach configurations in their de-facto JSON shape (docs/protocol.md §8.4).

The shape Terraform's ``TF_REATTACH_PROVIDERS`` uses, and the one a plugin prints in debug mode::

    {"<name>": {"Protocol": "grpc", "ProtocolVersion": 6, "Pid": 4242, "Test": true,
                "Addr": {"Network": "unix", "String": "/tmp/plugin123"}}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._wire.transport import PORT_RANGE, Endpoint, tcp_port
from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class ReattachConfig:
    """Where a running plugin listens and how to treat it."""

    endpoint: Endpoint
    pid: int | None = None
    protocol_version: int | None = None
    test: bool = False
    protocol: str = "grpc"

    def to_json_object(self) -> dict[str, Any]:
        """This config as go-plugin's JSON object (the value under the plugin's name)."""
        obj: dict[str, Any] = {
            "Protocol": self.protocol,
            "Addr": {"Network": self.endpoint.network, "String": self.endpoint.address},
            "Pid": self.pid or 0,
            "Test": self.test,
        }
        if self.protocol_version is not None:
            obj["ProtocolVersion"] = self.protocol_version
        return obj


def parse_reattach(text: str | Mapping[str, Any], name: str | None = None) -> ReattachConfig:
    """Parse a reattach configuration.

    ``text`` is either the name→config map (``TF_REATTACH_PROVIDERS``) or one config object.
    With a map, ``name`` selects the entry; it may be omitted when the map has one entry.
    """
    what = "reattach configuration"
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(what, _short(text), f"valid JSON ({exc})") from None
        except RecursionError:
            raise ConfigError(what, _short(text), "JSON nested less deeply") from None
    else:
        data = dict(text)
    if not isinstance(data, dict):
        raise ConfigError(what, _short(str(text)), "a JSON object")
    if "Addr" not in data and _CONFIG_KEYS & data.keys():
        raise ConfigError(what + " Addr", None, 'an object like {"Network":"unix","String":"/p"}')
    if "Addr" not in data:
        if name is not None:
            if name not in data:
                raise ConfigError(what, name, "a name present in: " + ", ".join(sorted(data)))
            data = data[name]
        elif len(data) == 1:
            data = next(iter(data.values()))
        else:
            raise ConfigError(what, sorted(data), "pick one entry with name= (the map has several)")
    if not isinstance(data, dict):
        raise ConfigError(what, _short(str(data)), "an object with Protocol, Addr and Pid")
    addr = data.get("Addr")
    if not isinstance(addr, dict):
        raise ConfigError(what + " Addr", addr, 'an object like {"Network":"unix","String":"/p"}')
    network, address = addr.get("Network"), addr.get("String")
    if network not in ("unix", "tcp") or not isinstance(address, str) or not address:
        raise ConfigError(what + " Addr", addr, "Network 'unix' or 'tcp' and a non-empty String")
    if network == "tcp" and tcp_port(address) is None:
        raise ConfigError(
            what + " Addr", addr, f"a tcp String of the form host:port, the port {PORT_RANGE}"
        )
    protocol = data.get("Protocol", "netrpc")
    if protocol != "grpc":
        raise ConfigError(what + " Protocol", protocol, "'grpc' (netrpc is Go-only)")
    pid = data.get("Pid")
    version = data.get("ProtocolVersion")
    test = data.get("Test", False)
    # close() SIGKILLs this pid if the plugin does not exit: -1 would be every process we may
    # signal, another negative number a process group, a boolean pid 1
    if pid is not None and (type(pid) is not int or not 0 <= pid < 2**31):
        raise ConfigError(what + " Pid", pid, "a process id (a positive integer, or 0 for none)")
    if version is not None and type(version) is not int:
        raise ConfigError(what + " ProtocolVersion", version, "an integer")
    if not isinstance(test, bool):
        raise ConfigError(what + " Test", test, "true or false")
    return ReattachConfig(
        endpoint=Endpoint(network, address),
        pid=pid or None,
        protocol_version=version,
        test=test,
        protocol=protocol,
    )


_CONFIG_KEYS = frozenset({"Protocol", "ProtocolVersion", "Pid", "Test"})
"""Keys of one config: a dict with any of them is a config (missing its Addr), not a name map."""


def _short(text: str) -> str:
    return text if len(text) <= 120 else text[:120] + "..."
