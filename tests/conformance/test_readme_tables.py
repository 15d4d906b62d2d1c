"""The checks table (docs/conform.md) and the behaviour-decisions table (docs/decisions.md) are
generated from the code the checks run; a test fails if they drift. Regenerate the text between
a page's markers with ``from bulkreg_conformance import checks, decisions`` and
``checks.markdown()`` or ``decisions.markdown()``."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkreg_conformance import checks, decisions, evidence

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(("page", "marker", "table"), [
    ("conform.md", "checks-table", checks.markdown),
    ("decisions.md", "decisions-table", decisions.markdown),
])
def test_the_docs_table_matches_the_code(page: str, marker: str, table: object) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    start, end = f"<!-- {marker}:start -->\n", f"\n<!-- {marker}:end -->"
    assert start in text and end in text, f"docs/{page} lacks the {marker} markers"
    shown = text.split(start, 1)[1].split(end, 1)[0]
    assert shown == table(), f"regenerate docs/{page}'s {marker}"  # type: ignore[operator]


def test_every_decision_level_is_a_known_evidence_level() -> None:
    assert {d.evidence for d in decisions.DECISIONS.values()} <= set(evidence.LEVELS)
    assert all(c.evidence in evidence.LEVELS for c in checks.CHECKS.values())
