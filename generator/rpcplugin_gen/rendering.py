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
    indented line if they fit, else one item per line with a trailing comma. Lines without a
    bracket are left as they are.
    """
    return "\n".join(_fit_line(line) for line in text.split("\n"))


def _fit_line(line: str) -> str:
    if len(line) <= LINE_LENGTH or "(" not in line:
        return line
    indent = line[: len(line) - len(line.lstrip(" "))]
    start = line.index("(")
    items: list[str] = []
    depth, item_start, quote, i = 0, start + 1, "", start + 1
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in "}]" or (char == ")" and depth > 0):
            depth -= 1
        elif char == ")":
            break
        elif char == "," and depth == 0:
            items.append(line[item_start:i].strip())
            item_start = i + 1
        i += 1
    last = line[item_start:i].strip()
    if last:
        items.append(last)
    return _bracketed(indent, line[len(indent) : start], items, line[i:])


def _docstring_block(text: str, indent: str) -> str:
    """A ``{% filter docstring(indent) %}`` block: its text as a docstring literal line."""
    literal = docstring(text, indent)
    return f"{literal}\n" if literal else ""


def _bracketed(indent: str, head: str, items: Sequence[str], close: str) -> str:
    joined = ", ".join(items)
    line = f"{indent}{head}({joined}{close}"
    if len(line) <= LINE_LENGTH:
        return line
    if len(indent) + 4 + len(joined) <= LINE_LENGTH and len(indent) + len(close) <= LINE_LENGTH:
        return f"{indent}{head}(\n{indent}    {joined}\n{indent}{close}"
    inner = "".join(f"{indent}    {item},\n" for item in items)
    return f"{indent}{head}(\n{inner}{indent}{close}"


def docstring(text: str, indent: str) -> str:
    """A docstring literal at ``indent``, laid out as ``ruff format`` would leave it."""
    body = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    if not body:
        return ""
    lines = body.split("\n")
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
