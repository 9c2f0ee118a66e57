"""Where the CLI learns a plugin's services and messages: server reflection, or ``.proto`` files.

Both end in a :class:`Schema`: a private ``descriptor_pool.DescriptorPool`` (never the default
pool, so a plugin's ``grpc.health.v1`` cannot clash with ours) and the service names found.
Messages are built from it with ``message_factory.GetMessageClass`` and read or written as JSON
with ``json_format``.

Reflection is tried first (``grpc.reflection.v1`` then ``v1alpha``, which grpc-go and grpcio
serve); a plugin without it answers UNIMPLEMENTED and the ``-I``/``--proto`` files are used.
Protos are compiled in this process with ``grpcio-tools`` (the generator's dependency).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import grpc
from google.protobuf import (
    descriptor,
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
)
from google.protobuf import message as pb_message

from .status import EXIT_BAD_JSON, EXIT_PROTOS, EXIT_UNKNOWN_METHOD, CLIError

REFLECTION_SERVICES = (
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
"""The reflection services tried, in order (their messages are the same on the wire): v1alpha,
which grpc-go (every version), grpcio and so every go-plugin plugin with reflection serve, then
v1."""

_WRITE_RACE = "Internal error from Core"
"""How grpcio reports a request written while the server's UNIMPLEMENTED was arriving."""

GO_PLUGIN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "plugin.GRPCBroker",
        "plugin.GRPCController",
        "plugin.GRPCStdio",
        *REFLECTION_SERVICES,
    }
)
"""go-plugin's own services (and reflection): listed apart from the plugin's."""

Source = Literal["reflection", "protos"]


@dataclass
class Method:
    """One RPC of a service."""

    service: str
    name: str
    input: descriptor.Descriptor
    output: descriptor.Descriptor
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        """The HTTP/2 path gRPC calls: ``/package.Service/Method``."""
        return f"/{self.service}/{self.name}"

    @property
    def kind(self) -> str:
        """``unary``, ``server-streaming``, ``client-streaming`` or ``bidi-streaming``."""
        if self.client_streaming and self.server_streaming:
            return "bidi-streaming"
        if self.client_streaming:
            return "client-streaming"
        return "server-streaming" if self.server_streaming else "unary"

    def signature(self) -> str:
        """``rpc Count(pkg.CountRequest) returns (stream pkg.CountReply)``."""
        request = ("stream " if self.client_streaming else "") + self.input.full_name
        reply = ("stream " if self.server_streaming else "") + self.output.full_name
        return f"rpc {self.name}({request}) returns ({reply})"


@dataclass
class Schema:
    """Services and messages from one source."""

    source: Source
    detail: str
    """Which reflection service answered, or which proto files were read."""
    pool: descriptor_pool.DescriptorPool
    services: list[str] = field(default_factory=list)
    """Every service name, sorted (go-plugin's own included, when reflection lists them)."""
    undescribed: list[str] = field(default_factory=list)
    """Services reflection lists but cannot describe (no descriptors on the server's side)."""

    def methods(self, service: str) -> list[Method]:
        """The methods of ``service``, in declaration order."""
        try:
            found = self.pool.FindServiceByName(service)
        except KeyError:
            raise CLIError(
                EXIT_UNKNOWN_METHOD, f"no descriptor for service {service!r} ({self.detail})"
            ) from None
        return [
            Method(
                service,
                m.name,
                m.input_type,
                m.output_type,
                bool(m.client_streaming),
                bool(m.server_streaming),
            )
            for m in found.methods
        ]

    def find(self, spec: str) -> Method:
        """A method from ``pkg.Service/Method``, ``pkg.Service.Method`` or a bare ``Method``
        that only one of the plugin's services (not go-plugin's) has."""
        spec = spec.strip().lstrip("/")
        if "/" in spec:
            service, _, name = spec.rpartition("/")
        elif "." in spec:
            service, _, name = spec.rpartition(".")
        else:
            service, name = "", spec
        if service:
            if service in self.undescribed:
                raise CLIError(
                    EXIT_UNKNOWN_METHOD,
                    f"the plugin serves {service!r} but its reflection does not describe it: "
                    "give its protos with --proto",
                )
            if service not in self.services:
                known = ", ".join(self.user_services()) or "none"
                raise CLIError(
                    EXIT_UNKNOWN_METHOD,
                    f"unknown service {service!r} (from {self.detail}; services: {known})",
                )
            for method in self.methods(service):
                if method.name == name:
                    return method
            names = ", ".join(m.name for m in self.methods(service))
            raise CLIError(
                EXIT_UNKNOWN_METHOD, f"service {service!r} has no method {name!r} (it has {names})"
            )
        matches = [m for s in self.user_services() for m in self.methods(s) if m.name == name]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise CLIError(
                EXIT_UNKNOWN_METHOD,
                f"no service has a method {name!r} (from {self.detail}); "
                "give it as package.Service/Method",
            )
        where = ", ".join(m.service for m in matches)
        raise CLIError(
            EXIT_UNKNOWN_METHOD, f"method {name!r} is ambiguous ({where}): give Service/Method"
        )

    def user_services(self) -> list[str]:
        """The plugin's own services: all but go-plugin's and reflection."""
        return [s for s in self.services if s not in GO_PLUGIN_SERVICES]

    def message_class(self, desc: descriptor.Descriptor) -> type[pb_message.Message]:
        """The Python class of a message type of this schema."""
        return message_factory.GetMessageClass(desc)


# -- JSON ------------------------------------------------------------------------------------


def parse_request(schema: Schema, method: Method, text: str) -> list[pb_message.Message]:
    """The request message(s) of ``method`` from JSON: one object, or for a client-streaming
    method a JSON array or one object per line. Empty text means one empty message."""
    import json

    cls = schema.message_class(method.input)
    stripped = text.strip()
    if not stripped:
        return [cls()]
    items: list[Any]
    try:
        if method.client_streaming:
            if stripped.startswith("["):
                items = list(json.loads(stripped))
            else:
                items = [json.loads(line) for line in stripped.splitlines() if line.strip()]
        else:
            items = [json.loads(stripped)]
    except json.JSONDecodeError as exc:
        raise CLIError(
            EXIT_BAD_JSON, f"malformed JSON request: {exc.msg} at line {exc.lineno} col {exc.colno}"
        ) from None
    messages = []
    for item in items:
        message = cls()
        try:
            json_format.ParseDict(item, message)
        except json_format.ParseError as exc:
            reason = str(exc).replace("\n", " ")
            raise CLIError(
                EXIT_BAD_JSON, f"the request does not fit {method.input.full_name}: {reason}"
            ) from None
        messages.append(message)
    return messages


def to_json(message: pb_message.Message, *, indent: int | None = None) -> str:
    """A message as JSON (proto3 JSON mapping, field names as in the .proto, in its order, and
    fields at their default value included)."""
    import json

    as_dict = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    desc = cast(descriptor.Descriptor, message.DESCRIPTOR)
    return json.dumps(_in_field_order(as_dict, desc), indent=indent)


def _in_field_order(value: dict[str, Any], desc: descriptor.Descriptor) -> dict[str, Any]:
    """``MessageToDict`` output with keys in declaration order (set fields come first in it)."""
    if desc.full_name.startswith("google.protobuf."):
        return value  # well-known types have JSON forms of their own
    ordered: dict[str, Any] = {}
    for field_desc in desc.fields:
        if field_desc.name not in value:
            continue
        item = value[field_desc.name]
        sub = field_desc.message_type
        if sub is not None and sub.GetOptions().map_entry:
            value_desc = sub.fields_by_name["value"].message_type
            if value_desc is not None and isinstance(item, dict):
                item = {k: _maybe_ordered(v, value_desc) for k, v in item.items()}
        elif sub is not None and isinstance(item, list):
            item = [_maybe_ordered(v, sub) for v in item]
        elif sub is not None:
            item = _maybe_ordered(item, sub)
        ordered[field_desc.name] = item
    for key, item in value.items():  # extensions, anything not a declared field
        ordered.setdefault(key, item)
    return ordered


def _maybe_ordered(value: Any, desc: descriptor.Descriptor) -> Any:
    return _in_field_order(value, desc) if isinstance(value, dict) else value


# -- from reflection -------------------------------------------------------------------------


async def from_reflection(channel: grpc.aio.Channel, timeout: float = 10.0) -> Schema | None:
    """The plugin's services and descriptors from server reflection; None without it."""
    from grpc_reflection.v1alpha import reflection_pb2 as rpb

    for service in REFLECTION_SERVICES:
        method = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString,
        )
        # first a one-shot exchange: a server without this service answers UNIMPLEMENTED at
        # once, and an interactive write racing that answer would fail as INTERNAL instead
        try:
            names = await _list_services(method, rpb, timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED or (
                exc.code() == grpc.StatusCode.INTERNAL and exc.details() == _WRITE_RACE
            ):
                continue
            raise
        call: Any = method(timeout=timeout)
        try:
            files = await _fetch_files(call, rpb, names)
            await call.done_writing()
            while await call.read() is not grpc.aio.EOF:
                pass  # a clean end of the stream, not a cancellation
        except BaseException:
            call.cancel()
            raise
        pool = descriptor_pool.DescriptorPool()
        _add_in_order(pool, files)
        described = sorted(n for n in names if _describes(pool, n))
        undescribed = sorted(set(names) - set(described))
        return Schema("reflection", service, pool, described, undescribed)
    return None


def _describes(pool: descriptor_pool.DescriptorPool, service: str) -> bool:
    try:
        pool.FindServiceByName(service)
    except KeyError:
        return False
    return True


async def _ask(call: Any, request: Any) -> Any:
    await call.write(request)
    response = await call.read()
    if response is grpc.aio.EOF:
        raise CLIError(EXIT_PROTOS, "the reflection stream ended early")
    if response.HasField("error_response"):
        error = response.error_response
        raise _ReflectionMiss(error.error_message or f"error code {error.error_code}")
    return response


class _ReflectionMiss(Exception):
    pass


async def _list_services(method: Any, rpb: Any, timeout: float) -> list[str]:
    names: list[str] = []
    async for response in method(
        iter([rpb.ServerReflectionRequest(list_services="")]), timeout=timeout
    ):
        if response.HasField("error_response"):
            raise _ReflectionMiss(response.error_response.error_message or "list_services failed")
        names += [s.name for s in response.list_services_response.service]
    return names


async def _fetch_files(
    call: Any, rpb: Any, services: Sequence[str]
) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def take(response: Any) -> None:
        for raw in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(proto.name, proto)

    for name in services:
        with contextlib.suppress(_ReflectionMiss):  # listed but not described: left out
            take(await _ask(call, rpb.ServerReflectionRequest(file_containing_symbol=name)))
    missing = _missing_dependencies(files)
    while missing:
        for name in missing:
            try:
                take(await _ask(call, rpb.ServerReflectionRequest(file_by_filename=name)))
            except _ReflectionMiss:
                files[name] = _well_known(name)
        missing = _missing_dependencies(files)
    return files


def _missing_dependencies(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[str]:
    return sorted({d for f in files.values() for d in f.dependency if d not in files})


def _well_known(name: str) -> descriptor_pb2.FileDescriptorProto:
    """A dependency the server would not describe: protobuf's own copy, or an error."""
    try:
        found = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        raise CLIError(
            EXIT_PROTOS, f"the plugin's reflection does not describe {name!r}, an import"
        ) from None
    proto = descriptor_pb2.FileDescriptorProto()
    found.CopyToProto(proto)
    return proto


def _add_in_order(
    pool: descriptor_pool.DescriptorPool, files: dict[str, descriptor_pb2.FileDescriptorProto]
) -> None:
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        added.add(name)
        proto = files[name]
        for dependency in proto.dependency:
            if dependency in files:
                add(dependency)
        pool.Add(proto)

    for name in sorted(files):
        add(name)


# -- from protos -----------------------------------------------------------------------------


def from_protos(protos: Sequence[str], include: Sequence[str]) -> Schema:
    """Compile ``protos`` (paths as protoc takes them, relative to an ``-I`` directory; the
    file's own directory is added when no ``-I`` is given) in this process with grpcio-tools."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise CLIError(
            EXIT_PROTOS,
            "reading .proto files needs grpcio-tools: install rpcplugin-gen, or use a plugin "
            "that serves reflection",
        ) from None
    paths = list(include) or sorted({os.path.dirname(os.path.abspath(p)) for p in protos})
    names = [_relative(p, paths) for p in protos]
    bundled = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    with tempfile.TemporaryDirectory(prefix="rpcplugin-cli-") as tmp:
        out = os.path.join(tmp, "set.pb")
        errors = os.path.join(tmp, "protoc.err")
        args = ["protoc", *(f"-I{p}" for p in paths), f"-I{bundled}"]
        args += ["--include_imports", f"--descriptor_set_out={out}", *names]
        with _stderr_to(errors):
            status = protoc.main(args)
        if status != 0:
            with open(errors, errors="replace") as handle:
                lines = [line.strip() for line in handle if line.strip()]
            reason = lines[0] if lines else f"protoc exited with status {status}"
            raise CLIError(EXIT_PROTOS, f"cannot compile {', '.join(names)}: {reason}")
        with open(out, "rb") as handle:
            descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(handle.read())
    pool = descriptor_pool.DescriptorPool()
    files = {f.name: f for f in descriptor_set.file}
    _add_in_order(pool, files)
    wanted = set(names)
    services = sorted(
        f"{f.package}.{s.name}" if f.package else s.name
        for f in descriptor_set.file
        if f.name in wanted
        for s in f.service
    )
    return Schema("protos", ", ".join(names), pool, services)


def _relative(proto: str, include: Sequence[str]) -> str:
    """``proto`` as protoc names it: relative to the first ``-I`` directory holding it."""
    if not os.path.isabs(proto) and any(os.path.exists(os.path.join(i, proto)) for i in include):
        return proto
    absolute = os.path.abspath(proto)
    if not os.path.exists(absolute):
        raise CLIError(EXIT_PROTOS, f"no such .proto file: {proto}")
    for directory in include:
        root = os.path.abspath(directory) + os.sep
        if absolute.startswith(root):
            return absolute[len(root) :]
    raise CLIError(EXIT_PROTOS, f"{proto} is not under any -I directory ({', '.join(include)})")


@contextlib.contextmanager
def _stderr_to(path: str) -> Iterator[None]:
    """protoc (C++) writes its errors to fd 2: catch them, to report one line."""
    saved = os.dup(2)
    try:
        with open(path, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


async def load(
    channel: grpc.aio.Channel | None,
    protos: Sequence[str],
    include: Sequence[str],
) -> Schema:
    """The protos when given (they are what the user asked for), else reflection."""
    if protos:
        return from_protos(protos, include)
    if channel is None:
        raise CLIError(EXIT_PROTOS, "no services known: give the protos with --proto FILE [-I DIR]")
    try:
        schema = await from_reflection(channel)
    except _ReflectionMiss as exc:
        raise CLIError(EXIT_PROTOS, f"the plugin's reflection failed: {exc}") from None
    if schema is None:
        raise CLIError(
            EXIT_PROTOS,
            "the plugin serves no reflection: give its protos with --proto FILE [-I DIR]",
        )
    return schema
