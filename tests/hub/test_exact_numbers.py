"""The hub stores the number it was sent, or rejects it: never a rounded one.

orjson turns integer literals beyond 64 bits into floats (2^64 -> 1.8446744073709552e19). The hub
runs the validator, which judges an integer literal by its digits, so such a literal is rejected
(twin-integer-range) on every write path, and every accepted number reads back as it was sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import bulkreg_schema

from .conftest import Client, registry

NUMBER_CASES = [c for c in bulkreg_schema.examples()
                if c["name"].startswith("number-") and c["mode"] == "bulk"]


def sent_tags(case: dict[str, Any]) -> Any:
    """The twin sections as sent: json keeps every integer literal's digits."""
    entry = json.loads(case["text"])[0]
    return entry.get("tags"), entry.get("properties", {})


@pytest.mark.parametrize("case", NUMBER_CASES, ids=[c["name"] for c in NUMBER_CASES])
def test_bulk_number_is_stored_exactly_or_rejected(case: dict[str, Any]) -> None:
    reg = registry()
    outcome = reg.apply(case["text"].encode())
    if not case["valid"]:
        assert outcome.status == 400, outcome.body
        assert "ArgumentInvalid" in json.dumps(outcome.body)
        assert reg.twin("d1") is None
        return
    assert outcome.status == 200, outcome.body
    twin = reg.twin("d1")
    assert twin is not None
    tags, properties = sent_tags(case)
    if tags is not None:
        assert twin["tags"] == tags
        assert [type(v) for v in twin["tags"].values()] == [type(v) for v in tags.values()]
    for name, section in properties.items():
        stored = {k: v for k, v in twin["properties"][name].items() if not k.startswith("$")}
        assert stored == section


def test_the_corpus_reaches_both_outcomes() -> None:
    assert {c["valid"] for c in NUMBER_CASES} == {True, False}
    assert any("18446744073709551616" in c["text"] and not c["valid"] for c in NUMBER_CASES)


@pytest.mark.parametrize("literal", ["18446744073709551616", "-9223372036854775809",
                                     "1" + "0" * 30])
@pytest.mark.parametrize("write", ["update_twin", "replace_twin"])
def test_twin_writes_reject_integers_beyond_the_range(literal: str, write: str) -> None:
    reg = registry()
    assert reg.apply(b'[{"id":"d1","importMode":"create"}]').status == 200
    plan = getattr(reg, write)("d1", '{"tags":{"n":' + literal + '}}', None)
    assert plan.status == 400, plan.body
    assert reg.commit(plan).body is not None
    twin = reg.twin("d1")
    assert twin is not None and twin["tags"] == {}


@pytest.mark.parametrize("literal", ["4503599627370495", "-4503599627370496", "1e30",
                                     "18446744073709551616.0"])
def test_twin_writes_store_numbers_in_range_as_sent(literal: str) -> None:
    reg = registry()
    assert reg.apply(b'[{"id":"d1","importMode":"create"}]').status == 200
    plan = reg.update_twin("d1", '{"tags":{"n":' + literal + '}}', None)
    assert plan.status == 200, plan.body
    reg.commit(plan)
    twin = reg.twin("d1")
    assert twin is not None
    assert twin["tags"] == {"n": json.loads(literal)}
    assert type(twin["tags"]["n"]) is type(json.loads(literal))


def test_over_http_2_pow_64_is_rejected_and_nothing_is_stored(client: Client) -> None:
    body = b'[{"id":"big","importMode":"create","tags":{"n":18446744073709551616}}]'
    response = client.call("POST", "/devices", data=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert "twin" in response.text and "ArgumentInvalid" in response.text
    assert client.call("GET", "/twins/big").status_code == 404
