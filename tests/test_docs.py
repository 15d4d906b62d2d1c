"""The README and the docs hold together: every relative link leads to a file that exists and,
with an ``#anchor``, to a heading of it; every page of docs/ is linked from the README; the README
stays a short front page; and docs/ARCHITECTURE.md draws the conformance package's layers as
tests/test_layers.py lists them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .test_layers import LAYERS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def prose(markdown: str) -> str:
    """``markdown`` without fenced blocks (a ``# comment`` in a shell block is no heading)."""
    return FENCE.sub("", markdown)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text (links and code marks dropped), lower case,
    punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(markdown)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(markdown: str) -> list[str]:
    """The targets of ``markdown``'s inline links outside code."""
    return LINK.findall(CODE_SPAN.sub("", prose(markdown)))


def relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in filter(relative, links(page.read_text(encoding="utf-8"))):
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (where.suffix != ".md" or anchor not in anchors(
                where.read_text(encoding="utf-8"))):
            broken.append(f"{target}: no heading #{anchor} in {where.relative_to(ROOT)}")
    assert not broken, broken


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    """The helpers the check relies on: code is no link, headings get GitHub's anchors."""
    text = ("# The validator: `bulkreg lint`\n## Notes\n## Notes\n"
            "```sh\n# not a heading [x](missing.md)\n```\n"
            "See [a](other.md#notes-1) and `[b](code.md)`, [c](https://example.com).\n")
    assert anchors(text) == {"the-validator-bulkreg-lint", "notes", "notes-1"}
    assert links(text) == ["other.md#notes-1", "https://example.com"]
    assert [t for t in links(text) if relative(t)] == ["other.md#notes-1"]


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve()
              for t in links(README.read_text(encoding="utf-8")) if relative(t)}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, unlinked


def test_the_readme_is_a_front_page() -> None:
    """Issue 15: about 250 lines or fewer; the manual lives in docs/."""
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 250, lines


def test_the_architecture_note_draws_the_layers_of_test_layers() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    drawing = text.split("<!-- layers:start -->", 1)[1].split("<!-- layers:end -->", 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s+(.+?)\s{2,}\S.*\|$", drawing, re.MULTILINE)
    drawn = {int(n): tuple(names.split()) for n, names in rows}
    assert list(drawn) == sorted(drawn, reverse=True), "draw the top layer first"
    assert [drawn[n] for n in sorted(drawn)] == LAYERS
