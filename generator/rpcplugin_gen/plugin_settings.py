"""Handshake settings of each service: magic cookie, app protocol version, plugin name.

Precedence, highest first: the generator's flags (``--cookie-key`` …, or protoc plugin options;
for the version, a ``--versions`` entry naming the service, its proto file or its package, then
``--versions``/``--protocol-version`` for every service),
the service's ``option (rpcplugin.options.service)``, the file's
``option (rpcplugin.options.plugin)``, then defaults:

- version: the number in a ``vN`` or ``…pluginN`` last package component (``kv.v2`` → 2,
  ``tfplugin6`` → 6), else 1;
- cookie: derived from the package without that version component (``kv.v1`` and ``kv.v2`` →
  ``kv``), so every major version of a service family, and every service of one package, share
  the cookie. Key ``KV_PLUGIN_COOKIE``, value a SHA-256 hex digest: stable, and distinct per
  family. (Deriving it from the service name instead would give two services in one package two
  cookies, and one plugin process has exactly one.)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2

# Imported before any descriptor is parsed, so the options extensions are known to the parser.
from rpcplugin.protos import rpcplugin_options_pb2 as ext

from .errors import GenerationError, Location

_VERSION_SUFFIX = re.compile(r"^(?:v|.*plugin)(\d+)$")


@dataclass(frozen=True, slots=True)
class Overrides:
    """Settings given on the command line (or as protoc plugin options); ``None`` = not given."""

    cookie_key: str | None = None
    cookie_value: str | None = None
    protocol_version: int | None = None
    name: str | None = None
    versions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """``--versions``: app protocol versions by target (a service's full name, a proto file's
    name or a proto package; ``""``: every service), each served as all of them."""


def parse_versions(entries: Sequence[str], *, separator: str = ",") -> dict[str, tuple[int, ...]]:
    """``["5,6", "kv.v1=1,2"]`` → ``{"": (5, 6), "kv.v1": (1, 2)}``; errors name the entry."""
    result: dict[str, tuple[int, ...]] = {}
    for entry in entries:
        target, _, numbers = entry.rpartition("=")
        target = target.strip()
        try:
            versions = tuple(sorted({int(n) for n in numbers.split(separator)}))
        except ValueError:
            versions = ()
        if not versions or min(versions) < 1:
            raise GenerationError(
                f"--versions {entry!r}: give [TARGET=]V{separator}V... with versions ≥ 1 "
                f"(TARGET: a service, proto file or package; none: every service)"
            )
        if target in result:
            what = repr(target) if target else "every service"
            raise GenerationError(f"--versions names {what} twice; give it once")
        result[target] = versions
    return result


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """The resolved handshake of one service."""

    cookie_key: str
    cookie_value: str
    name: str | None
    versions: tuple[int, ...]
    """Every app protocol version the service is served as, lowest first (at least one)."""
    host_provided: bool = False
    """``host_provided: true`` in the service's option: a callback the host serves through the
    broker (``XCallback``), not part of the plugin's ``serve()``."""

    @property
    def version(self) -> int:
        """The highest of :attr:`versions`: the binding's ``version``."""
        return max(self.versions)


def package_version(package: str) -> int | None:
    """``kv.v2`` → 2, ``tfplugin6`` → 6, ``kv`` → None."""
    match = _VERSION_SUFFIX.match(package.rsplit(".", 1)[-1]) if package else None
    return int(match[1]) if match else None


def family(package: str, service: str) -> str:
    """The package without its version: ``kv.v1`` → ``kv``, ``tfplugin6`` → ``tfplugin``."""
    if not package:
        return service
    head, _, last = package.rpartition(".")
    match = _VERSION_SUFFIX.match(last)
    if not match:
        return package
    if last.startswith("v") and last[1:].isdigit():
        return head or service
    return ".".join(filter(None, [head, last[: -len(match[1])]]))


def default_cookie(package: str, service: str) -> tuple[str, str]:
    """The derived cookie key and value of a service family."""
    stem = family(package, service)
    word = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_").upper() or "RPCPLUGIN"
    key = f"{word}_COOKIE" if word.endswith("PLUGIN") else f"{word}_PLUGIN_COOKIE"
    value = hashlib.sha256(f"rpcplugin:{stem}".encode()).hexdigest()
    return key, value


def _file_options(file: descriptor_pb2.FileDescriptorProto) -> ext.PluginOptions | None:
    options = file.options
    return options.Extensions[ext.plugin] if options.HasExtension(ext.plugin) else None


def _service_options(
    service: descriptor_pb2.ServiceDescriptorProto,
) -> ext.PluginOptions | None:
    options = service.options
    return options.Extensions[ext.service] if options.HasExtension(ext.service) else None


def resolve(
    file: descriptor_pb2.FileDescriptorProto,
    service: descriptor_pb2.ServiceDescriptorProto,
    overrides: Overrides,
    location: Location,
) -> PluginSettings:
    """The settings of ``service`` declared in ``file``."""
    layers = [o for o in (_service_options(service), _file_options(file)) if o is not None]
    key, value = default_cookie(file.package, service.name)
    version = package_version(file.package) or 1
    name: str | None = None
    for layer in reversed(layers):  # file first, then service on top
        key = layer.cookie_key or key
        value = layer.cookie_value or value
        if layer.HasField("protocol_version"):
            version = layer.protocol_version
        name = layer.name or name
    key = overrides.cookie_key or key
    value = overrides.cookie_value or value
    version = overrides.protocol_version if overrides.protocol_version is not None else version
    full_name = f"{file.package}.{service.name}" if file.package else service.name
    versions: tuple[int, ...] = (version,)
    for target in (full_name, file.name, file.package, ""):
        if target in overrides.versions:
            versions = overrides.versions[target]
            break
    name = overrides.name or name
    file_options = _file_options(file)
    if file_options is not None and file_options.host_provided:
        raise GenerationError(
            "host_provided is a per-service option: set it in the service's "
            "option (rpcplugin.options.service), not the file's",
            location,
        )
    service_options = _service_options(service)
    host_provided = service_options is not None and service_options.host_provided
    if min(versions) < 1:
        raise GenerationError(f"service {service.name}: protocol version must be ≥ 1", location)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise GenerationError(
            f"service {service.name}: cookie key {key!r} is not a valid environment variable name",
            location,
        )
    return PluginSettings(
        cookie_key=key,
        cookie_value=value,
        name=name,
        versions=versions,
        host_provided=host_provided,
    )


def check_targets(
    overrides: Overrides, files: Sequence[descriptor_pb2.FileDescriptorProto]
) -> None:
    """``--versions`` for every service and ``--protocol-version`` are not both given, and every
    ``--versions`` target names a service, proto file or package being generated."""
    if "" in overrides.versions and overrides.protocol_version is not None:
        raise GenerationError("give --versions V,V... or --protocol-version, not both")
    known: set[str] = set()
    for f in files:
        known |= {f.name, f.package}
        known |= {f"{f.package}.{s.name}" if f.package else s.name for s in f.service}
    for target, versions in overrides.versions.items():
        if target and target not in known:
            listed = ", ".join(sorted(k for k in known if k))
            raise GenerationError(
                f"--versions {target}={','.join(map(str, versions))}: no service, proto file or "
                f"package of that name is generated (known: {listed})"
            )
