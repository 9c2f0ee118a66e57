"""Make protoc's and mypy-protobuf's absolute imports relative, in ``.py`` and ``.pyi`` alike.

protoc writes ``from acme.common.v1 import common_pb2 as …``, which only works when the output
directory itself is on ``sys.path``. Rewritten to ``from ...common.v1 import common_pb2 as …``,
the output works as a sub-package anywhere (``myapp.plugins.kv``). Only imports of modules
generated into the same output package are touched; ``google.protobuf`` and the runtime's
protos stay absolute.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from .errors import GenerationError
from .rendering import relative_import

_FROM_IMPORT = re.compile(r"^from ([\w.]+) import (\w+|\*)( as \w+)?$", re.M)
_IMPORT = re.compile(r"^import ([\w.]+)( as \w+)?$", re.M)
_BUILDER_CALL = "\n_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, "
_BUILDER_END = ", _globals)\n"


def rewrite(
    source: str,
    package: tuple[str, ...],
    local: Collection[tuple[str, ...]],
) -> str:
    """``source`` (a module in ``package``) with imports of ``local`` modules made relative.

    Also makes ``_pb2.py`` name its classes' module ``__name__`` rather than the absolute
    module path protoc assumed, so ``__module__`` (and pickling) are right in a sub-package.
    """

    def from_import(match: re.Match[str]) -> str:
        module, name, alias = match[1], match[2], match[3] or ""
        path = tuple(module.split("."))
        if name == "*":
            if path not in local:
                return match[0]
            base, last = relative_import(package, path)
            return f"from {base}{'' if base.endswith('.') else '.'}{last} import *"
        if (*path, name) not in local:
            return match[0]
        base, _ = relative_import(package, (*path, name))
        return f"from {base} import {name}{alias}"

    def plain_import(match: re.Match[str]) -> str:
        path = tuple(match[1].split("."))
        if path not in local:
            return match[0]
        if len(path) > 1 and not match[2]:
            raise GenerationError(f"cannot make {match[0]!r} relative")
        base, name = relative_import(package, path)
        return f"from {base} import {name}{match[2] or ''}"

    # Imports come before the first top-level DESCRIPTOR in both files; the rest of a _pb2.py
    # is mostly one long serialized descriptor, not worth scanning line by line.
    cut = source.find("\nDESCRIPTOR")
    head, tail = (source, "") if cut < 0 else (source[:cut], source[cut:])
    head = _FROM_IMPORT.sub(from_import, head)
    head = _IMPORT.sub(plain_import, head)
    return _name_classes_by_module(head + tail)


def _name_classes_by_module(source: str) -> str:
    start = source.find(_BUILDER_CALL)
    if start < 0:
        return source
    begin = start + len(_BUILDER_CALL)
    end = source.find(_BUILDER_END, begin)
    if end < 0 or not re.fullmatch(r"'[\w.]+'", source[begin:end]):
        return source
    return f"{source[:begin]}__name__{source[end:]}"
