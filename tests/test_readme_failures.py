"""The README's "Bad input and failures" table: at least 30 rows, each naming a test that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rows() -> list[tuple[str, str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Bad input and failures", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 3 and cells[2].startswith("`tests/"):
            rows.append((cells[0], cells[1], cells[2].strip("`")))
    return rows


def test_the_table_names_an_existing_test_in_every_row():
    rows = _rows()
    assert len(rows) >= 30, len(rows)
    for fault, _, node in rows:
        path, _, name = node.partition("::")
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {re.escape(name)}\(", source, re.MULTILINE), f"{fault}: no test {node}"
