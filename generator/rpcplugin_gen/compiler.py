"""protoc, run in process through grpcio-tools: parse ``.proto`` files, emit ``_pb2.py`` sources.

One :func:`compile_protos` call parses every input with protoc's own parser (so errors read
exactly like protoc's, with ``file:line:column``), writes protoc's ``--python_out`` into a private
temporary directory and returns the sources in memory together with the parsed
``FileDescriptorSet`` (with source info, for comments and error locations).

The include path always ends with the runtime's protos (``rpcplugin/protos/…``, for our custom
options) and grpcio-tools' bundled well-known types (``google/protobuf/…``).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2

from .errors import GenerationError, Location

_PROTOC_LINE = re.compile(r"^(?P<file>[^:\n]+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.*)$")


def well_known_types_dir() -> str:
    """grpcio-tools' copy of ``google/protobuf/*.proto``."""
    return str(resources.files("grpc_tools") / "_proto")


def runtime_protos_root() -> str:
    """The directory holding the ``rpcplugin`` package, so ``rpcplugin/protos/x.proto`` resolves."""
    import rpcplugin.protos

    return str(Path(next(iter(rpcplugin.protos.__path__))).parent.parent)


@dataclass(frozen=True)
class Compiled:
    """What protoc produced: descriptors of every file involved, and ``_pb2.py`` sources."""

    descriptors: descriptor_pb2.FileDescriptorSet
    """All files, dependencies first, with source info."""
    inputs: list[str]
    """The proto names (include-relative) of the files given on the command line."""
    python: dict[str, str]
    """``_pb2.py`` source by proto name, for the files asked for."""


def _run_protoc(args: list[str]) -> tuple[int, str]:
    """Run grpcio-tools' protoc in this process; return its status and what it wrote to stderr.

    protoc is C++ and writes to file descriptor 2 directly, so the descriptor is redirected into
    a temporary file for the duration of the call.
    """
    from grpc_tools import protoc

    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        try:
            os.dup2(captured.fileno(), 2)
            status = protoc.main(["protoc", *args])
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return status, captured.read().decode("utf-8", "replace")


def _first_error(stderr: str, include_dirs: Sequence[str]) -> GenerationError:
    """protoc's most useful error line as a :class:`GenerationError` with a disk location.

    protoc may print several lines for one mistake (a missing import prints "File not found"
    then the importing line); the first line that has a line number is the one to show.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        match = _PROTOC_LINE.match(line)
        if match:
            location = Location(
                _disk_path(match["file"], include_dirs), int(match["line"]), int(match["col"])
            )
            return GenerationError(match["msg"], location)
    if lines:
        return GenerationError(lines[0])
    return GenerationError("protoc failed without a message")


def _disk_path(proto_name: str, include_dirs: Sequence[str]) -> str:
    """The file protoc means by ``proto_name``, relative to the working directory if possible."""
    if os.path.exists(proto_name):
        return proto_name
    for directory in include_dirs:
        candidate = os.path.join(directory, proto_name)
        if os.path.exists(candidate):
            return os.path.relpath(candidate) if not os.path.isabs(directory) else candidate
    return proto_name


def proto_name(path: str, include_dirs: Sequence[str]) -> str:
    """The include-relative name protoc gives the file at ``path``."""
    absolute = os.path.abspath(path)
    for directory in include_dirs:
        root = os.path.abspath(directory)
        if absolute.startswith(root.rstrip(os.sep) + os.sep):
            return os.path.relpath(absolute, root).replace(os.sep, "/")
    raise GenerationError(
        f"{path} is not under any include directory ({', '.join(include_dirs)}); add -I DIR"
    )


def compile_protos(
    files: Sequence[str],
    include_dirs: Sequence[str],
) -> Compiled:
    """Parse ``files`` (disk paths) and emit ``_pb2.py`` for them.

    Local dependencies (not ``google/protobuf/`` nor ``rpcplugin/``) that were not listed are
    compiled too, in a second, parse-free protoc run, so the output package is self-contained.
    """
    for path in files:
        if not os.path.isfile(path):
            raise GenerationError("file not found", Location(path))
    includes = [*include_dirs, runtime_protos_root(), well_known_types_dir()]
    inputs = [proto_name(path, include_dirs) for path in files]
    with tempfile.TemporaryDirectory(prefix="rpcplugin-gen-") as tmp:
        descriptor_file = os.path.join(tmp, "descriptors.binpb")
        out = os.path.join(tmp, "py")
        os.mkdir(out)
        args = [f"-I{d}" for d in includes]
        args += [
            f"--python_out={out}",
            f"--descriptor_set_out={descriptor_file}",
            "--include_imports",
            "--include_source_info",
            *inputs,
        ]
        status, stderr = _run_protoc(args)
        if status != 0:
            raise _first_error(stderr, includes)
        if stderr.strip():
            sys.stderr.write(stderr)
        descriptors = descriptor_pb2.FileDescriptorSet.FromString(
            Path(descriptor_file).read_bytes()
        )
        python = _read_python(out, inputs)
        missing = [f.name for f in descriptors.file if f.name not in python and is_local(f.name)]
        if missing:
            python.update(python_sources(descriptors, missing))
    return Compiled(descriptors=descriptors, inputs=inputs, python=python)


def python_sources(
    descriptors: descriptor_pb2.FileDescriptorSet, names: Sequence[str]
) -> dict[str, str]:
    """protoc's ``_pb2.py`` for already-parsed files (``--descriptor_set_in``, no parsing).

    This is how the protoc plugin gets byte-identical ``_pb2.py`` sources to the CLI's.
    """
    with tempfile.TemporaryDirectory(prefix="rpcplugin-gen-") as tmp:
        descriptor_file = os.path.join(tmp, "descriptors.binpb")
        Path(descriptor_file).write_bytes(_canonical(descriptors).SerializeToString())
        out = os.path.join(tmp, "py")
        os.mkdir(out)
        status, stderr = _run_protoc(
            [f"--descriptor_set_in={descriptor_file}", f"--python_out={out}", *names]
        )
        if status != 0:
            raise _first_error(stderr, [])
        return _read_python(out, names)


def _canonical(descriptors: descriptor_pb2.FileDescriptorSet) -> descriptor_pb2.FileDescriptorSet:
    """Descriptors as ``--descriptor_set_out`` writes them.

    protoc fills in ``json_name`` for every field of a plugin request but only writes explicit
    ones to a descriptor set; protoc's Python generator embeds whatever it was given, so drop the
    defaults to keep ``_pb2.py`` identical on both paths. Source info is not embedded either way.
    """
    canonical = descriptor_pb2.FileDescriptorSet()
    canonical.CopyFrom(descriptors)
    for file in canonical.file:
        file.ClearField("source_code_info")
        _drop_default_json_names(file.message_type)
        for ext in file.extension:
            _drop_default_json_name(ext)
    return canonical


def _drop_default_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in [*message.field, *message.extension]:
            _drop_default_json_name(field)
        _drop_default_json_names(message.nested_type)


def _drop_default_json_name(field: descriptor_pb2.FieldDescriptorProto) -> None:
    if field.HasField("json_name") and field.json_name == _json_name(field.name):
        field.ClearField("json_name")


def _json_name(name: str) -> str:
    """protoc's ToJsonName: drop underscores, capitalise the letter after each."""
    out: list[str] = []
    upper = False
    for char in name:
        if char == "_":
            upper = True
        elif upper:
            out.append(char.upper())
            upper = False
        else:
            out.append(char)
    return "".join(out)


def _read_python(out: str, names: Iterable[str]) -> dict[str, str]:
    sources: dict[str, str] = {}
    for name in names:
        path = os.path.join(out, python_module_path(name) + ".py")
        if os.path.exists(path):
            sources[name] = Path(path).read_text(encoding="utf-8")
    return sources


def python_module_path(name: str) -> str:
    """protoc's ``_pb2`` module file for a proto name, without ``.py``.

    ``a/b-c.proto`` → ``a/b_c_pb2``; dots in the file name become directories, as protoc does.
    """
    return name.removesuffix(".proto").replace("-", "_").replace(".", "/") + "_pb2"


def is_local(name: str) -> bool:
    """Whether a proto belongs in the output package (not a well-known type, not the runtime's)."""
    return not name.startswith(("google/protobuf/", "rpcplugin/"))
