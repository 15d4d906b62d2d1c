"""The acceptor (``_accept``): its rewrite of the schema keeps every verdict, its folds of the rule
checks are never looser than the checks, and it accepts the usual lines (or the fast path would
be a slow one)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bulkreg_schema
from bulkreg_conformance import strategies
from bulkreg_validator import _accept, _checks, _findings
from bulkreg_validator._checks import Context

LINE = bulkreg_schema.BASE_URI + "ImportLine.json"


def _validator(documents: dict[str, Any]) -> Any:
    registry = jsonschema_rs.Registry(list(documents.items()))
    return jsonschema_rs.validator_for({"$ref": LINE}, registry=registry).is_valid


ORIGINAL = _validator(bulkreg_schema.registry())
REWRITTEN = _validator(_accept.rewrite(bulkreg_schema.registry()))
PYTHON = _findings.schema("ImportLine").ok

# keys at the edges of the key pattern, values at the edges of every twin limit
KEYS = st.one_of(strategies.twin_keys(max_chars=4),
                 st.sampled_from(["", ".", "a.b", "$", "$metadata", "$version", " ", "a b",
                                  "\x00", "\x1f", "\x7f", "\x80", "\x9f", "\xa0", "é", "k" * 300]))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8),
    st.sampled_from([0, 1, -1, 2**52 - 1, 2**52, -(2**52), -(2**52) - 1, 2**63 - 1, 0.5, 1e300,
                     -1e300, 4503599627370495.0, 4503599627370496.0, float(2**53)]),
)
TWINS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=14)


def _deep(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = {"k": leaf} if i % 2 else [leaf]
    return leaf


@st.composite
def lines(draw: st.DrawFn) -> dict[str, Any]:
    """Import lines that break the schema in few places, the twins above all."""
    entry: dict[str, Any] = draw(strategies.valid_import_lines(max_size=1, twin_size=64))[0]
    for section in draw(st.lists(st.sampled_from(["tags", "desired", "reported"]), max_size=2)):
        value = draw(st.one_of(TWINS, st.builds(_deep, st.integers(8, 13), SCALARS)))
        twin = draw(st.one_of(st.dictionaries(KEYS, st.just(value), max_size=2), TWINS))
        if section == "tags":
            entry["tags"] = twin
        else:
            entry["properties"] = {**(entry.get("properties") or {}), section: twin}
    if draw(st.booleans()):
        field = draw(st.sampled_from(["id", "moduleId", "importMode", "status", "eTag",
                                      "authentication", "capabilities", "parentScopes", "x"]))
        entry[field] = draw(st.one_of(SCALARS, TWINS))
    return entry


@settings(max_examples=400, deadline=None)
@given(entry=lines())
def test_the_rewritten_schema_has_the_original_verdicts(entry: dict[str, Any]) -> None:
    assert REWRITTEN(entry) == ORIGINAL(entry) == PYTHON(entry)


def test_the_rewrite_changed_what_it_says() -> None:
    """propertyNames became patternProperties where that is exact, bare refs were inlined: the
    verdict test above compares two different schemas."""
    original = bulkreg_schema.registry()
    rewritten = _accept.rewrite(original)
    twin = bulkreg_schema.BASE_URI + "TwinCollection.json"
    assert "propertyNames" in original[twin]["$defs"]["level3"]
    assert "patternProperties" in rewritten[twin]["$defs"]["level3"]
    assert "propertyNames" in rewritten[twin]["$defs"]["properties"]  # has properties: kept
    assert "$ref" in original[LINE]["properties"]["tags"]
    assert "patternProperties" in rewritten[LINE]["properties"]["tags"]


# --- the folds ---------------------------------------------------------------------------------

ACCEPTOR = _accept.acceptor()
FOLDED = tuple(_accept.FOLDS)
KEY = st.sampled_from(["", None, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
                       "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0NTY3ODkwYWJjZGVmZ2g="])
PRINT = st.sampled_from(["", None, "A" * 40, "b" * 40, "C" * 64, "d" * 64])
TYPE = st.sampled_from(["sas", "selfSigned", "certificateAuthority", "none", "SAS", None])


@st.composite
def authentication(draw: st.DrawFn) -> Any:
    auth: dict[str, Any] = {}
    kind = draw(TYPE)
    if kind is not None:
        auth["type"] = kind
    for name, members, value in (("symmetricKey", ("primaryKey", "secondaryKey"), KEY),
                                 ("x509Thumbprint", ("primaryThumbprint", "secondaryThumbprint"),
                                  PRINT)):
        shape = draw(st.sampled_from(["absent", "null", "object"]))
        if shape == "null":
            auth[name] = None
        elif shape == "object":
            auth[name] = {m: draw(value) for m in members if draw(st.booleans())}
    return draw(st.one_of(st.just(auth), st.none()))


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    """Entries whose modes, etags, ignored fields, ids and authentication vary together."""
    entry: dict[str, Any] = {"id": draw(st.sampled_from(["d1", "d+1", "d#1", "d;1"]))}
    mode = draw(st.sampled_from([None, *bulkreg_schema.contract().import_modes, "Update"]))
    if mode is not None:
        entry["importMode"] = mode
    for name in ("eTag", "twinETag"):
        if draw(st.booleans()):
            entry[name] = draw(st.one_of(st.sampled_from([None, "", "AAAA"])))
    if draw(st.booleans()):
        entry["moduleId"] = draw(st.sampled_from([None, "m1", "m+1", "m;"]))
    # each field set, or unset in the ways the schema allows it (unset: no mode-ignored-field)
    for name, values in (("status", ["enabled"]), ("statusReason", ["r", None, ""]),
                         ("capabilities", [{"iotEdge": True}, None, {}]),
                         ("deviceScope", ["s", None, ""]), ("parentScopes", [["s"], None, []]),
                         ("tags", [{"a": 1}, None, {}]), ("properties", [{"desired": {}}, {}])):
        if draw(st.integers(0, 3)) == 0:
            entry[name] = draw(st.sampled_from(values))
    if draw(st.integers(0, 2)):
        entry["authentication"] = draw(authentication())
    return entry


def _emitted(entry: dict[str, Any]) -> list[str]:
    found: list[str] = []
    ctx = Context("import", bulkreg_schema.API_VERSION, exhaustive=False)
    for check in FOLDED:
        check(entry, ctx, lambda rule, path, message: found.append(rule))
    return found


@settings(max_examples=1500, deadline=None)
@given(entry=entries())
def test_an_accepted_entry_has_no_finding_of_a_folded_check(entry: dict[str, Any]) -> None:
    assert ACCEPTOR is not None
    if ACCEPTOR.one(entry):
        assert ORIGINAL(entry), entry
        rules = _emitted(entry)
        # the id's characters are checked on the chunk's ids, not by the acceptor
        assert rules in ([], ["id-unsupported-char"]), (rules, entry)
        assert not rules or any(c in entry["id"] for c in _accept.ID_CHARS)


def test_the_folds_accept_every_consistent_shape_and_refuse_every_finding() -> None:
    """Not vacuous: the entries above reach both verdicts; and the acceptor takes every valid draw
    of the conformance strategies that the schema takes (the schema bounds float literals too,
    which the exact path then accepts)."""
    assert ACCEPTOR is not None
    accepted = refused = 0
    refused_rules: set[str] = set()

    @settings(max_examples=600, deadline=None)
    @given(entry=entries())
    def sample(entry: dict[str, Any]) -> None:
        nonlocal accepted, refused
        if not ORIGINAL(entry):
            return
        rules = [r for r in _emitted(entry) if r != "id-unsupported-char"]
        if ACCEPTOR.one(entry):
            accepted += 1
        elif rules:
            refused += 1
            refused_rules.update(rules)

    sample()
    assert accepted > 50 and refused > 50
    assert len(refused_rules) >= 4, refused_rules

    @settings(max_examples=150, deadline=None)
    @given(lines=strategies.valid_import_lines(max_size=4, twin_size=256))
    def valid(lines: list[dict[str, Any]]) -> None:
        assert list(map(ACCEPTOR.one, lines)) == list(map(ORIGINAL, lines)), lines
        assert ACCEPTOR.many(lines) == all(map(ORIGINAL, lines))

    valid()


SHA1, SHA256 = "a" * 40, "b" * 64
KEY1 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
FINDINGS = [  # one entry per rule of a folded check, on a line the schema accepts
    ("id-unsupported-char", {"id": "d1", "moduleId": "m+1"}),
    ("etag-required", {"id": "d1", "importMode": "updateIfMatchETag", "eTag": ""}),
    ("etag-required", {"id": "d1", "importMode": "deleteIfMatchETag"}),
    ("twin-etag-required", {"id": "d1", "importMode": "updateTwinIfMatchETag", "twinETag": None}),
    ("mode-ignored-field", {"id": "d1", "importMode": "delete", "tags": {"a": 1}}),
    ("mode-ignored-field", {"id": "d1", "importMode": "updateTwin", "status": "enabled"}),
    ("mode-ignored-field", {"id": "d1", "importMode": "create", "eTag": "AAAA"}),
    ("mode-ignored-field", {"id": "d1", "importMode": "createOrUpdateIfMatchETag",
                            "twinETag": "AAAA"}),
    ("auth-type-mismatch", {"id": "d1", "authentication": {"type": "selfSigned"}}),
    ("auth-type-mismatch", {"id": "d1", "authentication": {
        "type": "none", "symmetricKey": {"primaryKey": KEY1, "secondaryKey": KEY1}}}),
    ("auth-type-mismatch", {"id": "d1", "authentication": {
        "type": "sas", "x509Thumbprint": {"primaryThumbprint": SHA1}}}),
    ("auth-keys-pair", {"id": "d1", "authentication": {"symmetricKey": {"primaryKey": KEY1}}}),
    ("auth-keys-pair", {"id": "d1", "authentication": {
        "type": "sas", "symmetricKey": {"primaryKey": "", "secondaryKey": KEY1}}}),
    ("auth-keys-and-thumbprints", {"id": "d1", "authentication": {
        "symmetricKey": {"primaryKey": KEY1, "secondaryKey": KEY1},
        "x509Thumbprint": {"secondaryThumbprint": SHA256}}}),
    ("auth-thumbprint-lengths", {"id": "d1", "authentication": {"x509Thumbprint": {
        "primaryThumbprint": SHA1, "secondaryThumbprint": SHA256}}}),
]


@pytest.mark.parametrize(("rule", "entry"), FINDINGS)
def test_the_acceptor_refuses_each_finding_of_a_folded_check(rule: str,
                                                             entry: dict[str, Any]) -> None:
    assert ORIGINAL(entry)
    assert rule in _emitted(entry)
    assert ACCEPTOR is not None
    assert not ACCEPTOR.one(entry)


# --- short_text: measured around the middle, as the split it replaces --------------------------

def _split_short(data: bytes) -> bool:
    size = len(data)
    if size <= 1024:
        return True
    if size > 2048 or b'\\"' in data:
        return False
    return max(map(len, data.split(b'"'))) <= 1024


@settings(max_examples=500, deadline=None)
@given(size=st.integers(1000, 2100), quotes=st.lists(st.integers(0, 2099), max_size=6),
       escaped=st.booleans())
def test_short_text_is_the_split_it_replaced(size: int, quotes: list[int], escaped: bool) -> None:
    data = bytearray(b"a" * size)
    for at in quotes:
        if at < size:
            data[at] = ord('"')
    if escaped and quotes and 0 < quotes[0] < size:
        data[quotes[0] - 1] = ord("\\")
    assert _findings.short_text(bytes(data)) == _split_short(bytes(data))


@pytest.mark.parametrize("run", [1024, 1025])
@pytest.mark.parametrize("start", [0, 1, 500, 1023, 1024, 1025])
def test_short_text_runs_at_every_offset(run: int, start: int) -> None:
    data = b'"' * start + b"k" * run + b'"' * max(0, 2000 - start - run)
    assert _findings.short_text(data) == _split_short(data)


# --- twin_sections_quiet: the walk skipped only where it cannot find anything --------------------

CHARS = st.sampled_from(["a", "é", "€", "😀", "\n", "\\", '"', "\x00"])
SIZED = st.builds(lambda c, n: c * n, CHARS, st.sampled_from([1, 2, 255, 256, 257, 1024, 1025]))
VALUES = st.one_of(st.integers(0, 9), st.booleans(), st.none(), SIZED,
                   st.builds(lambda n: [1] * n, st.sampled_from([0, 10, 300, 1023, 1100, 4100])),
                   st.builds(lambda c, n: c * n, CHARS, st.sampled_from([1400, 4096, 4097])))
SECTIONS = st.dictionaries(SIZED, VALUES, max_size=6)


@settings(max_examples=600, deadline=None)
@given(tags=SECTIONS, desired=SECTIONS, reported=SECTIONS,
       api_version=st.sampled_from(["2021-04-12", "2019-03-30"]))
def test_twin_sections_quiet_only_where_the_walk_finds_nothing(
        tags: dict[str, Any], desired: dict[str, Any], reported: dict[str, Any],
        api_version: str) -> None:
    entry = {"id": "d1", "tags": tags, "properties": {"desired": desired, "reported": reported}}
    ctx = Context("import", api_version)
    if _checks.twin_sections_quiet(entry, ctx):
        found: list[str] = []
        _checks.twin_sections(entry, ctx, lambda rule, path, message: found.append(rule))
        assert found == [], found


def test_twin_sections_quiet_spares_the_walk_of_long_clean_sections() -> None:
    ctx = Context("import", "2021-04-12")
    # ~3 KB of tags: over 8 KB by the 4-per-byte bound, within it by the per-value one
    long_clean = {"id": "d1", "tags": {f"k{i}": "v" * 40 for i in range(60)},
                  "properties": {"desired": {f"k{i}": ["v" * 900, 1] for i in range(8)}}}
    assert _checks.twin_sections_quiet(long_clean, ctx)
    # a run of 1 KB between quotes (here numbers) is taken for a possible long key: the walk
    assert not _checks.twin_sections_quiet({"id": "d1", "tags": {"a": [1] * 600}}, ctx)
    too_big = {"id": "d1", "tags": {f"k{i}": "v" * 1000 for i in range(9)}}
    assert not _checks.twin_sections_quiet(too_big, ctx)
    assert not _checks.twin_sections_quiet({"id": "d1", "tags": {"k" * 1025: 1}}, ctx)
    assert not _checks.twin_sections_quiet({"id": "d1", "tags": {"a": [1]}},
                                           Context("import", "2019-03-30"))
