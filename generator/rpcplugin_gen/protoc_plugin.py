"""``protoc-gen-rpcplugin``: the generator as a protoc / ``buf generate`` plugin.

It emits the same generated files as ``rpcplugin-gen`` for the files it is asked for (the
``_pb2.py`` modules come from protoc's own Python generator, run in process on the request's
descriptors). It writes no ``servicer.py``: a plugin cannot see the output directory, so the
write-once rule lives in the CLI.

Options (``--rpcplugin_opt=key=value,...`` or buf's ``opt:``): ``cookie_key``, ``cookie_value``,
``protocol_version``, ``name`` (as the CLI flags), ``versions`` (as ``--versions``, with colons
between the versions: ``versions=5:6`` or ``versions=tfplugin5=5:6``), and ``package=false`` to
leave out the package-level files (``py.typed``, ``plugin.py``, ``__main__.py``, and the
``__init__.py`` of directories above the generated modules).

With ``buf generate``, use ``strategy: all``: the package-level ``plugin.py`` lists every service,
which a per-directory run cannot see. Under ``strategy: directory`` set ``package=false``; each
run then emits its directory's modules, identical to the CLI's.

No click here: start-up time matters when buf starts one plugin process per directory.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from . import codegen, compiler
from .errors import GenerationError
from .plugin_settings import Overrides, parse_versions


@dataclass(frozen=True, slots=True)
class PluginOptions:
    overrides: Overrides
    package: bool = True


_OPTIONS = ("cookie_key", "cookie_value", "protocol_version", "versions", "name", "package")


def parse_parameter(parameter: str) -> PluginOptions:
    """Parse ``key=value,...``; unknown keys and bad values are errors, never ignored."""
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in parameter.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise GenerationError(f"plugin option {item!r} is not key=value")
        if key not in _OPTIONS:
            raise GenerationError(f"unknown plugin option {key!r} (known: {', '.join(_OPTIONS)})")
        values[key] = value
    version: int | None = None
    if "protocol_version" in values:
        try:
            version = int(values["protocol_version"])
        except ValueError:
            raise GenerationError(
                f"protocol_version={values['protocol_version']!r} is not a number"
            ) from None
    package = values.get("package", "true").lower()
    if package not in ("true", "false"):
        raise GenerationError(f"package={package!r}: use true or false")
    return PluginOptions(
        overrides=Overrides(
            cookie_key=values.get("cookie_key"),
            cookie_value=values.get("cookie_value"),
            protocol_version=version,
            name=values.get("name"),
            versions=parse_versions([values["versions"]], separator=":")
            if "versions" in values
            else {},
        ),
        package=package == "true",
    )


def respond(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """The response to one request (errors go into ``response.error``, as protoc expects)."""
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
        | plugin_pb2.CodeGeneratorResponse.FEATURE_SUPPORTS_EDITIONS,
        minimum_edition=descriptor_pb2.EDITION_PROTO2,
        maximum_edition=descriptor_pb2.EDITION_2024,
    )
    try:
        options = parse_parameter(request.parameter)
        wanted = [name for name in request.file_to_generate if compiler.is_local(name)]
        python = compiler.python_sources(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file), wanted
        )
        generated = codegen.generate(
            request, python, options.overrides, package_files=options.package
        )
    except GenerationError as exc:
        response.error = str(exc)
        return response
    for path in sorted(generated.files):
        response.file.add(name=path, content=generated.files[path].content)
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(respond(request).SerializeToString())
