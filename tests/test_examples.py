"""The shared example corpus (examples/validator-*.json of bulkreg_schema) through the validator.

Each case says whether the hub would accept it and which findings it must produce. A valid case
must produce exactly its listed warnings; an invalid case must produce its listed findings and no
error outside them, so that no case passes by accident.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

import bulkreg_schema
from bulkreg_validator import RULES, Report, validate, validate_import

CASES = [c for c in bulkreg_schema.examples() if c.get("source", "").startswith("validator-")]

# Numeric boundaries: each pair is (the case just inside, the case just outside). The test below
# checks that both exist and land on opposite sides.
BOUNDARY_PAIRS = [
    ("bulk-100-entries", "bulk-101-entries"),
    ("bulk-one-entry", "bulk-empty"),
    ("id-128-chars", "id-129-chars"),
    ("module-id-128", "module-id-129"),
    ("status-reason-128-ascii", "status-reason-129-ascii"),
    ("status-reason-128-multibyte", "status-reason-129-multibyte"),
    ("twin-depth-10-tags-docs-example", "twin-depth-11-tags"),
    ("twin-depth-10-desired", "twin-depth-11-desired"),
    ("twin-depth-10-reported", "twin-depth-11-reported"),
    ("twin-depth-10-arrays", "twin-depth-11-arrays"),
    ("twin-depth-10-mixed", "twin-depth-11-mixed"),
    ("twin-key-1024-bytes-ascii", "twin-key-1025-bytes-ascii"),
    ("twin-key-1024-bytes-2-byte", "twin-key-1025-bytes-2-byte"),
    ("twin-key-1024-bytes-3-byte", "twin-key-1025-bytes-3-byte"),
    ("twin-key-1024-bytes-4-byte", "twin-key-1025-bytes-4-byte"),
    ("twin-string-4096-bytes-ascii", "twin-string-4097-bytes-ascii"),
    ("twin-string-4096-bytes-2-byte", "twin-string-4097-bytes-2-byte"),
    ("twin-string-4096-bytes-3-byte", "twin-string-4097-bytes-3-byte"),
    ("twin-string-4096-bytes-4-byte", "twin-string-4097-bytes-4-byte"),
    ("twin-integer-2-pow-52-minus-1", "twin-integer-2-pow-52"),
    ("twin-integer-minus-2-pow-52", "twin-integer-minus-2-pow-52-minus-1"),
    # integer literals by their digits, float literals of the same values unlimited
    ("number-float-2-pow-52", "twin-integer-2-pow-52"),
    ("number-float-2-pow-63", "twin-integer-2-pow-63"),
    ("number-float-2-pow-64", "number-integer-2-pow-64"),
    ("number-float-minus-2-pow-63-minus-1", "number-integer-minus-2-pow-63-minus-1"),
    ("number-float-10-pow-30", "number-integer-10-pow-30-digits"),
    ("import-number-integer-2-pow-52-minus-1", "import-number-integer-2-pow-52"),
    ("import-number-integer-minus-2-pow-52", "import-number-integer-minus-2-pow-52-minus-1"),
    ("import-number-float-2-pow-64", "import-number-integer-2-pow-64"),
    ("import-number-float-10-pow-30", "import-number-integer-10-pow-30-digits"),
    ("twin-tags-8192", "twin-tags-8193"),
    ("twin-tags-numbers-and-booleans", "twin-tags-numbers-and-booleans-over"),
    ("twin-desired-32768", "twin-desired-32769"),
    ("auth-key-16-bytes", "auth-key-15-bytes"),
    ("auth-key-64-bytes", "auth-key-65-bytes"),
    ("parent-scopes-one", "parent-scopes-two"),
    ("twin-arrays-2019-10-01", "twin-arrays-old-api"),
    ("json-number-max-double", "json-number-just-over-max-double"),
    ("json-depth-1024-parses", "json-depth-1025"),
]


def raw_bytes(case: dict[str, Any]) -> bytes:
    """The exact bytes a case stands for."""
    if "base64" in case:
        return base64.b64decode(case["base64"])
    if "text" in case:
        return str(case["text"]).encode("utf-8")
    if case["mode"] == "import":
        return b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n"
                        for line in case["payload"])
    return json.dumps(case["payload"], ensure_ascii=False).encode("utf-8")


def run(case: dict[str, Any]) -> Report:
    data = raw_bytes(case)
    options = {"api_version": case["api_version"]} if "api_version" in case else {}
    if case["mode"] == "import":
        return validate_import(io.BytesIO(data), **options)
    return validate(data, **options)


def _matches(expected: dict[str, Any], finding: Any) -> bool:
    return (finding.rule == expected["rule"] and finding.code == expected["code"]
            and finding.pointer == expected["pointer"]
            and ("line" not in expected or finding.line == expected["line"]))


def _show(findings: Any) -> str:
    return "\n".join(f"  {f.severity} {f.rule} [{f.code}] {f.pointer[:80]!r} line {f.line}: "
                     f"{f.message[:120]}" for f in findings)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    report = run(case)
    found = _show(report.findings)
    assert report.ok is case["valid"], f"{case['description']}\nfindings:\n{found}"
    for expected in case["expect"]:
        assert any(_matches(expected, f) for f in report.findings), \
            f"missing {expected}\nfindings:\n{found}"
    # Nothing unexpected: for a valid case no finding at all beyond its listed warnings; for an
    # invalid case no error beyond its listed ones (its warnings are not part of the claim).
    considered = report.findings if case["valid"] else report.errors
    extra = [f for f in considered if not any(_matches(e, f) for e in case["expect"])]
    assert not extra, f"unexpected findings:\n{_show(extra)}"


def test_corpus_is_large_and_names_unique() -> None:
    names = [c["name"] for c in CASES]
    assert len(names) >= 70
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)


def test_cases_are_well_formed() -> None:
    for case in CASES:
        assert case["mode"] in ("bulk", "import"), case["name"]
        assert sum(k in case for k in ("payload", "text", "base64")) == 1, case["name"]
        assert isinstance(case["valid"], bool), case["name"]
        for expected in case["expect"]:
            rule = RULES[expected["rule"]]
            assert expected["code"] == rule.code, (case["name"], expected)
            if case["valid"]:
                assert rule.severity == "warning", (case["name"], expected)


def test_every_rule_has_a_case() -> None:
    covered = {e["rule"] for c in CASES for e in c["expect"]}
    assert set(RULES) - covered == set()


def test_every_error_rule_has_a_valid_case_nearby() -> None:
    """Both sides of each numeric boundary are in the corpus, on opposite sides."""
    by_name = {c["name"]: c for c in CASES}
    for inside, outside in BOUNDARY_PAIRS:
        assert by_name[inside]["valid"] or by_name[inside]["expect"], inside
        assert not by_name[outside]["valid"], outside
        rules_out = {e["rule"] for e in by_name[outside]["expect"]}
        rules_in = {e["rule"] for e in by_name[inside]["expect"]}
        assert rules_out - rules_in, (inside, outside)


def test_corpus_stays_small() -> None:
    examples = bulkreg_schema.path("BulkRequest").parent.parent / "examples"
    total = sum(p.stat().st_size for p in examples.glob("validator-*.json"))
    assert total < 1_000_000
