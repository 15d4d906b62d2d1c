"""The rule table is the one registry: every row is wired to what checks it, and vice versa."""

from __future__ import annotations

from pathlib import Path

import pytest

import bulkreg_schema
from bulkreg_validator import LIMITS, RULES, Rule
from bulkreg_validator._checks import CHECKS, Context, checks_for
from bulkreg_validator._report import rules_markdown

CODES = set(bulkreg_schema.load("DeviceRegistryOperationError")["properties"]["errorCode"]["enum"])


def test_every_code_rule_row_has_exactly_one_check() -> None:
    checked = [rule for rules, _ in CHECKS.values() for rule in rules]
    assert len(checked) == len(set(checked)), "a rule registered by two checks"
    rows = {r.id for r in RULES.values() if r.where == "rule"}
    assert set(checked) == rows


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


def test_readme_rule_table_is_generated_from_the_rule_table() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- rules:start -->\n", "<!-- rules:end -->"
    assert start in readme and end in readme
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == rules_markdown(), "regenerate with: bulkreg rules --markdown"
