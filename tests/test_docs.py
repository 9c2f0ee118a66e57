"""The docs cannot drift from the code.

* The settings table in docs/configuration.md is rendered from ``config.SETTINGS``
  (``python -m tests.test_docs`` rewrites it).
* A code block preceded by ``<!-- mirror: PATH#REGION -->`` must equal the region between
  ``[REGION]`` and ``[/REGION]`` comment lines in PATH (dedented); the files themselves run in
  the test suite (examples are tested by tests/examples/).
* Every ``python`` or ``proto`` block is either such a mirror or marked
  ``<!-- illustrative -->`` (a fragment that is not meant to run on its own).
* No tracked file points at a file outside the repository: not by name (the notes kept next to
  it), not by a relative path or link that climbs out of it. docs/protocol.md is where the
  protocol is written down; the sections cited as ``docs/protocol.md §N`` exist, and so do the
  headings that links point at (``page.md#anchor``).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from rpcplugin.config import SETTINGS, settings_markdown

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md"), *(ROOT / "examples").glob("*/README.md")])
BLOCK = re.compile(r"(?:<!-- (?P<marker>[^>]*) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


SETTINGS_START = "<!-- settings-table"
SETTINGS_END = "<!-- end settings-table -->"


def _settings_block(text: str) -> str:
    """The table between the markers (the line of the start marker itself excluded)."""
    return text.split(SETTINGS_START)[1].split("\n", 1)[1].split(SETTINGS_END)[0]


def test_settings_table_is_rendered_from_config() -> None:
    """The table is ``settings_markdown()``, byte for byte: a setting added, renamed, given
    another default or meaning in ``config.SETTINGS`` shows up here until the page is rewritten
    (``python -m tests.test_docs``)."""
    documented = _settings_block((DOCS / "configuration.md").read_text())
    assert documented == settings_markdown(), (
        "docs/configuration.md's settings table differs from rpcplugin.config.SETTINGS: "
        "run `python -m tests.test_docs` to rewrite it"
    )
    rows = [line.split("|")[1].strip().strip("`") for line in documented.splitlines()[2:]]
    assert rows == [setting.name for setting in SETTINGS], "a setting is missing or listed twice"


def rewrite_settings_table() -> None:
    """Rewrite docs/configuration.md's settings table from ``config.SETTINGS``."""
    page = DOCS / "configuration.md"
    text = page.read_text()
    page.write_text(text.replace(_settings_block(text), settings_markdown(), 1))


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


# ---- nothing in the repository points outside it ----

OUTSIDE_NAMES = re.compile(
    r"PROTOCOL\.md|GENERATOR[-_ ]NOTES|PEERS\.md|shared/+docs|\.\./+shared\b|/work/+shared"
)
"""Notes that live next to the repository, not in it. docs/protocol.md states the protocol."""
MARKDOWN_LINK = re.compile(
    r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\[[^\]]+\]:\s*(\S+)", re.M
)
HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
PARENT_PATH = re.compile(r"(?<![\w$).\-/])((?:\.\./)+[\w.-]+(?:/[\w.-]+)*)")
"""A relative path that climbs (``../x/y``), anywhere in any text file."""


def _tracked_files() -> list[Path]:
    """The files git tracks, or (outside a git checkout) every file but caches and builds."""
    import subprocess

    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
        ).stdout.decode()
        return [ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = re.compile(r"(^|/)(\.[^/]*|__pycache__|[^/]*\.egg-info|out|demo-out)(/|$)")
        return [
            path
            for path in ROOT.rglob("*")
            if path.is_file() and not skip.search(str(path.relative_to(ROOT)))
        ]


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def outside_references(path: Path, text: str, root: Path = ROOT) -> list[str]:
    """Every way ``text`` (the content of ``path``) points at a file outside ``root``."""
    found = [f"names {m.group(0)!r}" for m in OUTSIDE_NAMES.finditer(text)]
    targets = [m.group(1) for m in PARENT_PATH.finditer(text)]
    if path.suffix == ".md":
        targets += [a or b for a, b in MARKDOWN_LINK.findall(text)]
        targets += HTML_LINK.findall(text)
    for target in targets:
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "/")):
            continue  # a URL, an anchor, or an absolute path (not relative to the repository)
        resolved = (path.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(root.resolve()):
            found.append(f"points at {target!r}, outside the repository")
    return list(dict.fromkeys(found))


def test_no_tracked_file_references_a_file_outside_the_repository() -> None:
    problems = []
    for path in _tracked_files():
        text = _text(path)
        if text is None:
            continue
        problems += [f"{path.relative_to(ROOT)}: {p}" for p in outside_references(path, text)]
    assert problems == [], "\n".join(problems)


UP = "../"  # spelt so, the samples below do not trip the check on this very file


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("docs/x.md", "the wire format (" + "PROTOCOL" + ".md §3)"),
        ("runtime/rpcplugin/x.py", '"""As GENERATOR' + '-NOTES §5 says."""'),
        ("bench/NOTES.md", "This matches PEERS" + ".md."),
        ("docs/x.md", f"see [the notes]({UP}{UP}shared/notes/x.md)"),
        ("docs/x.md", f'see <a href="{UP}{UP}elsewhere.md">there</a>'),
        ("docs/x.md", f"[ref]: {UP}{UP}elsewhere.md"),
        ("docs/x.md", f"[ref](<{UP}{UP}elsewhere.md>)"),
        ("tests/x.py", f"# from {UP}{UP}elsewhere/y.txt"),
        ("tests/x.py", f"# {UP}" + "shared/x"),
    ],
    ids=lambda value: value if " " not in value else "sample",
)
def test_outside_references_are_found(tmp_path: Path, name: str, text: str) -> None:
    assert outside_references(tmp_path / name, text, root=tmp_path) != []


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "docs/x.md",
            "see [protocol.md](protocol.md#3-the-handshake-line) and docs/protocol.md §3",
        ),
        ("docs/x.md", "[example](../examples/callback) and [site](https://grpc.io/docs/)"),
        ("examples/a/README.md", "[kv](../kv-go-host/kv.proto)"),
        ("Makefile", "cd runtime && ../$(BIN)/python -m grpc_tools.protoc"),
        ("tests/x.py", 'GOCODE = Path("/usr/share/gocode")'),
    ],
)
def test_references_inside_the_repository_pass(tmp_path: Path, name: str, text: str) -> None:
    assert outside_references(tmp_path / name, text, root=tmp_path) == []


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to
    hyphens, ``-1``, ``-2``... for repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_links_to_headings_exist() -> None:
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#:]*)#([^)]+)\)", page.read_text()):
            linked = page if not target else (page.parent / target)
            if linked.suffix != ".md":
                continue
            assert anchor in _anchors(linked), (
                f"{page.relative_to(ROOT)} links to {target}#{anchor}"
            )


def test_citations_of_protocol_sections_exist() -> None:
    """``docs/protocol.md §N.M`` in code and docs names a numbered heading of that page."""
    numbers = {
        m.group(1)
        for m in re.finditer(
            r"^#+\s+(\d+(?:\.\d+)?)\.?\s", (DOCS / "protocol.md").read_text(), re.M
        )
    }
    cited = re.compile(r"protocol\.md,? §(\d+(?:\.\d+)?)")
    for path in _tracked_files():
        text = _text(path)
        for number in cited.findall(text or ""):
            assert number in numbers, f"{path.relative_to(ROOT)} cites docs/protocol.md §{number}"


def test_the_checklist_names_test_files_that_exist() -> None:
    """Every checklist row of docs/protocol.md says where it is tested: the files exist, and each
    one names the ID (a ``test_p18_...`` function, a ``P18`` in its text, or ``p15_p19`` in its
    file name)."""
    text = (DOCS / "protocol.md").read_text()
    rows = re.findall(r"^\| ([PH])(\d\d) \|.*\| (.*) \|$", text, re.M)
    assert len(rows) == 32 + 9, "the checklist has a row per P and H line"
    for side, number, where in rows:
        files = re.findall(r"`([a-z_/]*test_[a-z0-9_]+\.py)`", where)
        if not files:
            assert "not yet" in where, f"{side}{number} says neither where nor why not"
            continue
        for name in files:
            path = ROOT / name if name.startswith("tests/") else ROOT / "tests" / name
            assert path.is_file(), f"docs/protocol.md names {name}, which does not exist"
            ranges = re.findall(rf"{side.lower()}(\d\d)_{side.lower()}(\d\d)", path.name)
            covered = any(int(low) <= int(number) <= int(high) for low, high in ranges)
            named = re.search(
                rf"test_\w*{side.lower()}{number}_|\b{side}{number}\b", path.read_text()
            )
            assert covered or named, f"{name} does not mention {side}{number}"


if __name__ == "__main__":
    rewrite_settings_table()
