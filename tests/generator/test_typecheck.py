"""``mypy --strict``: generated code plus user code that uses it; a pinned negative suite.

``typing_cases/check_ok.py`` must type-check cleanly against the generated sample package;
``typing_cases/check_bad.py`` must get exactly the errors its ``# E: code`` comments list (wrong
request type, awaiting a stream, wrong bidi message, wrong return or yield, bad override, strict
mode missing an RPC, a structurally wrong servicer …). One mypy run covers both files and the
generated packages, to keep the suite fast.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .conftest import HERE, mypy

CASES = HERE / "typing_cases"
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<msg>.*)  \[(?P<code>[\w-]+)\]$")


def _expected(path: Path) -> set[tuple[int, str]]:
    expected = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = re.search(r"  # E: ([\w-]+)$", line)
        if match:
            expected.add((number, match[1]))
    return expected


def test_mypy_strict(sample_out: Path, kv_out: Path) -> None:
    root = sample_out.parent.parent.parent  # <tmp>/ holding app/gen/sample
    for case in ("check_ok.py", "check_bad.py"):
        shutil.copy(CASES / case, root / case)
    shutil.copytree(kv_out, root / "kvplugin", dirs_exist_ok=True)
    errors = mypy(["check_ok.py", "check_bad.py", "app", "kvplugin"], root)
    unexpected = [e for e in errors if not e.startswith("check_bad.py:")]
    assert not unexpected, "\n".join(unexpected)
    got = set()
    for line in errors:
        match = _ERROR.match(line)
        assert match, line
        got.add((int(match["line"]), match["code"]))
    expected = _expected(CASES / "check_bad.py")
    assert got == expected, "\n".join(errors)
