"""The evidence document: every citation in the README, the docs and the rule table leads to a
section of docs/evidence.md, and nothing cites a file the repository does not have."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bulkreg_validator import RULES
from bulkreg_validator._report import SOURCE_KEYS, cite, rules_markdown

ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = ROOT / "docs" / "evidence.md"
README = ROOT / "README.md"
# the pages that cite sources, each of which must link into the evidence document
CITING = ("README.md", "docs/rules.md", "docs/lint.md", "docs/decisions.md", "docs/conform.md",
          "docs/evidence.md")


def links_into_evidence(page: Path, text: str) -> list[str | None]:
    """The anchors (``#key``, or None for the whole document) of ``text``'s links to the
    evidence document, written relative to ``page``'s folder as GitHub resolves them."""
    target = os.path.relpath(EVIDENCE, page.parent) if page != EVIDENCE else ""
    link = re.compile(r"\]\(" + re.escape(target) + r"(#[^)]*)?\)")
    return [m[1] for m in link.finditer(text)]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, spaces to '-', punctuation dropped."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_link_into_the_evidence_document_has_its_section() -> None:
    known = anchors(EVIDENCE.read_text(encoding="utf-8"))
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    texts = {str(page.relative_to(ROOT)): (page, page.read_text(encoding="utf-8"))
             for page in pages}
    texts["rule table"] = (ROOT / "docs" / "rules.md", rules_markdown())  # shown in docs/
    for where, (page, text) in texts.items():
        links = links_into_evidence(page, text)
        assert links or where not in (*CITING, "rule table"), f"{where} cites no source"
        for anchor in links:
            assert anchor is None or anchor[1:] in known, (where, anchor)


def test_every_source_key_has_a_section() -> None:
    known = anchors(EVIDENCE.read_text(encoding="utf-8"))
    for key in SOURCE_KEYS:
        assert key.lower().replace(" ", "-") in known, key


@pytest.mark.parametrize("rule", RULES.values(), ids=lambda r: r.id)
def test_every_rule_cites_a_source_of_the_document(rule: object) -> None:
    source = rule.source  # type: ignore[attr-defined]
    assert "facts" not in source
    assert "](evidence.md#" in cite(source), source  # the rule table lives in docs/


def test_nothing_cites_a_file_the_repository_lacks() -> None:
    for path in [README, EVIDENCE, *(ROOT / "docs").glob("*.md"),
                 *(ROOT / "validator").rglob("*.py"), *(ROOT / "schema").rglob("*.py"),
                 *(ROOT / "schema" / "bulkreg_schema").rglob("*.json")]:
        text = path.read_text(encoding="utf-8")
        assert "facts.md" not in text and "facts §" not in text and "facts \\u00a7" not in text, \
            path.relative_to(ROOT)


def test_the_issue_names_its_overclaiming_label_fixed() -> None:
    assert RULES["bulk-empty"].evidence == "inferred"
    text = EVIDENCE.read_text(encoding="utf-8")
    for rule in ("bulk-empty", "auth-keys-pair", "twin-array-null"):
        assert f"`{rule}`" in text
