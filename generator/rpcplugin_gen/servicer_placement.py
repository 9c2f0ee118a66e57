"""Where the user's servicer lives: ``OUT/servicer.py`` (the default) or a file outside the
generated package, so that the generated code can stay out of version control.

A servicer outside ``OUT`` must sit in a package that contains ``OUT``, e.g.
``myplugin/servicer.py`` with ``OUT = myplugin/gen`` (every directory from the servicer's down to
``OUT`` a package). Its imports of generated code then carry a prefix (``from .gen import
plugin``, ``from .gen.kv.v1 import kv_rpc``) and ``OUT/__main__.py`` imports it as
``..servicer``. The skeleton, drift check and ``--add-stubs`` all work on the default form, so
this module translates the file's relative imports between the two forms, line for line: a
relative import of the generated package loses its prefix, any other relative import gains a
level (so the drift reader sees it as not generated code), and back.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import GenerationError

DEFAULT_MODULE = ".servicer"
_HEAD = re.compile(r"^(\s*from\s+)(\.+)([\w.]*)(\s+import\b)")


@dataclass(frozen=True, slots=True)
class Placement:
    """The servicer's file, and how the generated package and it import each other."""

    path: Path
    prefix: tuple[str, ...] = ()
    """The generated package's path below the servicer's package (empty: inside OUT)."""

    @property
    def module(self) -> str:
        """How ``OUT/__main__.py`` imports the servicer (relative to OUT)."""
        if not self.prefix:
            return DEFAULT_MODULE
        return "." * (len(self.prefix) + 1) + self.path.stem

    def to_user(self, source: str) -> str:
        """Default-form source (imports relative to OUT) → the file's form."""
        return source if not self.prefix else _rewrite(source, self._forward)

    def from_user(self, source: str) -> str:
        """The file's source → default form, for the drift check and ``--add-stubs``."""
        return source if not self.prefix else _rewrite(source, self._inverse)

    def _forward(self, dots: str, module: str) -> tuple[str, str]:
        if len(dots) == 1:
            return ".", ".".join([*self.prefix, *filter(None, [module])])
        return dots[1:], module

    def _inverse(self, dots: str, module: str) -> tuple[str, str]:
        parts = module.split(".") if module else []
        if len(dots) == 1 and parts[: len(self.prefix)] == list(self.prefix):
            return ".", ".".join(parts[len(self.prefix) :])
        return dots + ".", module


def _rewrite(source: str, change: Callable[[str, str], tuple[str, str]]) -> str:
    """Apply ``change(dots, module) -> (dots, module)`` to each top-level relative import."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source  # the drift check reports it
    lines = source.splitlines(keepends=True)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            index = node.lineno - 1
            match = _HEAD.match(lines[index])
            if match is None:
                continue
            dots, module = change(match[2], match[3])
            lines[index] = f"{match[1]}{dots}{module}{match[4]}" + lines[index][match.end() :]
    return "".join(lines)


def place(out: Path, servicer_file: str | None, file_name: str) -> Placement:
    """The placement for ``--servicer-file`` (``None``: ``OUT/<file_name>``)."""
    if servicer_file is None:
        return Placement(out / file_name)
    path = Path(servicer_file)
    if path.suffix != ".py" or not path.stem.isidentifier():
        raise GenerationError(f"--servicer-file {servicer_file}: not a Python module file name")
    home = Path(os.path.abspath(path.parent))
    target = Path(os.path.abspath(out))
    if home == target:
        return Placement(path, ())
    try:
        below = target.relative_to(home).parts
    except ValueError:
        raise GenerationError(
            f"--servicer-file {servicer_file}: the servicer must be in OUT ({out}) or in a "
            "package that contains it (e.g. myplugin/servicer.py with -o myplugin/gen), so "
            "that the two can import each other"
        ) from None
    for depth in range(len(below)):
        directory = home.joinpath(*below[:depth])
        if not (directory / "__init__.py").is_file():
            raise GenerationError(
                f"--servicer-file {servicer_file}: {directory} is not a package (no "
                "__init__.py), so the generated package cannot import the servicer from it"
            )
    if not all(part.isidentifier() for part in below):
        raise GenerationError(f"-o {out}: not importable below {home}")
    return Placement(path, below)
