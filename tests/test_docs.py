"""The docs cannot drift from the code.

* The settings table in docs/configuration.md mirrors ``config.SETTINGS``.
* A code block preceded by ``<!-- mirror: PATH#REGION -->`` must equal the region between
  ``[REGION]`` and ``[/REGION]`` comment lines in PATH (dedented); the files themselves run in
  the test suite (examples are tested by tests/examples/).
* Every ``python`` or ``proto`` block is either such a mirror or marked
  ``<!-- illustrative -->`` (a fragment that is not meant to run on its own).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from rpcplugin.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md"), *(ROOT / "examples").glob("*/README.md")])
BLOCK = re.compile(r"(?:<!-- (?P<marker>[^>]*) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


def _settings_table() -> list[list[str]]:
    text = (DOCS / "configuration.md").read_text()
    block = text.split("<!-- settings-table")[1].split("<!-- end settings-table -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_every_setting_is_documented_once_with_its_default() -> None:
    rows = {re.sub(r"`", "", row[0]): row for row in _settings_table()}
    assert len(rows) == len(_settings_table()), "a setting is listed twice"
    assert set(rows) == {s.name for s in SETTINGS}
    for setting in SETTINGS:
        assert rows[setting.name][1] == setting.set_by
        assert rows[setting.name][2] == setting.default


def _region(path: Path, name: str) -> str:
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().endswith(f"[{name}]"))
    end = next(i for i, line in enumerate(lines) if line.strip().endswith(f"[/{name}]"))
    return textwrap.dedent("\n".join(lines[start + 1 : end])).strip("\n") + "\n"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_are_mirrors_of_tested_files(page: Path) -> None:
    for match in BLOCK.finditer(page.read_text()):
        marker, lang, body = match["marker"] or "", match["lang"], match["body"]
        where = f"{page.relative_to(ROOT)}: block starting {body[:40]!r}"
        if marker.startswith("mirror: "):
            target, _, region = marker[len("mirror: ") :].partition("#")
            assert body == _region(ROOT / target, region), f"{where} drifted from {target}"
        elif lang in ("python", "proto"):
            assert marker == "illustrative", f"{where} is neither a mirror nor illustrative"


def test_pages_link_to_files_that_exist() -> None:
    for page in PAGES:
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / link).exists(), f"{page.relative_to(ROOT)} links to {link}"


CLI_PAGES = [page for page in PAGES if "<!-- cli-output" in page.read_text()]


@pytest.mark.go
@pytest.mark.parametrize("page", CLI_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cli_output_blocks_are_what_the_commands_print(page: Path) -> None:
    """A ``<!-- cli-output -->`` block shows a command and what it prints: run it (in a scratch
    directory with the Go test plugin and the generated calculator, tests/cli/docrun.py) and
    compare line for line, pids, paths, timings, dates and certificate bytes masked."""
    from cli import docrun

    found = docrun.blocks(page)
    assert found, f"{page}: no cli-output block"
    with docrun.scratch() as directory:
        for block in found:
            status, out = docrun.run(block, directory)
            where = f"{page.relative_to(ROOT)}: `{block.command[:60]}`"
            assert status == block.exit, f"{where} exited {status}:\n{out}"
            assert docrun.mask(out).splitlines() == docrun.mask(block.shown).splitlines(), (
                f"{where} printed:\n{out}"
            )


def test_every_cli_subcommand_is_shown_in_docs_cli() -> None:
    from rpcplugin.cli import command

    cli = command()

    text = (DOCS / "cli.md").read_text()
    shown = set(re.findall(r"^\$ rpcplugin (\w+)", text, re.M))
    aliases = {"launch"}  # inspect's other name
    assert set(cli.commands) - aliases <= shown, "a subcommand without a real example"
