"""Writing an output package: the CLI's write policy, applied all-or-nothing.

- Generated files (``# @generated`` header with a content hash) are replaced on every run, and
  deleted when no proto produces them any more. One whose hash no longer matches was edited by
  hand: the run stops unless ``--force``. A file without our header in a generated file's place
  is somebody else's: the run stops unless ``--force``.
- ``create-only`` files (``__init__.py``, ``py.typed``) are written only if absent; a user's
  ``__init__.py`` is never touched.

Every check happens before the first write, and new content is staged in a temporary directory
next to the target and moved into place with ``os.replace``, so bad input or an unwritable
directory leaves the output as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .codegen import OutputFile, generated_state
from .errors import GenerationError

_SKIP_DIRS = {"__pycache__", ".git", ".venv", "node_modules"}


@dataclass(slots=True)
class Plan:
    """What a run would change in the output directory."""

    root: Path
    write: list[OutputFile] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    unchanged: int = 0
    blocked: list[str] = field(default_factory=list)
    """Files in the way: hand-edited generated files or files that are not ours."""

    @property
    def stale(self) -> bool:
        """Whether the directory differs from what the protos generate."""
        return bool(self.write or self.delete or self.blocked)


def _generated_files(root: Path) -> Iterator[str]:
    """Every ``.py``/``.pyi`` under ``root`` carrying our header (relative, ``/``-separated)."""
    if not root.is_dir():
        return
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith((".py", ".pyi")):
                path = Path(directory, name)
                content = _read(path)
                if content is not None and generated_state(content) != "foreign":
                    yield path.relative_to(root).as_posix()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def plan(root: Path, files: dict[str, OutputFile], *, force: bool = False) -> Plan:
    """Compare ``files`` with the directory; no writes."""
    result = Plan(root)
    if root.exists() and not root.is_dir():
        raise GenerationError(f"output {root} exists and is not a directory")
    for path, file in sorted(files.items()):
        target = root / path
        current = _read(target) if target.is_file() else None
        if target.exists() and not target.is_file():
            raise GenerationError(f"{target} is in the way of a generated file (not a file)")
        if file.policy == "create-only":
            if not target.exists():
                result.write.append(file)
            else:
                result.unchanged += 1
            continue
        if current == file.content:
            result.unchanged += 1
            continue
        if current is not None:
            state = generated_state(current)
            if state != "intact" and not force:
                result.blocked.append(
                    f"{target}: "
                    + (
                        "generated file was edited by hand"
                        if state == "edited"
                        else "not a file rpcplugin-gen wrote"
                    )
                )
                continue
        result.write.append(file)
    for path in _generated_files(root):
        if path not in files:
            state = generated_state(_read(root / path) or "")
            if state == "intact" or force:
                result.delete.append(path)
            else:
                result.blocked.append(f"{root / path}: stale generated file was edited by hand")
    return result


def apply(change: Plan) -> None:
    """Carry out a plan. Raises :class:`GenerationError` (before any change) if blocked."""
    if change.blocked:
        raise GenerationError(
            "refusing to overwrite (use --force):\n  " + "\n  ".join(change.blocked)
        )
    root = change.root
    if not change.write and not change.delete:
        return
    parent = _existing_ancestor(root)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GenerationError(f"cannot write to {parent}: permission denied")
    try:
        if not root.exists():
            _create_tree(root, change)
        else:
            _update_tree(root, change)
    except OSError as exc:
        raise GenerationError(f"cannot write to {root}: {exc.strerror or exc}") from exc


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _create_tree(root: Path, change: Plan) -> None:
    """A new output directory: build it beside the target, then rename it into place."""
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        for file in change.write:
            target = staging / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file.content, encoding="utf-8")
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _update_tree(root: Path, change: Plan) -> None:
    """An existing directory: stage every file first, then move each into place."""
    staging = Path(tempfile.mkdtemp(prefix=".rpcplugin-gen.", dir=root))
    try:
        staged: list[tuple[Path, Path]] = []
        for number, file in enumerate(change.write):
            temporary = staging / str(number)
            temporary.write_text(file.content, encoding="utf-8")
            staged.append((temporary, root / file.path))
        for temporary, target in staged:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, target)
        for path in change.delete:
            (root / path).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
