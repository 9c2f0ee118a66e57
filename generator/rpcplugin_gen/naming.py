"""Python names for proto names: snake_case methods, keyword escapes, reserved names.

Every identifier the generator derives from a proto name goes through here, so the rules live in
one place: keywords and ``None``/``True``/``False`` get a trailing underscore (``Import`` →
``import_``), names a generated client reserves get one too (``WithOptions`` →
``with_options_``). Builtins are *not* renamed: generated code never refers to a builtin by its
bare name (it writes ``_builtins.float``), so ``rpc List`` is simply ``list``.
"""

from __future__ import annotations

import keyword
import re

_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

CLIENT_RESERVED = frozenset({"with_options"})
"""Public names of ``rpcplugin.calls.ClientBase``; an RPC that snake_cases to one is renamed."""


def snake_case(name: str) -> str:
    """``GetFoo`` → ``get_foo``, ``HTTPGet`` → ``http_get``, ``Get_Foo`` → ``get_foo``."""
    words = _WORD_BOUNDARY.sub("_", name).lower()
    return re.sub(r"_+", "_", words)


def escape_keyword(name: str) -> str:
    """``import`` → ``import_``, ``None`` → ``None_``; other names unchanged."""
    return name + "_" if keyword.iskeyword(name) else name


def method_name(rpc_name: str) -> str:
    """The Python method name of an RPC, safe on a Protocol, a servicer and a client."""
    name = escape_keyword(snake_case(rpc_name))
    if name in CLIENT_RESERVED or name.startswith("__") or name == "_caller":
        name += "_"
    return name


def is_renamed(rpc_name: str) -> bool:
    """Whether :func:`method_name` had to add an underscore to avoid a clash."""
    return method_name(rpc_name) != snake_case(rpc_name)


def unique_aliases(paths: list[tuple[str, ...]], prefix: str = "") -> dict[tuple[str, ...], str]:
    """Short distinct aliases for dotted module paths: the shortest unique tail, ``_``-joined.

    ``[("a","v1","x_pb2"), ("b","v1","x_pb2"), ("c","y_pb2")]`` →
    ``{…: "a_v1_x_pb2", …: "b_v1_x_pb2", …: "y_pb2"}`` (with ``prefix`` prepended).
    """
    aliases: dict[tuple[str, ...], str] = {}
    for path in paths:
        for size in range(1, len(path) + 1):
            tail = path[-size:]
            if sum(1 for other in paths if other[-size:] == tail) == 1 or size == len(path):
                aliases[path] = prefix + "_".join(tail)
                break
    return aliases
