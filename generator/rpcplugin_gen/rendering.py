"""The jinja2 environment (one per run, templates compiled once) and its formatting helpers.

Generated code is emitted pre-formatted: ``ruff format`` (line length 100) leaves it unchanged,
so no formatter runs at generation time. Templates write every signature and call on one line,
as it reads; the ``fit`` filter makes the layout decision a formatter would: a line that fits in
100 columns stays as it is, a longer one has its bracket contents moved to one indented line,
or exploded one item per line with a trailing comma (which formatters keep exploded). The
``docstring`` filter turns the prose written in a template into a docstring literal.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import jinja2

LINE_LENGTH = 100


def environment() -> jinja2.Environment:
    """The environment for one generator run."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rpcplugin_gen.templates", "."),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fit=fit, docstring=_docstring_block)
    env.globals.update(pystr=json.dumps)  # a Python string literal
    return env


def fit(text: str) -> str:
    """Every line of ``text`` longer than 100 columns laid out like ruff.

    A line is split at its first opening bracket, ``head(items)close``: the items on one
    indented line if they fit, else one item per line with a trailing comma. An item or a
    return annotation that is still too long is split too: a union one ``| part`` per line
    (a return annotation in parentheses), a subscript at its brackets, a call at its
    parentheses; an assignment whose right side cannot start on its line is parenthesized.
    Lines without a bracket, and single names or strings longer than a line, stay as they are
    (a formatter cannot split them either).
    """
    return "\n".join(_fit_line(line) for line in text.split("\n"))


_SCANNED = re.compile(r"""[()\[\]{},]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""")
"""What :func:`_scan` looks at: brackets, commas and whole string literals (skipped)."""


def _scan(text: str, start: int) -> tuple[list[str], int]:
    """The top-level comma-separated items after the bracket at ``start``, and the index of
    the bracket that closes it (``len(text)`` if none does)."""
    items: list[str] = []
    depth, item_start, end = 0, start + 1, len(text)
    for match in _SCANNED.finditer(text, start + 1):
        char = match[0]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                end = match.start()
                break
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[item_start : match.start()].strip())
            item_start = match.end()
    last = text[item_start:end].strip()
    if last:
        items.append(last)
    return items, end


def _union(text: str) -> list[str]:
    """The top-level parts of ``A[x] | B | None = None``; one part if it is no union."""
    parts: list[str] = []
    depth, begin = 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(" | ", i):
            parts.append(text[begin:i])
            begin = i + 3
    return [*parts, text[begin:]]


def _fit_line(line: str) -> str:
    if len(line) <= LINE_LENGTH:
        return line
    if "(" not in line:
        key, colon, value = line.partition(": ")
        if not (colon and line.endswith(",")):
            return line
        indent = line[: len(line) - len(line.lstrip(" "))]  # a dict entry: value in parentheses
        return f"{key}: (\n{indent}    {value[:-1]}\n{indent}),"
    indent = line[: len(line) - len(line.lstrip(" "))]
    start = line.index("(")
    items, end = _scan(line, start)
    return _bracketed(indent, line[len(indent) : start], items, line[end:])


def _docstring_block(text: str, indent: str) -> str:
    """A ``{% filter docstring(indent) %}`` block: its text as a docstring literal line."""
    literal = docstring(text, indent)
    return f"{literal}\n" if literal else ""


def _bracketed(indent: str, head: str, items: Sequence[str], close: str, opening: str = "(") -> str:
    joined = ", ".join(items)
    line = f"{indent}{head}{opening}{joined}{close}"
    if len(line) <= LINE_LENGTH or not items:
        return line
    if " = " in head and len(f"{indent}{head}{opening}") > LINE_LENGTH and close == ")":
        target, _, value = head.partition(" = ")
        inner = _bracketed(f"{indent}    ", value, items, close, opening)
        if max(map(len, inner.split("\n"))) <= LINE_LENGTH:  # else ruff leaves it unwrapped
            return f"{indent}{target} = (\n{inner}\n{indent})"
    if len(indent) + 4 + len(joined) <= LINE_LENGTH:
        body = f"{indent}    {joined}"
    else:
        body = "\n".join(_item(f"{indent}    ", item) for item in items)
    return f"{indent}{head}{opening}\n{body}\n{_close(indent, close)}"


def _item(indent: str, item: str) -> str:
    """One item of an exploded bracket, with its trailing comma."""
    line = f"{indent}{item},"
    if len(line) <= LINE_LENGTH:
        return line
    parts = _union(item)
    if len(parts) > 1:
        return "\n".join([f"{indent}{parts[0]}", *(f"{indent}| {p}" for p in parts[1:])]) + ","
    return _fit_line(line)


def _close(indent: str, close: str) -> str:
    """The closing line of a bracket: ``) -> Reply:`` with a too-long return annotation split."""
    line = f"{indent}{close}"
    if len(line) <= LINE_LENGTH or not close.startswith(") -> "):
        return line
    end = ": ..." if close.endswith(": ...") else ":"
    annotation = close[len(") -> ") : -len(end)]
    parts = _union(annotation)
    if len(parts) > 1:
        inner = "\n".join(f"{indent}    {'| ' if i else ''}{p}" for i, p in enumerate(parts))
        return f"{indent}) -> (\n{inner}\n{indent}){end}"
    if annotation.endswith("]") and "[" in annotation:
        name = annotation[: annotation.index("[")]
        items, _ = _scan(annotation, len(name))
        return _bracketed(indent, f") -> {name}", items, f"]{end}", "[")
    return line


def docstring(text: str, indent: str) -> str:
    """A docstring literal at ``indent``, laid out as ``ruff format`` would leave it.

    A paragraph with a line longer than 100 columns is reflowed, unless it has indented lines
    (code or a list the author laid out).
    """
    body = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    if not body:
        return ""
    paragraphs = body.split("\n\n")
    quotes = 6 if "\n" not in body else 3  # on the first line: both quotes, or the opening ones
    for number, paragraph in enumerate(paragraphs):
        width = LINE_LENGTH - len(indent)
        lines = paragraph.split("\n")
        too_long = any(
            len(line) > width - (quotes if number == i == 0 else 0) for i, line in enumerate(lines)
        )
        if too_long and not any(line.startswith((" ", "\t")) for line in lines[1:]):
            paragraphs[number] = textwrap.fill(
                " ".join(lines),
                width - (6 if number == 0 else 0),
                break_long_words=False,
                break_on_hyphens=False,
            )
    lines = "\n\n".join(paragraphs).split("\n")
    if body.endswith('"'):
        lines[-1] += " "
    if len(lines) == 1:
        return f'{indent}"""{lines[0]}"""'
    rest = "".join(f"\n{indent}{line}" if line else "\n" for line in lines[1:])
    return f'{indent}"""{lines[0]}{rest}\n{indent}"""'


def relative_import(from_package: Sequence[str], target: Sequence[str]) -> tuple[str, str]:
    """``(from_part, name)`` to import module ``target`` from package ``from_package``.

    Both are paths inside the output package: ``("acme","svc","v1")`` importing
    ``("acme","common","v1","common_pb2")`` → ``("...common.v1", "common_pb2")``.
    """
    *target_package, name = target
    common = 0
    while (
        common < min(len(from_package), len(target_package))
        and from_package[common] == target_package[common]
    ):
        common += 1
    dots = "." * (len(from_package) - common + 1)
    return dots + ".".join(target_package[common:]), name


def import_line(
    from_package: Sequence[str], target: Sequence[str], local: bool, alias: str | None = None
) -> str:
    """An import statement for a module: relative if it is in the output package."""
    if local:
        module, name = relative_import(from_package, target)
    else:
        module, name = ".".join(target[:-1]), target[-1]
    suffix = f" as {alias}" if alias and alias != name else ""
    return f"from {module} import {name}{suffix}"


def render(env: jinja2.Environment, template: str, **context: Any) -> str:
    return env.get_template(template).render(**context)
