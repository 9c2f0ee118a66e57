"""The handshakes of the well-known go-plugin hosts: Terraform, Vault and Nomad.

One table for every tool that needs them (the ``rpcplugin`` CLI's ``--host``, the generator's
presets). The values are the ones each host publishes (docs/compatibility.md)::

    from rpcplugin.presets import PRESETS

    terraform = PRESETS["terraform"]
    rpcplugin.launch(cmd, handshake=terraform.handshake, versions=terraform.versions)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .handshake import Handshake

__all__ = ["PRESETS", "HostPreset", "preset"]


@dataclass(frozen=True, slots=True)
class HostPreset:
    """A host's magic cookie and the app protocol versions its plugins speak."""

    name: str
    """The preset's name: ``terraform``, ``vault`` or ``nomad``."""
    description: str
    """Which plugins of that host this is for."""
    handshake: Handshake
    """The host's magic cookie."""
    versions: tuple[int, ...]
    """The app protocol versions the host offers, lowest first."""


PRESETS: Mapping[str, HostPreset] = MappingProxyType(
    {
        "terraform": HostPreset(
            "terraform",
            "Terraform providers (tfplugin5, tfplugin6)",
            Handshake(
                "TF_PLUGIN_MAGIC_COOKIE",
                "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
            ),
            (5, 6),
        ),
        "vault": HostPreset(
            "vault",
            "Vault secrets and auth backends",
            Handshake("VAULT_BACKEND_PLUGIN", "6669da05-b1c8-4f49-97d9-c8e5bed98e20"),
            (3, 4, 5),
        ),
        "nomad": HostPreset(
            "nomad",
            "Nomad task drivers and device plugins",
            Handshake(
                "NOMAD_PLUGIN_MAGIC_COOKIE",
                "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255",
            ),
            (1,),
        ),
    }
)
"""Every known host by name."""


def preset(name: str) -> HostPreset:
    """The preset called ``name`` (case-insensitive); :class:`ConfigError` names the known ones."""
    found = PRESETS.get(name.lower())
    if found is None:
        from .errors import ConfigError

        raise ConfigError("host preset", name, "one of " + ", ".join(sorted(PRESETS)))
    return found
