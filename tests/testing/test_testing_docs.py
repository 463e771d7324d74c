"""docs/testing-clients.md lists the strict client checks exactly as
``imapd.testing.checks.CHECKS`` defines them, so the table cannot go stale:
a check added, renamed or moved to another RFC section fails this test
until the doc says so too."""

from __future__ import annotations

import re
from pathlib import Path

from imapd.testing.checks import CHECKS

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing-clients.md"
_ROW = re.compile(r"^\| `(?P<name>[a-z0-9-]+)` \| (?P<rfc>[^|]+?) \| (?P<summary>[^|]+?) \|$", re.MULTILINE)


def documented_checks(markdown: str) -> dict[str, str]:
    """Check name -> RFC section, from the table of § Strict client checks."""
    start = markdown.index("## Strict client checks")
    end = markdown.index("\n## ", start + 1)
    return {row["name"]: row["rfc"] for row in _ROW.finditer(markdown[start:end])}


def expected_table() -> str:
    """The table as it should read (printed when the test fails, to paste)."""
    rows = [f"| `{info.name}` | {info.rfc} | {info.summary} |" for info in CHECKS.values()]
    return "\n".join(["| check | RFC | the rule |", "| --- | --- | --- |", *rows])


def test_the_doc_lists_every_check_with_its_rfc_section() -> None:
    documented = documented_checks(DOC.read_text(encoding="utf-8"))
    defined = {name: info.rfc for name, info in CHECKS.items()}
    assert documented == defined, "docs/testing-clients.md should have:\n" + expected_table()


def test_a_missing_row_is_noticed() -> None:
    """The parser really reads the table: a doc without one row differs."""
    markdown = DOC.read_text(encoding="utf-8")
    name = next(iter(CHECKS))
    without = "\n".join(line for line in markdown.splitlines() if not line.startswith(f"| `{name}` |"))
    assert name in documented_checks(markdown)
    assert name not in documented_checks(without)
