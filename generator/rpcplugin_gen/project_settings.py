"""Generator settings from ``[tool.rpcplugin-gen]`` in ``pyproject.toml``.

The file layer is generic: every parameter of the ``rpcplugin-gen`` click command can be set in
the file under its long option name (``proto-path``, ``cookie-key``, ``out``; the argument is
``protos``), so an option added to the command is a settings key with no change here. Values
become the command's defaults (click's ``default_map``), so flags given on the command line
override the file. Paths in the file are relative to the file's directory. A key the command does
not know, or a value of the wrong kind, is a :class:`GenerationError` naming the key and the file.

The file is the nearest ``pyproject.toml`` at or above the current directory that has a
``[tool.rpcplugin-gen]`` table; ``RPCPLUGIN_GEN_CONFIG`` names one explicitly.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .errors import GenerationError

TABLE = "rpcplugin-gen"
CONFIG_ENV = "RPCPLUGIN_GEN_CONFIG"

NOT_SETTINGS = frozenset({"check", "help", "version"})
"""Parameters that describe one run, not a project: flags only."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The ``[tool.rpcplugin-gen]`` table of one file, checked against a command."""

    path: Path
    defaults: dict[str, Any]
    """click ``default_map``: parameter name → value (paths made absolute)."""


def find(start: Path | None = None) -> Path | None:
    """The settings file: ``$RPCPLUGIN_GEN_CONFIG``, else the nearest ``pyproject.toml`` at or
    above ``start`` (default: the current directory) with a ``[tool.rpcplugin-gen]`` table."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise GenerationError(f"{CONFIG_ENV}={explicit}: no such file")
        return path.resolve()
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and TABLE in _tool_tables(candidate):
            return candidate
    return None


def _tool_tables(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise GenerationError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise GenerationError(f"{path}: not valid TOML: {exc}") from exc
    tool = data.get("tool", {})
    return tool if isinstance(tool, dict) else {}


def _keys(command: click.Command) -> dict[str, click.Parameter]:
    """Settings key → parameter: each long option's name (``--proto-path`` → ``proto-path``),
    the parameter's own name with dashes (``include``), and an argument's name (``protos``)."""
    keys: dict[str, click.Parameter] = {}
    for param in command.params:
        if param.name is None or param.name in NOT_SETTINGS or param.expose_value is False:
            continue
        keys[param.name.replace("_", "-")] = param
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                if opt.startswith("--") and not opt.startswith("--no-"):
                    keys[opt[2:]] = param
    return keys


def _kind(param: click.Parameter) -> str:
    if param.multiple or param.nargs == -1:
        return "list"
    if isinstance(param, click.Option) and param.is_flag and not param.secondary_opts:
        return "bool"
    if isinstance(param, click.Option) and param.is_bool_flag:
        return "bool"
    if isinstance(param.type, click.types.IntParamType):
        return "int"
    return "str"


def _check(value: Any, kind: str) -> bool:
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


_KIND_TEXT = {
    "list": "a list of strings",
    "bool": "true or false",
    "int": "an integer",
    "str": "a string",
}


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables (``[tool.rpcplugin-gen.handshake]``) are a grouping only: their keys are
    the command's own (``handshake.cookie-key`` is ``cookie-key``)."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if key == "versions":
            flat[f"{prefix}{key}"] = _versions_entries(value)
        elif isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _versions_entries(value: Any) -> Any:
    """``versions`` may also be a list of versions for every service (``[5, 6]``) or a table of
    them by target (``{"tfplugin5.proto" = [5, 6]}``): both become ``--versions`` entries."""

    def numbers(items: Any) -> str | None:
        if isinstance(items, list) and items and all(type(i) is int for i in items):
            return ",".join(map(str, items))
        return None

    if numbers(value) is not None:
        return [numbers(value)]
    if isinstance(value, dict):
        entries = [(target, numbers(items)) for target, items in value.items()]
        if all(n is not None for _, n in entries):
            return [f"{target}={n}" for target, n in entries]
    return value


def load(command: click.Command, path: Path) -> Settings:
    """Read and check ``path``'s ``[tool.rpcplugin-gen]`` table against ``command``."""
    table = _tool_tables(path).get(TABLE, {})
    where = f"{path}: [tool.{TABLE}]"
    if not isinstance(table, dict):
        raise GenerationError(f"{where} must be a table")
    keys = _keys(command)
    defaults: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for dotted, value in _flatten(table).items():
        key = dotted.rpartition(".")[2]
        param = keys.get(key)
        if param is None or param.name is None:
            known = ", ".join(sorted(k for k, p in keys.items() if p.name != k.replace("-", "_")))
            raise GenerationError(f"{where}: unknown key {dotted!r} (known keys: {known})")
        if param.name in seen:
            raise GenerationError(
                f"{where}: {dotted!r} and {seen[param.name]!r} set the same thing; keep one"
            )
        seen[param.name] = dotted
        kind = _kind(param)
        if not _check(value, kind):
            raise GenerationError(f"{where}: {dotted!r} must be {_KIND_TEXT[kind]}, not {value!r}")
        if isinstance(param.type, click.Path):
            base = path.parent
            value = [str(base / v) for v in value] if kind == "list" else str(base / value)
        defaults[param.name] = value
    return Settings(path=path, defaults=defaults)
