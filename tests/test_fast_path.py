"""The fast path skips work only where a finding is impossible: its findings equal the exact
path's on texts built to sit near every limit the skipped twin walk checks."""

from __future__ import annotations

import io
import json
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bulkreg_validator import RULES, _bulk, _findings, validate, validate_import, validate_parsed
from bulkreg_validator._bulk import check_bulk
from bulkreg_validator._checks import Context
from bulkreg_validator._findings import pointer
from bulkreg_validator._import import check_line

CHARS = st.sampled_from(["a", "é", "€", "😀", "\n", "\\", '"'])
# lengths at the edges of what the guard reasons about (1 KB keys, 4 KB strings, sizes 4x text)
KEYS = st.builds(lambda c, n: c * n, CHARS, st.sampled_from([1, 2, 255, 256, 257, 300]))
VALUES = st.one_of(
    st.integers(0, 9),
    st.builds(lambda c, n: c * n, CHARS, st.sampled_from([0, 3, 1023, 1024, 1025, 1100])),
    st.builds(lambda n: [1] * n, st.sampled_from([0, 10, 255, 256, 257, 400, 1100])),
)
TWINS = st.dictionaries(KEYS, VALUES, max_size=4)
ENTRIES = st.builds(lambda tags, desired: {"id": "d1", "importMode": "create", "tags": tags,
                                           "properties": {"desired": desired}}, TWINS, TWINS)


def exact(findings: list[tuple[str, Any, str]]) -> set[tuple[str, str]]:
    return {(rule, pointer(path)) for rule, path, _ in findings}


@settings(max_examples=200)
@given(entry=ENTRIES)
# tags of 8,800 counted bytes in 2.2 KB of text (a number "1," counts 8): just past the guard
@example(entry={"id": "d1", "importMode": "create", "tags": {"a": [1] * 1100}})
@example(entry={"id": "d1", "importMode": "create", "tags": {"k" * 1025: 1}})
@example(entry={"id": "d1", "importMode": "create",  # the same in pieces shorter than a key
                "tags": {"a": [1] * 350, "b": [1] * 350, "c": [1] * 350}})
def test_import_lines_fast_path_equals_the_exhaustive_walk(entry: dict[str, Any]) -> None:
    data = orjson.dumps(entry)
    want = exact(check_line(entry, Context("import", "2021-04-12", exhaustive=True)))
    got = {(f.rule, f.pointer) for f in validate_import(io.BytesIO(data)).findings}
    assert got == want, (len(data), got ^ want)


@settings(max_examples=100)
@given(entries=st.lists(ENTRIES, min_size=1, max_size=3))
def test_bulk_entries_fast_path_equals_the_exhaustive_walk(entries: list[dict[str, Any]]) -> None:
    entries = [{**e, "id": f"d{i}"} for i, e in enumerate(entries)]
    short = _bulk._short
    _bulk._short = lambda entry: False  # the reference: every entry walked
    try:
        want = exact(check_bulk(entries, Context("bulk", "2021-04-12")))
    finally:
        _bulk._short = short
    got = {(f.rule, f.pointer) for f in validate(orjson.dumps(entries)).findings}
    assert got == want, got ^ want


def test_the_texts_reach_both_sides_of_the_guard() -> None:
    """The strategies above produce short texts that skip the walk and long ones that do not,
    and findings of every rule the walk owns (so the equality above is not vacuous)."""
    seen_rules: set[str] = set()
    short = long = 0

    @settings(max_examples=200)
    @given(entry=ENTRIES)
    def sample(entry: dict[str, Any]) -> None:
        nonlocal short, long
        data = orjson.dumps(entry)
        if _findings.short_text(data) and len(data) > 1024:
            short += 1
        elif not _findings.short_text(data):
            long += 1
        seen_rules.update(r for r, _, _ in check_line(
            entry, Context("import", "2021-04-12", exhaustive=True)))

    sample()
    assert short > 0 and long > 0
    assert {"twin-key-length", "twin-string-length", "twin-section-size"} <= seen_rules


# --- validate_parsed: the hub acts on the value the validator judged --------------------------

BIG = ["18446744073709551616", "-9223372036854775809", "9223372036854775807",
       "1" + "0" * 30, "1e30", "18446744073709551616.0", "4503599627370497", "0.5"]
PLACES = ['{{"id":"d1","importMode":"create","tags":{{"n":{0}}}}}',
          '{{"id":"d1","importMode":"create","properties":{{"desired":{{"n":{0}}}}}}}',
          '{{"id":"d1","importMode":"create","properties":{{"desired":{{"$version":{0}}}}}}}',
          '{{"id":"d1","importMode":"create","tags":{{"n":{0}}},"unknownMember":{0}}}',
          '{{"id":"d1","importMode":"create","tags":{{"a":[{0},{{"b":{0}}}]}}}}']


def _typed(value: Any) -> str:
    """A rendering in which 1e20 and 10**20 differ (== would call them equal)."""
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize("literal", BIG)
@pytest.mark.parametrize("place", PLACES)
def test_validate_parsed_value_is_the_text_exactly(place: str, literal: str) -> None:
    """Wherever no request-scope error stops the call, the value is json's reading of the text
    (every integer keeps its digits, every float literal stays a float): the hub stores it."""
    text = "[" + place.format(literal) + "]"
    value, report = validate_parsed(text.encode(), accelerate=True)
    assert report == validate(text.encode(), accelerate=True)
    if any(RULES[f.rule].scope == "request" for f in report.errors):
        return
    assert _typed(value) == _typed(json.loads(text)), (text, report.findings)


def test_validate_parsed_cases_reach_both_paths() -> None:
    """The cases above include accepted texts with floats and with integers past 2^63, read on
    the fast path (no finding) and on the exact scanner (some finding), so the test bites."""
    fast = scanned = 0
    for place in PLACES:
        for literal in BIG:
            text = ("[" + place.format(literal) + "]").encode()
            if not validate(text).findings:
                fast += 1
            elif not any(RULES[f.rule].scope == "request" for f in validate(text).errors):
                scanned += 1
    assert fast > 0 and scanned > 0
