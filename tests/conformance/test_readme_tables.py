"""The README's checks and behaviour-decisions tables are generated from the code the checks
run; a test fails if they drift (regenerate with the printed snippet)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkreg_conformance import checks, decisions, evidence

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(("marker", "table"), [("checks-table", checks.markdown),
                                               ("decisions-table", decisions.markdown)])
def test_readme_table_matches_the_code(marker: str, table: object) -> None:
    text = README.read_text(encoding="utf-8")
    start, end = f"<!-- {marker}:start -->\n", f"\n<!-- {marker}:end -->"
    assert start in text and end in text, f"README lacks the {marker} markers"
    shown = text.split(start, 1)[1].split(end, 1)[0]
    assert shown == table(), f"regenerate the README's {marker}"  # type: ignore[operator]


def test_every_decision_level_is_a_known_evidence_level() -> None:
    assert {d.evidence for d in decisions.DECISIONS.values()} <= set(evidence.LEVELS)
    assert all(c.evidence in evidence.LEVELS for c in checks.CHECKS.values())
