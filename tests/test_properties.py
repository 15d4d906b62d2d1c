"""Property tests of the validator: valid draws give no finding; one mutation gives its one rule.

Deterministic (derandomize, no example database) and modest in size so the file runs in seconds.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkreg_conformance import strategies
from bulkreg_validator import RULES, Report, validate, validate_import

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=25,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _show(report: Report) -> str:
    return "; ".join(f"{f.severity} {f.rule} {f.pointer[:60]!r}: {f.message[:100]}"
                     for f in report.findings)


@FAST
@given(strategies.valid_bulk_payloads(max_size=8))
def test_valid_bulk_draw_has_no_finding(payload: list[dict[str, Any]]) -> None:
    report = validate(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
    assert report.findings == (), _show(report)
    assert report.entries == len(payload)


@FAST
@given(strategies.valid_bulk_payloads(max_size=8))
def test_valid_bulk_draw_as_parsed_value_has_no_finding(payload: list[dict[str, Any]]) -> None:
    report = validate(payload)
    assert report.findings == (), _show(report)


@settings(FAST, max_examples=3)
@given(strategies.valid_bulk_payloads(min_size=95, max_size=100, twin_size=128))
def test_valid_bulk_draw_near_100_entries(payload: list[dict[str, Any]]) -> None:
    assert 95 <= len(payload) <= 100
    report = validate(json.dumps(payload).encode("utf-8"))
    assert report.findings == (), _show(report)


@FAST
@given(strategies.valid_import_lines(max_size=8))
def test_valid_import_draw_has_no_finding(lines: list[dict[str, Any]]) -> None:
    report = validate_import(io.BytesIO(b"".join(strategies.import_lines(lines))))
    assert report.findings == (), _show(report)
    assert report.entries == len(lines)


@FAST
@given(strategies.valid_bulk_payloads(max_size=4, warn_chars=True))
def test_warn_chars_draw_only_warns(payload: list[dict[str, Any]]) -> None:
    report = validate(json.dumps(payload).encode("utf-8"))
    assert {f.rule for f in report.findings} <= {"id-unsupported-char"}, _show(report)


def _depth(value: Any) -> int:
    """Depth as facts §2.7 counts it: the section root is 0, each object or array adds 1."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_draws_reach_the_limits() -> None:
    """The strategies exercise what they promise: every id special, depth exactly 10."""
    chars: set[str] = set()
    depths: list[int] = []

    @settings(FAST, max_examples=60)
    @given(strategies.device_ids())
    def collect_ids(device_id: str) -> None:
        chars.update(device_id)

    @settings(FAST, max_examples=60)
    @given(strategies.twin_sections())
    def collect_depths(section: dict[str, Any]) -> None:
        depths.append(_depth(section) - 1)

    collect_ids()
    collect_depths()
    assert set(strategies.ID_SPECIALS) <= chars
    assert not set(strategies.ID_WARN_SPECIALS) & chars
    assert max(depths) == 10


MUTABLE = [rule for rule, _ in strategies.MUTATIONS]
# Rules a mutation of a bulk body cannot produce: they need another api-version or an import file.
NOT_BY_MUTATION = {"twin-array-api-version", "parent-scopes-api-version", "import-blank-line"}


def test_every_rule_has_a_mutation() -> None:
    assert set(RULES) - set(MUTABLE) == NOT_BY_MUTATION
    assert len(MUTABLE) == len(set(MUTABLE))
    assert all(m.code == RULES[m.rule].code for m in strategies.TABLE)


@pytest.mark.parametrize(("rule", "bodies"), strategies.MUTATIONS, ids=MUTABLE)
def test_mutation_gives_exactly_its_rule(rule: str, bodies: st.SearchStrategy[bytes]) -> None:
    @settings(FAST, max_examples=10)
    @given(bodies)
    def check(body: bytes) -> None:
        report = validate(body)
        errors = {f.rule for f in report.errors}
        if RULES[rule].severity == "error":
            assert errors == {rule}, _show(report)
        else:
            assert errors == set(), _show(report)
            assert rule in {f.rule for f in report.warnings}, _show(report)

    check()
