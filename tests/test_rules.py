"""The rule table is the one registry: every row is wired to what checks it, and vice versa."""

from __future__ import annotations

from pathlib import Path

import pytest

import bulkreg_schema
from bulkreg_validator import LIMITS, RULES, Rule
from bulkreg_validator._checks import Context
from bulkreg_validator._report import rules_markdown
from bulkreg_validator._rules import checks_for

CODES = set(bulkreg_schema.load("DeviceRegistryOperationError")["properties"]["errorCode"]["enum"])


def test_a_rule_has_a_check_exactly_when_a_function_carries_it() -> None:
    for rule in RULES.values():
        assert (rule.check is not None) == (rule.where == "rule"), rule.id


def test_each_check_emits_only_its_own_rules() -> None:
    """Run every check on the corpus: whatever a function emits is a rule whose record names
    that function."""
    seen: set[str] = set()
    functions = {rule.check for rule in RULES.values() if rule.check is not None}
    for case in bulkreg_schema.examples():
        if "payload" not in case:
            continue
        entries = case["payload"]  # bulk: the array; import: the lines' objects
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            for fn in functions:
                ctx = Context(case["mode"], case.get("api_version", "2021-04-12"))

                def emit(rule: str, path: object, message: str, fn: object = fn) -> None:
                    assert RULES[rule].check is fn, (rule, fn)
                    seen.add(rule)

                fn(entry, ctx, emit)
    assert seen == {r.id for r in RULES.values() if r.where == "rule"}


@pytest.mark.parametrize("rule", RULES.values(), ids=lambda r: r.id)
def test_rows_are_well_formed(rule: Rule) -> None:
    assert rule.severity in ("error", "warning")
    assert rule.evidence in ("contract", "documented", "observed", "inferred")
    assert rule.scope in ("request", "entry")
    assert rule.where in ("schema", "parser", "rule", "document")
    assert rule.summary and rule.source
    # every errorCode the validator predicts is one the service definition knows
    assert rule.code is None or rule.code in CODES
    if rule.severity == "error":
        assert rule.code is not None


def test_checks_for_leaves_out_only_checks_that_cannot_fire() -> None:
    full = set(checks_for(Context("bulk", "2021-04-12")))
    quick_import = set(checks_for(Context("import", "2021-04-12", exhaustive=False)))
    old_import = set(checks_for(Context("import", "2018-06-30", exhaustive=False)))
    names = {fn.__name__ for fn in full}
    assert "import_mode_missing" in names and "twin_sections" in names
    assert "twin_sections" not in {fn.__name__ for fn in quick_import}
    assert "twin_sections" in {fn.__name__ for fn in old_import}  # arrays need 2019-10-01
    assert "parent_scopes_version" in {fn.__name__ for fn in old_import}


def test_limits_are_the_documented_numbers() -> None:
    assert LIMITS["twin_key_bytes"] == 1024 and LIMITS["twin_string_bytes"] == 4096
    assert (LIMITS["tags_bytes"], LIMITS["desired_bytes"]) == (8192, 32768)


def test_the_rule_table_page_is_generated_from_the_rule_table() -> None:
    """docs/rules.md shows ``bulkreg rules --markdown`` between its markers, as generated."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "rules.md").read_text(encoding="utf-8")
    start, end = "<!-- rules:start -->\n", "<!-- rules:end -->"
    assert start in page and end in page, "docs/rules.md lacks the rules markers"
    table = page.split(start, 1)[1].split(end, 1)[0]
    assert table == rules_markdown(), "regenerate with: bulkreg rules --markdown"
