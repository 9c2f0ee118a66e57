"""The docs cannot drift from the code: the settings table mirrors ``config.SETTINGS``."""

from __future__ import annotations

import re
from pathlib import Path

from rpcplugin.config import SETTINGS

DOCS = Path(__file__).resolve().parent.parent / "docs"


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
