"""The user's ``servicer.py``: written once, never overwritten, checked for drift.

The skeleton has one class per service (a subclass of the generated ``XServicer``) with a stub
per RPC that delegates to the base (so it answers UNIMPLEMENTED until filled in), and ``main()``,
which ``python -m pkg`` runs.

On later runs the file is parsed with :mod:`ast` (never rewritten) and compared with the protos:

- an RPC with no method in its class (added to the proto since) — ``added``;
- a method whose RPC no longer exists, or a class whose service is gone — ``removed``;
- a method whose request/response type or streaming no longer matches — ``changed``.

:func:`append_stubs` inserts stubs for added RPCs at the end of their class, and classes for
added services before ``main()``, by line number; existing lines are left untouched.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__, naming, rendering
from .codegen import Binding, Package
from .errors import GenerationError
from .model import MessageRef, Module, Rpc, Service

FILE_NAME = "servicer.py"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    """``added``, ``removed`` or ``changed``."""
    where: str
    """``Class.method`` in servicer.py (or the service for a missing class)."""
    message: str

    def __str__(self) -> str:
        mark = {"added": "+", "removed": "-", "changed": "~"}[self.kind]
        return f"{mark} {self.where}: {self.message}"


@dataclass(slots=True)
class Drift:
    findings: list[Finding] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.findings)


_SKELETON_NAMES = frozenset(
    {"annotations", "AsyncIterator", "NoReturn", "Unimplemented", "plugin", "main"}
)
"""What ``servicer.py.j2`` imports and defines at module level."""


class _Names:
    """Import aliases the skeleton uses for generated and well-known modules."""

    def __init__(self, package: Package) -> None:
        modules: dict[tuple[str, ...], Module] = {}
        for b in package.bindings:
            modules[b.file.rpc_module.path] = b.file.rpc_module
            for rpc in b.service.rpcs:
                for ref in (rpc.request, rpc.response):
                    modules.setdefault(ref.module.path, ref.module)
        self.modules = modules
        self.aliases = naming.unique_aliases(sorted(modules))
        # a class named like a name the skeleton imports or defines would hide it
        taken = {*_SKELETON_NAMES, *self.aliases.values()}
        self.classes: dict[str, str] = {}
        for b in package.bindings:
            cls = b.cls
            while cls in taken:
                cls += "Impl"
            taken.add(cls)
            self.classes[b.service.full_name] = cls

    def message(self, ref: MessageRef) -> str:
        return f"{self.aliases[ref.module.path]}.{ref.qualname}"

    def imports(
        self, paths: Sequence[tuple[str, ...]] | None = None, *, with_plugin: bool = True
    ) -> list[str]:
        """Import lines for ``paths`` (all by default), grouped like isort, names combined;
        ``with_plugin`` (a new file) adds ``plugin`` to the package's own ``from . import`` line
        and imports ``Unimplemented``, which the stubs raise."""
        wanted = sorted(self.modules) if paths is None else sorted(paths)
        external: dict[str, list[str]] = {}
        local: dict[str, list[str]] = {}
        for path in wanted:
            module = self.modules[path]
            line = rendering.import_line((), path, module.local, self.aliases[path])
            source, _, names = line.removeprefix("from ").partition(" import ")
            (local if module.local else external).setdefault(source, []).append(names)
        if with_plugin:
            local.setdefault(".", []).append("plugin")
            external.setdefault("rpcplugin.servicer", []).append("Unimplemented")
        lines = [line for m, n in sorted(external.items()) for line in _combined(m, n)]
        if lines and local:
            lines.append("")
        lines += [line for m, n in sorted(local.items()) for line in _combined(m, n)]
        return lines


def _combined(module: str, names: list[str]) -> list[str]:
    """isort's layout: plain names share one line, each aliased name gets its own."""
    plain = sorted(n for n in names if " as " not in n)
    aliased = sorted(n for n in names if " as " in n)
    lines = [f"from {module} import {', '.join(plain)}"] if plain else []
    return lines + [f"from {module} import {n}" for n in aliased]


@dataclass(frozen=True, slots=True)
class _StubView:
    """One RPC as ``servicer_class.py.j2`` writes its stub."""

    rpc: Rpc
    request: str
    """Its message types as the file spells them: ``svc_pb2.GetRequest``."""
    response: str


@dataclass(frozen=True, slots=True)
class _ClassView:
    """One service as ``servicer_class.py.j2`` writes its class."""

    service: Service
    cls: str
    base: str
    """The generated base class as the file spells it: ``svc_rpc.GreeterServicer``."""
    arg: str
    """Its keyword argument of ``plugin.serve()``."""
    rpcs: list[_StubView]


def _stub_view(names: _Names, rpc: Rpc) -> _StubView:
    return _StubView(rpc, names.message(rpc.request), names.message(rpc.response))


def _class_view(names: _Names, binding: Binding) -> _ClassView:
    service = binding.service
    base = f"{names.aliases[binding.file.rpc_module.path]}.{service.servicer}"
    rpcs = [_stub_view(names, rpc) for rpc in service.rpcs]
    return _ClassView(service, names.classes[service.full_name], base, binding.arg, rpcs)


def _macros() -> Any:
    """The macros of ``servicer_class.py.j2``: ``stub(view)`` and ``service_class(view)``."""
    return rendering.environment().get_template("servicer_class.py.j2").module


def render(package: Package) -> str:
    """The skeleton for a new ``servicer.py``."""
    names = _Names(package)
    rpcs = [r for b in package.bindings for r in b.service.rpcs]
    return rendering.render(
        rendering.environment(),
        "servicer.py.j2",
        version=__version__,
        protos=", ".join(package.protos),
        streaming=any(r.client_streaming or r.server_streaming for r in rpcs),
        imports=names.imports(),
        classes=[_class_view(names, b) for b in package.bindings],
    )


# --- drift ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _UserClass:
    node: ast.ClassDef
    methods: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]
    declined: set[str] = field(default_factory=set)
    """RPCs its ``@not_implemented(...)`` decorator names: not implemented on purpose."""


def _declined(node: ast.ClassDef) -> set[str]:
    """The names given to a ``@not_implemented(...)`` class decorator (however imported)."""
    names: set[str] = set()
    for decorator in node.decorator_list:
        if not isinstance(decorator, ast.Call):
            continue
        func = decorator.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called == "not_implemented":
            names |= {
                a.value
                for a in decorator.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            }
    return names


class _Reader:
    """Resolves names in the user's file to output-package module paths via its imports."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.modules: dict[str, tuple[str, ...]] = {}  # alias -> module path
        self.names: dict[str, tuple[tuple[str, ...], str]] = {}  # name -> (module path, attr)
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                base = tuple(filter(None, (node.module or "").split(".")))
                if node.level > 1:
                    continue  # above the package: not ours
                for alias in node.names:
                    local = alias.asname or alias.name
                    self.modules[local] = (*base, alias.name)
                    if base:
                        self.names[local] = (base, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.modules[alias.asname] = tuple(alias.name.split("."))

    def resolve(self, node: ast.expr) -> tuple[tuple[str, ...], str] | None:
        """``alias.Name.Inner`` → (module path, ``Name.Inner``)."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.reverse()
        if node.id in self.modules and parts:
            return self.modules[node.id], ".".join(parts)
        if node.id in self.names:
            module, attr = self.names[node.id]
            return module, ".".join([attr, *parts])
        return None

    def classes(self) -> Iterator[ast.ClassDef]:
        for node in self.tree.body:
            if isinstance(node, ast.ClassDef):
                yield node


def _find_classes(reader: _Reader, package: Package) -> dict[str, _UserClass]:
    """User classes by service full name, found through their generated base class."""
    wanted: dict[tuple[tuple[str, ...], str], Binding] = {}
    for b in package.bindings:
        wanted[(b.file.rpc_module.path, b.service.servicer)] = b
        wanted[(b.file.rpc_module.path, b.service.name)] = b
        wanted[(b.file.rpc_module.path, b.service.handlers)] = b
    found: dict[str, _UserClass] = {}
    for node in reader.classes():
        for base in node.bases:
            target = reader.resolve(base)
            if target in wanted:
                methods = {
                    n.name: n
                    for n in node.body
                    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                }
                found[wanted[target].service.full_name] = _UserClass(node, methods, _declined(node))
    return found


def _rpc_modules(reader: _Reader) -> Iterator[tuple[ast.ClassDef, tuple[str, ...], str]]:
    for node in reader.classes():
        for base in node.bases:
            target = reader.resolve(base)
            if target and target[0] and target[0][-1].endswith("_rpc"):
                yield node, target[0], target[1]


_STREAM_TYPES = frozenset(
    {"AsyncIterator", "AsyncIterable", "AsyncGenerator", "Iterator", "Iterable", "Generator"}
    | {"RequestStream"}
)
"""Annotations of a stream, in an ``async def`` or a plain ``def`` handler."""


def _annotation_message(
    reader: _Reader, node: ast.expr | None
) -> tuple[bool, tuple[tuple[str, ...], str] | None]:
    """(is a stream, (module path, qualname)) of an annotation like ``AsyncIterator[x_pb2.M]``
    or ``Iterator[x_pb2.M]``."""
    if node is None:
        return False, None
    if isinstance(node, ast.Subscript):
        outer = node.value
        name = outer.attr if isinstance(outer, ast.Attribute) else getattr(outer, "id", "")
        if name in _STREAM_TYPES:
            inner = node.slice.elts[0] if isinstance(node.slice, ast.Tuple) else node.slice
            return True, reader.resolve(inner)
    return False, reader.resolve(node)


def _changes(reader: _Reader, rpc: Rpc, func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    problems: list[str] = []
    args = [*func.args.posonlyargs, *func.args.args]
    if len(args) >= 2:
        streaming, message = _annotation_message(reader, args[1].annotation)
        if args[1].annotation is not None:
            if streaming != rpc.client_streaming:
                problems.append(
                    "the request is a stream in the proto"
                    if rpc.client_streaming
                    else "the request is no longer a stream"
                )
            if message is not None and message != (rpc.request.module.path, rpc.request.qualname):
                problems.append(f"the request type is now {rpc.request.full_name}")
    streaming, message = _annotation_message(reader, func.returns)
    if func.returns is not None:
        if streaming != rpc.server_streaming:
            problems.append(
                "the response is a stream in the proto"
                if rpc.server_streaming
                else "the response is no longer a stream"
            )
        if message is not None and message != (rpc.response.module.path, rpc.response.qualname):
            problems.append(f"the response type is now {rpc.response.full_name}")
    return problems


def drift(source: str, package: Package) -> Drift:
    """How ``servicer.py`` (its ``source``) differs from the services in ``package``."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise GenerationError(f"cannot parse {FILE_NAME}: {exc.msg} (line {exc.lineno})") from exc
    reader = _Reader(tree)
    found = _find_classes(reader, package)
    names = _Names(package)
    result = Drift()
    for b in package.bindings:
        service = b.service
        user = found.get(service.full_name)
        if user is None:
            result.findings.append(
                Finding(
                    "added",
                    service.full_name,
                    f"no class implements this service ({service.location}); "
                    f"--add-stubs appends class {names.classes[service.full_name]}",
                )
            )
            continue
        attrs = {rpc.attr: rpc for rpc in service.rpcs}
        for name in sorted(user.declined - attrs.keys()):
            result.findings.append(
                Finding(
                    "removed",
                    f"{user.node.name}.{name}",
                    f"@not_implemented names it, but {service.full_name} has no such rpc "
                    f"(line {user.node.lineno})",
                )
            )
        for rpc in service.rpcs:
            func = user.methods.get(rpc.attr)
            where = f"{user.node.name}.{rpc.attr}"
            if func is None and rpc.attr in user.declined:
                continue  # left to the base's UNIMPLEMENTED on purpose
            if func is None:
                result.findings.append(
                    Finding(
                        "added",
                        where,
                        f"rpc {rpc.name} ({rpc.location}) has no method; "
                        f"it answers UNIMPLEMENTED (--add-stubs appends a stub)",
                    )
                )
                continue
            for problem in _changes(reader, rpc, func):
                result.findings.append(Finding("changed", where, f"{problem} ({rpc.location})"))
        for name, func in user.methods.items():
            if name.startswith("_") or name in attrs:
                continue
            if _looks_like_rpc(reader, func):
                result.findings.append(
                    Finding(
                        "removed",
                        f"{user.node.name}.{name}",
                        f"{service.full_name} has no such rpc any more (line {func.lineno})",
                    )
                )
    known = {
        (b.file.rpc_module.path, n)
        for b in package.bindings
        for n in (b.service.servicer, b.service.name, b.service.handlers)
    }
    for node, module, attr in _rpc_modules(reader):
        if (module, attr) not in known:
            result.findings.append(
                Finding(
                    "removed",
                    node.name,
                    f"its base {attr} is no longer generated (line {node.lineno})",
                )
            )
    return result


def _looks_like_rpc(reader: _Reader, func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A method shaped like an RPC handler: ``(self, request, /)`` or a message-typed request.

    Helper methods of the user's class are not reported as leftovers of removed RPCs.
    """
    if len(func.args.posonlyargs) == 2 and not func.args.args:
        return True
    args = [*func.args.posonlyargs, *func.args.args]
    if len(args) != 2:
        return False
    _, message = _annotation_message(reader, args[1].annotation)
    return message is not None and bool(message[0]) and message[0][-1].endswith("_pb2")


# --- appending stubs --------------------------------------------------------------------------


def append_stubs(source: str, package: Package) -> tuple[str, list[str]]:
    """``source`` with stubs for RPCs and classes for services it lacks; and what was added.

    Insertion only: at the end of each class body, before ``main()`` (or at the end) for new
    classes, and after the last top-level import for new imports.
    """
    tree = ast.parse(source)
    reader = _Reader(tree)
    found = _find_classes(reader, package)
    names = _Names(package)
    for alias, path in reader.modules.items():  # spell modules the file imports its own way
        if path in names.aliases:
            names.aliases[path] = alias
    macros = _macros()
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    inserts: list[tuple[int, str]] = []  # (line index to insert before, text)
    added: list[str] = []
    needed: set[tuple[str, ...]] = set()
    new_classes: list[str] = []
    for b in package.bindings:
        user = found.get(b.service.full_name)
        if user is None:
            new_classes.append(str(macros.service_class(_class_view(names, b))))
            cls = names.classes[b.service.full_name]
            added.append(f"class {cls} ({b.service.full_name}); add {b.arg}={cls}() to main()")
            needed.add(b.file.rpc_module.path)
            for rpc in b.service.rpcs:
                needed.update({rpc.request.module.path, rpc.response.module.path})
            continue
        missing = [
            rpc
            for rpc in b.service.rpcs
            if rpc.attr not in user.methods and rpc.attr not in user.declined
        ]
        if not missing:
            continue
        end = user.node.end_lineno or len(lines)
        text = "".join("\n" + str(macros.stub(_stub_view(names, rpc))) for rpc in missing)
        inserts.append((end, text))
        for rpc in missing:
            added.append(f"{user.node.name}.{rpc.attr}")
            needed.update({rpc.request.module.path, rpc.response.module.path})
    if new_classes:
        main = next(
            (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"),
            None,
        )
        at = (main.lineno - 1 - len(main.decorator_list)) if main else len(lines)
        text = "".join(c + "\n\n" for c in new_classes)
        inserts.append((at, text if main else "\n\n" + text.rstrip("\n") + "\n"))
    present = set(reader.modules.values())
    missing_imports = sorted(p for p in needed if p not in present)
    uses_iterator = any("AsyncIterator[" in text for _, text in inserts)
    import_lines: list[str] = []
    if uses_iterator and "AsyncIterator" not in reader.names:
        import_lines.append("from collections.abc import AsyncIterator")
    if inserts and "Unimplemented" not in reader.names:
        import_lines.append("from rpcplugin.servicer import Unimplemented")
    import_lines += [line for line in names.imports(missing_imports, with_plugin=False) if line]
    if import_lines:
        last_import = max(
            (
                n.end_lineno or n.lineno
                for n in tree.body
                if isinstance(n, ast.Import | ast.ImportFrom)
            ),
            default=0,
        )
        inserts.append((last_import, "".join(f"{line}\n" for line in import_lines)))
    for index, text in sorted(inserts, key=lambda item: item[0], reverse=True):
        lines.insert(index, text)
    return "".join(lines), added
