"""mypy-protobuf's ``.pyi`` message stubs, generated in this process (no plugin subprocess).

mypy-protobuf stubs pass ``mypy --strict``; protoc's own ``--pyi_out`` does not (bare
``Mapping``, fields shadowing ``bytes``/``str``), hence this dependency.
"""

from __future__ import annotations

import inspect

from google.protobuf.compiler import plugin_pb2

# Every option mypy-protobuf's plugin reads from its parameter string, all off.
_FLAGS = (
    "readable_stubs",
    "relax_strict_optional_primitives",
    "use_default_deprecation_warnings",
    "generate_concrete_servicer_stubs",
)


def generate(request: plugin_pb2.CodeGeneratorRequest) -> dict[str, str]:
    """``.pyi`` source by output path (``a/b_pb2.pyi``) for ``request.file_to_generate``."""
    from mypy_protobuf import main as mypy_protobuf

    response = plugin_pb2.CodeGeneratorResponse()
    accepted = inspect.signature(mypy_protobuf.generate_mypy_stubs).parameters
    flags = {name: False for name in _FLAGS if name in accepted}
    mypy_protobuf.generate_mypy_stubs(
        mypy_protobuf.Descriptors(request), response, quiet=True, **flags
    )
    return {file.name: file.content for file in response.file}
