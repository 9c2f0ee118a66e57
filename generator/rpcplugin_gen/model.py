"""What the templates render: proto files, services and RPCs with every Python name decided.

:func:`build` indexes a ``CodeGeneratorRequest`` once (types by full name, comments and spans by
source path) and produces :class:`ProtoFile` models for the files to generate. Names are checked
for clashes here, before anything is rendered: a clash is a :class:`GenerationError` naming both
proto locations, never broken code.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from . import naming, plugin_settings
from .compiler import is_local, python_module_path
from .errors import GenerationError, Location

# Field numbers of FileDescriptorProto / ServiceDescriptorProto used in SourceCodeInfo paths.
_SERVICE = descriptor_pb2.FileDescriptorProto.SERVICE_FIELD_NUMBER
_METHOD = descriptor_pb2.ServiceDescriptorProto.METHOD_FIELD_NUMBER

UNARY = "UNARY"
SERVER_STREAM = "SERVER_STREAM"
CLIENT_STREAM = "CLIENT_STREAM"
BIDI_STREAM = "BIDI_STREAM"
"""Call kinds; the names of ``rpcplugin.calls.RpcKind`` members (a test keeps them in step)."""

EMPTY = "google.protobuf.Empty"

RPC_MODULE_IMPORTS = (
    "_builtins",
    "_typing",
    "_AsyncIterable",
    "_AsyncIterator",
    "_Awaitable",
    "_Iterable",
    "_Iterator",
    "_calls",
    "_servicer",
    "__all__",
)
"""Module-level names every generated ``_rpc`` module may define besides per-service ones."""


@dataclass(frozen=True, slots=True)
class Module:
    """A Python module a generated file imports: ``from <package> import <name> as <alias>``."""

    package: str
    """Dotted package; for generated protos it is relative to the output package root."""
    name: str
    local: bool
    """In the output package (imported relatively) or external (``google.protobuf``, runtime)."""

    @property
    def path(self) -> tuple[str, ...]:
        return (*filter(None, self.package.split(".")), self.name)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message type: the ``_pb2`` module that defines it and its name inside (``Item.Attr``)."""

    module: Module
    qualname: str
    full_name: str


@dataclass(frozen=True, slots=True)
class Rpc:
    name: str
    """The proto name, ``GetFoo``."""
    attr: str
    """The Python method name, ``get_foo``."""
    path: str
    """``/package.Service/Method``."""
    kind: str
    request: MessageRef
    response: MessageRef
    doc: str
    location: Location

    @property
    def client_streaming(self) -> bool:
        return self.kind in (CLIENT_STREAM, BIDI_STREAM)

    @property
    def server_streaming(self) -> bool:
        return self.kind in (SERVER_STREAM, BIDI_STREAM)

    @property
    def empty_request(self) -> bool:
        return self.request.full_name == EMPTY and not self.client_streaming


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    """The proto name, and the name of the generated Protocol (keyword-escaped)."""
    full_name: str
    doc: str
    rpcs: tuple[Rpc, ...]
    location: Location
    settings: plugin_settings.PluginSettings
    proto: str
    """The proto file that declares it."""

    @property
    def servicer(self) -> str:
        return f"{self.name}Servicer"

    @property
    def handlers(self) -> str:
        """The protocol of what serving it accepts (``def`` or ``async def`` per RPC)."""
        return f"{self.name}Handlers"

    @property
    def client(self) -> str:
        return f"{self.name}Client"

    @property
    def plugin(self) -> str:
        return f"{self.name}Plugin"

    @property
    def host_provided(self) -> bool:
        """Served by the host through the broker (a callback), not by the plugin."""
        return self.settings.host_provided

    @property
    def callback(self) -> str:
        return f"{self.name}Callback"

    @property
    def binding(self) -> str:
        """The module-level binding: ``XCallback`` for host-provided services, else ``XPlugin``."""
        return self.callback if self.host_provided else self.plugin


@dataclass(slots=True)
class ProtoFile:
    name: str
    """Proto name, ``acme/svc/v1/svc.proto``."""
    package: str
    """Proto package, ``acme.svc.v1``."""
    services: tuple[Service, ...]
    pb2: Module
    """Its own ``_pb2`` module."""
    imports: list[Module] = field(default_factory=list)
    """Every ``_pb2`` module its services refer to (its own included), in a stable order."""
    aliases: dict[tuple[str, ...], str] = field(default_factory=dict)
    """The private alias each of :attr:`imports` gets in the ``_rpc`` module (``_svc_pb2``)."""

    def ref(self, message: MessageRef) -> str:
        """How the ``_rpc`` module spells a message type: ``_common_pb2.Item.Attr``."""
        return f"{self.aliases[message.module.path]}.{message.qualname}"

    @property
    def rpc_module(self) -> Module:
        return Module(self.pb2.package, self.pb2.name.removesuffix("_pb2") + "_rpc", local=True)


def module_of(proto_name: str) -> Module:
    """The ``_pb2`` module of a proto file, as protoc names it."""
    package, _, name = python_module_path(proto_name).replace("/", ".").rpartition(".")
    return Module(package, name, local=is_local(proto_name))


class _Index:
    """The request, indexed once: types by full name; comments and spans by source path."""

    def __init__(
        self, files: Sequence[descriptor_pb2.FileDescriptorProto], locate: Callable[[str], str]
    ) -> None:
        self.files = {f.name: f for f in files}
        self.types: dict[str, MessageRef] = {}
        self.locate = locate
        for f in files:
            module = module_of(f.name)
            prefix = f".{f.package}." if f.package else "."
            self._add_messages(module, prefix, "", f.message_type)
        self._sources: dict[str, dict[tuple[int, ...], descriptor_pb2.SourceCodeInfo.Location]] = {}
        self._first_lines: dict[str, dict[tuple[int, ...], int]] = {}

    def _add_messages(
        self,
        module: Module,
        prefix: str,
        outer: str,
        messages: Iterable[descriptor_pb2.DescriptorProto],
    ) -> None:
        for message in messages:
            qualname = f"{outer}{message.name}"
            full = f"{prefix}{qualname}"
            self.types[full] = MessageRef(module, qualname, full[1:])
            self._add_messages(module, prefix, f"{qualname}.", message.nested_type)

    def source(
        self, file: str, path: tuple[int, ...]
    ) -> descriptor_pb2.SourceCodeInfo.Location | None:
        by_path = self._sources.get(file)
        if by_path is None:
            # Only services and their methods are looked up: skip the (many) other locations.
            info = self.files[file].source_code_info
            by_path = self._sources[file] = {
                tuple(loc.path): loc
                for loc in info.location
                if loc.path[:1] == [_SERVICE] and len(loc.path) in (2, 4)
            }
            first = self._first_lines[file] = {}
            for loc in info.location:  # where each service's body begins: its first element
                if loc.path[:1] == [_SERVICE] and len(loc.path) > 2 and loc.span:
                    key = tuple(loc.path[:2])
                    first[key] = min(first.get(key, loc.span[0]), loc.span[0])
        return by_path.get(path)

    def location(self, file: str, path: tuple[int, ...]) -> Location:
        found = self.source(file, path)
        where = self.locate(file)
        if found is None or not found.span:
            return Location(where)
        return Location(where, found.span[0] + 1, found.span[1] + 1)

    def doc(self, file: str, path: tuple[int, ...]) -> str:
        found = self.source(file, path)
        if found is None:
            return ""
        if found.leading_comments or not found.trailing_comments:
            return clean_comment(found.leading_comments)
        if len(path) == 2 and found.span:
            # A service's trailing comment is its doc on the ``service X {`` line; on lines of
            # its own, set apart from the first RPC by a blank line, it heads a section.
            first = self._first_lines[file].get(path, found.span[2 if len(found.span) == 4 else 0])
            if first - found.span[0] >= found.trailing_comments.count("\n") + 2:
                return ""
        return clean_comment(found.trailing_comments)


_SLASH_RUN = re.compile(r"^(\s*)/{2,}\s?|\s*/{2,}$")


def clean_comment(text: str) -> str:
    """A proto comment as docstring text: dedented, no trailing blanks, tabs expanded, runs of
    slashes at either end of a line (``//////// Section``) dropped."""
    lines = [_SLASH_RUN.sub(r"\1", line.rstrip()) for line in text.expandtabs(4).split("\n")]
    return textwrap.dedent("\n".join(lines)).strip("\n")


def build(
    request: plugin_pb2.CodeGeneratorRequest,
    overrides: plugin_settings.Overrides,
    locate: Callable[[str], str] = lambda name: name,
) -> list[ProtoFile]:
    """Models of the files to generate, names checked. ``locate`` maps proto names to paths."""
    index = _Index(request.proto_file, locate)
    plugin_settings.check_targets(overrides, [index.files[n] for n in request.file_to_generate])
    models: list[ProtoFile] = []
    for name in request.file_to_generate:
        file = index.files[name]
        services = tuple(
            _service(index, file, i, service, overrides) for i, service in enumerate(file.service)
        )
        model = ProtoFile(name=name, package=file.package, services=services, pb2=module_of(name))
        model.imports = _imports(model)
        model.aliases = naming.unique_aliases([m.path for m in model.imports], prefix="_")
        _check_file_names(model)
        models.append(model)
    return models


def _service(
    index: _Index,
    file: descriptor_pb2.FileDescriptorProto,
    number: int,
    service: descriptor_pb2.ServiceDescriptorProto,
    overrides: plugin_settings.Overrides,
) -> Service:
    path = (_SERVICE, number)
    location = index.location(file.name, path)
    full_name = f"{file.package}.{service.name}" if file.package else service.name
    rpcs: list[Rpc] = []
    seen: dict[str, Rpc] = {}
    for m, method in enumerate(service.method):
        kind = {
            (False, False): UNARY,
            (False, True): SERVER_STREAM,
            (True, False): CLIENT_STREAM,
            (True, True): BIDI_STREAM,
        }[(method.client_streaming, method.server_streaming)]
        rpc = Rpc(
            name=method.name,
            attr=naming.method_name(method.name),
            path=f"/{full_name}/{method.name}",
            kind=kind,
            request=index.types[method.input_type],
            response=index.types[method.output_type],
            doc=index.doc(file.name, (*path, _METHOD, m)),
            location=index.location(file.name, (*path, _METHOD, m)),
        )
        other = seen.get(rpc.attr)
        if other is not None:
            raise GenerationError(
                f"rpc {rpc.name} and rpc {other.name} ({other.location}) of service "
                f"{service.name} both become the Python method {rpc.attr}(); rename one",
                rpc.location,
            )
        seen[rpc.attr] = rpc
        rpcs.append(rpc)
    return Service(
        name=naming.escape_keyword(service.name),
        full_name=full_name,
        doc=index.doc(file.name, path),
        rpcs=tuple(rpcs),
        location=location,
        settings=plugin_settings.resolve(file, service, overrides, location),
        proto=file.name,
    )


def _imports(model: ProtoFile) -> list[Module]:
    modules = {model.pb2.path: model.pb2}
    for service in model.services:
        for rpc in service.rpcs:
            for ref in (rpc.request, rpc.response):
                modules.setdefault(ref.module.path, ref.module)
    return [modules[path] for path in sorted(modules)]


def _check_file_names(model: ProtoFile) -> None:
    """Module-level names of one generated ``_rpc`` module must be distinct."""
    owners: dict[str, tuple[str, Location]] = {}

    def claim(name: str, what: str, location: Location) -> None:
        previous = owners.get(name)
        if previous is not None:
            raise GenerationError(
                f"{what} and {previous[0]} ({previous[1]}) would both be named {name} in "
                f"{model.rpc_module.name}.py; rename one",
                location,
            )
        owners[name] = (what, location)

    for name in RPC_MODULE_IMPORTS:
        owners[name] = ("an import of the generated module", Location(model.name))
    for path, alias in model.aliases.items():
        claim(alias, f"the import of {'.'.join(path)}", Location(model.name))
    for service in model.services:
        where = service.location
        claim(service.name, f"service {service.name}", where)
        claim(service.servicer, f"the servicer base of service {service.name}", where)
        claim(service.handlers, f"the handlers protocol of service {service.name}", where)
        claim(service.client, f"the client of service {service.name}", where)
        role = "callback" if service.host_provided else "plugin"
        claim(service.binding, f"the {role} binding of service {service.name}", where)
        for rpc in service.rpcs:
            claim(
                method_constant(service, rpc),
                f"the method descriptor of rpc {service.name}.{rpc.name}",
                rpc.location,
            )


def method_constant(service: Service, rpc: Rpc) -> str:
    """The private module-level name of an RPC's ``rpcplugin.calls.Method``."""
    return f"_{service.name}_{rpc.attr}"
