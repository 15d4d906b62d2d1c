"""Hypothesis strategies for bulk payloads and import lines, and the table of targeted mutations.

Everything is built constructively: a valid draw is valid by construction (no ``.filter`` of whole
payloads), and an invalid payload is one valid payload with exactly one targeted mutation that
names the rule (and IoT Hub errorCode) it must trigger. Limits come from the rule table
(``bulkreg_validator.LIMITS``) and the schema files, not from literals here; only the character
sets of the spec (facts §2.1, §2.7) are spelled out, because the schema holds them as regexes.

Public surface: ``valid_bulk_payloads``, ``valid_import_lines``, ``MUTATIONS`` (list of
``(rule_id, strategy of mutated bodies)``), ``TABLE`` (the mutations themselves), ``as_body``,
and the building blocks (``device_ids``, ``twin_sections``, ``authentications``, ``entries``).
"""

from __future__ import annotations

import base64
import json
import math
import string
from collections.abc import Callable
from typing import Any, NamedTuple

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

import bulkreg_schema
from bulkreg_validator import LIMITS, RULES

__all__ = [
    "BULK_MODES",
    "ID_SPECIALS",
    "ID_WARN_SPECIALS",
    "IMPORT_MODES",
    "MUTATIONS",
    "TABLE",
    "Mutation",
    "as_body",
    "authentications",
    "device_ids",
    "entries",
    "import_lines",
    "mutated_bodies",
    "status_reasons",
    "twin_keys",
    "twin_sections",
    "valid_bulk_payloads",
    "valid_import_lines",
]

# facts §2.1: the 18 specials of the swagger / C# regex. + # ; draw a warning (DOC-IR 2025), so
# they are only drawn on request.
ID_WARN_SPECIALS = "+#;"
ID_SPECIALS = "-:.%_*?!(),=@$'"
_ALNUM = string.ascii_letters + string.digits
_CONTRACT = bulkreg_schema.contract()  # every limit below is read from the schema files
ID_MAX = _CONTRACT.id_max_length
STATUS_REASON_MAX = _CONTRACT.status_reason_max_length
TWIN_MAX_DEPTH = _CONTRACT.twin_max_depth
BULK_MODES = _CONTRACT.bulk_modes
IMPORT_MODES = _CONTRACT.import_modes
_ETAG_MODES = _CONTRACT.etag_modes & set(BULK_MODES)  # eTag required
_ETAG_OPTIONAL = _CONTRACT.etag_modes - set(BULK_MODES)  # import only: eTag optional
_DELETE_MODES = _CONTRACT.delete_modes
_TWIN_MODES = _CONTRACT.twin_only_modes
_TWIN_ETAG_MODES = _CONTRACT.twin_etag_modes
MAX_ENTRIES = _CONTRACT.max_entries
_SECTION_BUDGET = LIMITS["tags_bytes"] // 8  # bytes a drawn section uses: small, fast requests
_PRINT_LENGTHS = _CONTRACT.thumbprint_lengths  # hex digits: SHA-1, SHA-256
_INT_MIN, _INT_MAX = _CONTRACT.twin_integer_range
_KEY_BYTES, _STRING_BYTES = LIMITS["twin_key_bytes"], LIMITS["twin_string_bytes"]
_KEY_MIN, _KEY_MAX = _CONTRACT.key_decoded_bytes


# --- ids, statusReason, etags ------------------------------------------------------------------


def device_ids(*, warn_chars: bool = False, max_size: int = ID_MAX) -> SearchStrategy[str]:
    """Device or module ids of 1..max_size characters from the whole allowed set.

    ``warn_chars`` adds ``+ # ;`` (valid, but they draw an ``id-unsupported-char`` warning).
    """
    specials = ID_SPECIALS + (ID_WARN_SPECIALS if warn_chars else "")
    # half the characters are specials: they are few, and they are where parsers go wrong
    alphabet = st.sampled_from(specials) | st.sampled_from(_ALNUM)
    return st.text(alphabet=alphabet, min_size=1, max_size=max_size)


# Every character UTF-8 can encode: all but surrogates. Not characters(codec="utf-8"), which
# builds its table by encoding all 1.1M code points (~200 MiB at peak, in every run).
_UTF8 = st.characters(exclude_categories=["Cs"])


def status_reasons() -> SearchStrategy[str]:
    """Any text of at most 128 characters (all UTF-8 characters are allowed, SWG)."""
    return st.text(_UTF8, max_size=STATUS_REASON_MAX)


def device_etags() -> SearchStrategy[str]:
    # observed shape: base64 of a decimal version counter (facts §2.2)
    return st.integers(0, 2**31).map(lambda n: base64.b64encode(str(n).encode()).decode())


def twin_etags() -> SearchStrategy[str]:
    # observed shape: base64 of an 8-byte big-endian version (facts §2.2)
    return st.integers(0, 2**40).map(  # not a contract limit: any version counter
        lambda n: base64.b64encode(n.to_bytes(8, "big")).decode())


# --- twins -------------------------------------------------------------------------------------

# Twin keys exclude control characters (C0, C1; DEL with them), '.', '$' and space (facts §2.7).
# Surrogates are not text. Everything else, multibyte included, is allowed.
_KEY_CHARS = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters=".$ ")


def twin_keys(*, max_chars: int = 24) -> SearchStrategy[str]:
    """Twin keys; at most 4 UTF-8 bytes a character keeps ``max_chars <= 256`` within 1 KB."""
    return st.text(_KEY_CHARS, min_size=1, max_size=min(max_chars, _KEY_BYTES // 4))


class _Budget:
    """What is left of a section's size by the docs' algorithm (characters; numbers 8, bools 4)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def take(self, cost: int) -> bool:
        if cost > self.left:
            return False
        self.left -= cost
        return True


def _scalar(draw: DrawFn, budget: _Budget, *, allow_null: bool) -> Any:
    kinds = ["str", "int", "float", "bool", *(["null"] if allow_null else [])]
    kind = draw(st.sampled_from(kinds))
    if kind == "int" and budget.take(8):
        return draw(st.integers(_INT_MIN, _INT_MAX))
    if kind == "float" and budget.take(8):
        # any finite double: facts §2.7 limits integer tokens only (EDGE checks Integer tokens)
        return draw(st.floats(allow_nan=False, allow_infinity=False))
    if kind == "bool" and budget.take(4):
        return draw(st.booleans())
    if kind == "null":
        return None
    # a string: at most 1024 characters (<= 4096 UTF-8 bytes) and within the budget
    text = draw(st.text(_KEY_CHARS | st.sampled_from(" .$\n"),
                        max_size=min(_STRING_BYTES // 4, 48, budget.left)))
    budget.take(len(text))
    return text


def _value(draw: DrawFn, depth: int, budget: _Budget, *, in_array: bool) -> Any:
    """A member or item value; ``depth`` is the depth of the container holding it."""
    if depth < TWIN_MAX_DEPTH and draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            return _object(draw, depth + 1, budget)
        return [_value(draw, depth + 1, budget, in_array=True)
                for _ in range(draw(st.integers(0, 3)))]
    return _scalar(draw, budget, allow_null=not in_array)


def _object(draw: DrawFn, depth: int, budget: _Budget, *, max_members: int = 4) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, max_members))):
        key = draw(twin_keys())
        if key in result or not budget.take(len(key)):
            continue
        result[key] = _value(draw, depth, budget, in_array=False)
    return result


def _spine(draw: DrawFn, target: int, budget: _Budget) -> Any:
    """A chain of containers reaching depth ``target`` (1..10) exactly, ending in a scalar."""
    value: Any = _scalar(draw, budget, allow_null=False)
    for _ in range(target):
        if draw(st.booleans()):
            key = draw(twin_keys(max_chars=4))
            budget.take(len(key))
            value = {key: value}
        else:
            value = [value]
    return value


@st.composite
def twin_sections(draw: DrawFn, *, size: int = _SECTION_BUDGET) -> dict[str, Any]:
    """A twin section (tags, desired or reported) within every twin limit.

    Depth up to 10 (sometimes exactly 10, via a spine), multibyte keys, arrays without null items,
    integers within +-2^52, strings within 4 KB, and a docs-algorithm size of at most ``size``.
    """
    budget = _Budget(size)
    section = _object(draw, 0, budget)
    # the limit itself is drawn often: a boundary is where a validator goes wrong
    target = draw(st.one_of(st.just(TWIN_MAX_DEPTH), st.integers(0, TWIN_MAX_DEPTH)))
    if target:
        key = draw(twin_keys(max_chars=8))
        if budget.take(len(key)):  # (replacing a member of the same key keeps it within budget)
            section[key] = _spine(draw, target, budget)
    return section


# --- authentication ----------------------------------------------------------------------------


def _keys() -> SearchStrategy[str]:
    return st.binary(min_size=_KEY_MIN, max_size=_KEY_MAX).map(
        lambda raw: base64.b64encode(raw).decode())


def _hex(length: int) -> SearchStrategy[str]:
    return st.text("0123456789abcdefABCDEF", min_size=length, max_size=length)


@st.composite
def _sas(draw: DrawFn) -> dict[str, Any]:
    shape = draw(st.sampled_from(["keys", "none", "empty", "null"]))
    if shape == "keys":
        keys: dict[str, str | None] = {"primaryKey": draw(_keys()), "secondaryKey": draw(_keys())}
    elif shape == "empty":  # Node: empty strings mean "generate" (facts §2.3)
        keys = {"primaryKey": "", "secondaryKey": ""}
    elif shape == "null":  # C#: nulls mean "generate"
        keys = {"primaryKey": None, "secondaryKey": None}
    else:
        return {"type": "sas"}
    return {"type": "sas", "symmetricKey": keys}


@st.composite
def _self_signed(draw: DrawFn) -> dict[str, Any]:
    length = draw(st.sampled_from(_PRINT_LENGTHS))
    prints = {"primaryThumbprint": draw(_hex(length))}
    if draw(st.booleans()):
        prints["secondaryThumbprint"] = draw(_hex(length))
    return {"type": "selfSigned", "x509Thumbprint": prints}


def authentications() -> SearchStrategy[dict[str, Any] | None]:
    """Valid authentication of each type (sas with or without keys, selfSigned SHA-1/SHA-256,
    certificateAuthority, none), or null."""
    return st.one_of(_sas(), _self_signed(), st.just({"type": "certificateAuthority"}),
                     st.just({"type": "none"}), st.none())


# --- entries -----------------------------------------------------------------------------------


def _properties(draw: DrawFn, twin_size: int, *, reported: bool) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if draw(st.booleans()):
        props["desired"] = draw(twin_sections(size=twin_size))
    if reported and draw(st.booleans()):
        props["reported"] = draw(twin_sections(size=twin_size))
    return props


def _device_fields(draw: DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["status"] = draw(st.sampled_from(["enabled", "disabled"]))
    if draw(st.booleans()):
        fields["statusReason"] = draw(status_reasons())
    if draw(st.booleans()):
        fields["authentication"] = draw(authentications())
    if draw(st.booleans()):
        fields["capabilities"] = {"iotEdge": draw(st.booleans())}
    if draw(st.integers(0, 3)) == 0:
        scope = "ms-azure-iot-edge://" + draw(device_ids(max_size=ID_MAX // 3)) + \
            "-637131779299315265"
        fields["deviceScope"] = scope
        fields["parentScopes"] = draw(st.sampled_from([[], [scope]]))
    return fields


@st.composite
def entries(draw: DrawFn, device_id: str, *, modes: tuple[str, ...] = BULK_MODES,
            twin_size: int = 512, warn_chars: bool = False) -> dict[str, Any]:
    """One valid entry for ``device_id``: a mode, its required etag, only fields it uses."""
    mode = draw(st.sampled_from(modes))
    entry: dict[str, Any] = {"id": device_id}
    if mode != _CONTRACT.default_mode or draw(st.booleans()):  # the default may be omitted
        entry["importMode"] = mode
    if draw(st.integers(0, 3)) == 0:
        entry["moduleId"] = draw(device_ids(warn_chars=warn_chars, max_size=32))
    if mode in _ETAG_MODES or (mode in _ETAG_OPTIONAL and draw(st.booleans())):
        entry["eTag"] = draw(device_etags())
    if mode in _TWIN_ETAG_MODES:
        entry["twinETag"] = draw(twin_etags())
    if mode in _DELETE_MODES:
        return entry
    if mode not in _TWIN_MODES:
        entry.update(_device_fields(draw))
    if draw(st.booleans()):
        entry["tags"] = draw(twin_sections(size=twin_size))
    props = _properties(draw, twin_size, reported=mode not in _TWIN_MODES)
    if props:
        entry["properties"] = props
    return entry


@st.composite
def valid_bulk_payloads(draw: DrawFn, *, min_size: int = 1, max_size: int = MAX_ENTRIES,
                        warn_chars: bool = False, twin_size: int = 512) -> list[dict[str, Any]]:
    """Bulk bodies of ``min_size``..``max_size`` (within 1..MAX_ENTRIES) entries, unique ids."""
    ids = draw(st.lists(device_ids(warn_chars=warn_chars), min_size=max(min_size, 1),
                        max_size=min(max_size, MAX_ENTRIES), unique=True))
    return [draw(entries(i, twin_size=twin_size, warn_chars=warn_chars)) for i in ids]


@st.composite
def valid_import_lines(draw: DrawFn, *, min_size: int = 1, max_size: int = 20,
                       warn_chars: bool = False, twin_size: int = 512) -> list[dict[str, Any]]:
    """Import-file lines (objects, one per line) with ids unique across the file."""
    ids = draw(st.lists(device_ids(warn_chars=warn_chars), min_size=min_size, max_size=max_size,
                        unique=True))
    return [draw(entries(i, modes=IMPORT_MODES, twin_size=twin_size, warn_chars=warn_chars))
            for i in ids]


def import_lines(lines: list[dict[str, Any]]) -> list[bytes]:
    """The lines of an import file (newline-terminated UTF-8) for ``valid_import_lines`` draws."""
    return [json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n" for line in lines]


def as_body(payload: Any) -> bytes:
    """The wire body of a payload: bytes stay as they are, a JSON value is serialised."""
    if isinstance(payload, bytes):
        return payload
    # ensure_ascii keeps lone surrogates as \\uD800 escapes, which is what a mutation wants
    return json.dumps(payload).encode("utf-8")


# --- targeted mutations ------------------------------------------------------------------------

Payload = list[dict[str, Any]]
Mutate = Callable[[DrawFn, Payload], Any]


class Mutation(NamedTuple):
    rule: str
    code: str | None
    mutate: Mutate  # (draw, valid payload) -> mutated payload (a JSON value or the body bytes)


TABLE: list[Mutation] = []


def mutation(rule: str) -> Callable[[Mutate], Mutate]:
    def register(fn: Mutate) -> Mutate:
        TABLE.append(Mutation(rule, RULES[rule].code, fn))
        return fn

    return register


def _pick(draw: DrawFn, payload: Payload) -> dict[str, Any]:
    return payload[draw(st.integers(0, len(payload) - 1))]


def _with_tags(draw: DrawFn, payload: Payload, tags: Any) -> Payload:
    _pick(draw, payload)["tags"] = tags
    return payload


@mutation("json-syntax")
def _trailing_data(draw: DrawFn, payload: Payload) -> bytes:
    return as_body(payload) + draw(st.sampled_from([b" x", b",", b"]", b"{}"]))


@mutation("json-encoding")
def _bom(draw: DrawFn, payload: Payload) -> bytes:
    return b"\xef\xbb\xbf" + as_body(payload)


@mutation("json-lone-surrogate")
def _lone_surrogate(draw: DrawFn, payload: Payload) -> Payload:
    return _with_tags(draw, payload, {"x": chr(draw(st.integers(0xD800, 0xDFFF)))})


@mutation("json-duplicate-key")
def _duplicate_key(draw: DrawFn, payload: Payload) -> bytes:
    index = draw(st.integers(0, len(payload) - 1))
    parts = [json.dumps(entry) for entry in payload]
    entry = parts[index]
    parts[index] = '{"id": ' + json.dumps(payload[index]["id"]) + ", " + entry[1:]
    return ("[" + ", ".join(parts) + "]").encode("utf-8")


@mutation("json-nonfinite")
def _nonfinite(draw: DrawFn, payload: Payload) -> Payload:
    return _with_tags(draw, payload, {"x": draw(st.sampled_from([math.nan, math.inf, -math.inf]))})


@mutation("json-number-range")
def _huge_number(draw: DrawFn, payload: Payload) -> bytes:
    literal = draw(st.sampled_from(["1e400", "-1e400", "1" + "0" * 400, "1.8e308"]))
    _with_tags(draw, payload, {"x": "\x00HUGE\x00"})
    return as_body(payload).replace(b'"\\u0000HUGE\\u0000"', literal.encode())


@mutation("json-depth")
def _too_deep(draw: DrawFn, payload: Payload) -> bytes:
    levels = draw(st.integers(LIMITS["json_max_depth"], LIMITS["json_max_depth"] + 50))
    return b"[" * levels + as_body(payload) + b"]" * levels


@mutation("bulk-not-array")
def _not_array(draw: DrawFn, payload: Payload) -> Any:
    return draw(st.sampled_from([{"devices": payload}, payload[0], None, "devices"]))


@mutation("bulk-empty")
def _empty(draw: DrawFn, payload: Payload) -> Payload:
    return []


@mutation("too-many-devices")
def _too_many(draw: DrawFn, payload: Payload) -> Payload:
    taken = {entry["id"] for entry in payload}
    extra = draw(st.integers(MAX_ENTRIES + 1 - len(payload), MAX_ENTRIES + 20 - len(payload)))
    n = 0
    while extra:
        n += 1
        new_id = f"extra-{n}"
        if new_id not in taken:
            payload.append({"id": new_id, "importMode": "delete"})
            extra -= 1
    return payload


@mutation("duplicate-id")
def _duplicate_id(draw: DrawFn, payload: Payload) -> Payload:
    source = _pick(draw, payload)
    if len(payload) >= 2 and draw(st.booleans()):
        target = next(e for e in payload if e is not source)
        target["id"] = source["id"]
    elif len(payload) < MAX_ENTRIES:
        payload.append({"id": source["id"], "importMode": "delete"})
    else:
        payload[-1 if source is not payload[-1] else 0]["id"] = source["id"]
    return payload


@mutation("value-type")
def _wrong_type(draw: DrawFn, payload: Payload) -> Payload:
    entry = _pick(draw, payload)
    field, value = draw(st.sampled_from([("capabilities", {"iotEdge": "yes"}), ("tags", "x"),
                                         ("statusReason", 5), ("parentScopes", "scope")]))
    entry[field] = value
    return payload


@mutation("enum-value")
def _enum_value(draw: DrawFn, payload: Payload) -> Payload:
    entry = _pick(draw, payload)
    field, value = draw(st.sampled_from([("status", "active"), ("importMode", "upsert"),
                                         ("importMode", "createOrUpdate"),
                                         ("authentication", {"type": "SELF_SIGNED"})]))
    entry[field] = value
    return payload


@mutation("enum-case")
def _enum_case(draw: DrawFn, payload: Payload) -> Payload:
    entry = _pick(draw, payload)
    mode = entry.get("importMode", "create")
    # every canonical mode starts lower case, so both spellings differ from it
    entry["importMode"] = draw(st.sampled_from([mode.upper(), mode[0].upper() + mode[1:]]))
    return payload


@mutation("unknown-property")
def _unknown_property(draw: DrawFn, payload: Payload) -> Payload:
    _pick(draw, payload)[draw(st.sampled_from(["etag", "deviceID", "twinEtag", "mode"]))] = "x"
    return payload


@mutation("device-id-missing")
def _no_id(draw: DrawFn, payload: Payload) -> Payload:
    del _pick(draw, payload)["id"]
    return payload


@mutation("device-id-format")
def _bad_id(draw: DrawFn, payload: Payload) -> Payload:
    entry = _pick(draw, payload)
    entry["id"] = draw(st.sampled_from([entry["id"] + " x", "é" + entry["id"], "",
                                        "d" * (ID_MAX + 1), entry["id"] + "/"]))
    return payload


@mutation("module-id-format")
def _bad_module_id(draw: DrawFn, payload: Payload) -> Payload:
    _pick(draw, payload)["moduleId"] = draw(st.sampled_from(["my module", "", "m" * (ID_MAX + 1),
                                                             "módulo"]))
    return payload


@mutation("id-unsupported-char")
def _warn_id(draw: DrawFn, payload: Payload) -> Payload:
    entry = _pick(draw, payload)
    entry["id"] = entry["id"][:-1] + draw(st.sampled_from(list(ID_WARN_SPECIALS)))
    return payload


@mutation("status-reason-length")
def _long_status_reason(draw: DrawFn, payload: Payload) -> Payload:
    reason = draw(st.text(_UTF8, min_size=STATUS_REASON_MAX + 1,
                          max_size=STATUS_REASON_MAX * 2))
    _pick(draw, payload)["statusReason"] = reason
    return payload


@mutation("import-mode-missing")
def _no_mode(draw: DrawFn, payload: Payload) -> Payload:
    _pick(draw, payload).pop("importMode", None)
    return payload


@mutation("etag-required")
def _no_etag(draw: DrawFn, payload: Payload) -> Payload:
    entry = _pick(draw, payload)
    entry["importMode"] = draw(st.sampled_from(sorted(_ETAG_MODES)))
    entry.pop("eTag", None)
    return payload


@mutation("twin-etag-required")
def _no_twin_etag(draw: DrawFn, payload: Payload) -> Payload:
    entry = _pick(draw, payload)
    entry["importMode"] = draw(st.sampled_from(sorted(_TWIN_ETAG_MODES)))
    entry.pop("twinETag", None)
    return payload


@mutation("mode-ignored-field")
def _ignored_field(draw: DrawFn, payload: Payload) -> Payload:
    entry = _pick(draw, payload)
    field, value = draw(st.sampled_from([("status", "enabled"), ("tags", {"a": 1}),
                                         ("authentication", {"type": "sas"})]))
    entry["importMode"] = draw(st.sampled_from(sorted(_DELETE_MODES)))
    entry.setdefault("eTag", "MQ==")  # deleteIfMatchETag needs it; delete ignores it (a warning)
    entry[field] = value
    return payload


@mutation("auth-type-mismatch")
def _auth_mismatch(draw: DrawFn, payload: Payload) -> Payload:
    key = draw(_keys())
    auth = draw(st.sampled_from([
        {"type": "selfSigned"},
        {"type": "none", "symmetricKey": {"primaryKey": key, "secondaryKey": key}},
        {"type": "certificateAuthority", "symmetricKey": {"primaryKey": key, "secondaryKey": key}},
        {"type": "selfSigned", "symmetricKey": {"primaryKey": key, "secondaryKey": key}},
        {"type": "sas", "x509Thumbprint": {"primaryThumbprint": "a" * _PRINT_LENGTHS[0]}},
    ]))
    _pick(draw, payload)["authentication"] = auth
    return payload


@mutation("auth-keys-pair")
def _one_key(draw: DrawFn, payload: Payload) -> Payload:
    which = draw(st.sampled_from(["primaryKey", "secondaryKey"]))
    _pick(draw, payload)["authentication"] = {"type": "sas", "symmetricKey": {which: draw(_keys())}}
    return payload


@mutation("auth-key-invalid")
def _bad_key(draw: DrawFn, payload: Payload) -> Payload:
    bad = draw(st.one_of(
        st.binary(min_size=1, max_size=_KEY_MIN - 1).map(lambda b: base64.b64encode(b).decode()),
        st.binary(min_size=_KEY_MAX + 1, max_size=_KEY_MAX + 32).map(
            lambda b: base64.b64encode(b).decode()),
        st.just("not base64!"),
    ))
    _pick(draw, payload)["authentication"] = {
        "type": "sas", "symmetricKey": {"primaryKey": draw(_keys()), "secondaryKey": bad}}
    return payload


@mutation("auth-thumbprint-format")
def _bad_thumbprint(draw: DrawFn, payload: Payload) -> Payload:
    longest = max(_PRINT_LENGTHS)
    length = draw(st.integers(1, longest + 16).map(
        lambda n: n if n not in _PRINT_LENGTHS else n + 1))
    bad = draw(st.one_of(_hex(length), st.just("g" * _PRINT_LENGTHS[0])))
    _pick(draw, payload)["authentication"] = {"type": "selfSigned",
                                              "x509Thumbprint": {"primaryThumbprint": bad}}
    return payload


@mutation("auth-thumbprint-lengths")
def _mixed_thumbprints(draw: DrawFn, payload: Payload) -> Payload:
    first, second = draw(st.permutations(_PRINT_LENGTHS[:2]))
    _pick(draw, payload)["authentication"] = {"type": "selfSigned", "x509Thumbprint": {
        "primaryThumbprint": draw(_hex(first)), "secondaryThumbprint": draw(_hex(second))}}
    return payload


@mutation("auth-keys-and-thumbprints")
def _keys_and_thumbprints(draw: DrawFn, payload: Payload) -> Payload:
    key = draw(_keys())
    auth: dict[str, Any] = {"symmetricKey": {"primaryKey": key, "secondaryKey": key},
                            "x509Thumbprint": {"primaryThumbprint": draw(_hex(
                                _PRINT_LENGTHS[0]))}}
    if draw(st.booleans()):
        auth["type"] = draw(st.sampled_from(["sas", "selfSigned"]))
    _pick(draw, payload)["authentication"] = auth
    return payload


@mutation("twin-depth")
def _too_deep_twin(draw: DrawFn, payload: Payload) -> Payload:
    budget = _Budget(_SECTION_BUDGET)
    return _with_tags(draw, payload, {"deep": _spine(draw, TWIN_MAX_DEPTH + 1 + draw(
        st.integers(0, 3)), budget)})


@mutation("twin-key-chars")
def _bad_twin_key(draw: DrawFn, payload: Payload) -> Payload:
    key = draw(twin_keys(max_chars=8))
    bad = draw(st.sampled_from([".", "$", " ", "\x00", "\t", "\x1f", "\x80", "\x85", "\x9f"]))
    at = draw(st.integers(0, len(key)))
    return _with_tags(draw, payload, {key[:at] + bad + key[at:]: 1})


@mutation("twin-key-length")
def _long_twin_key(draw: DrawFn, payload: Payload) -> Payload:
    unit = draw(st.sampled_from(["k", "é", "€", "😀"]))
    width = len(unit.encode("utf-8"))
    count = _KEY_BYTES // width + 1 + draw(st.integers(0, 8))
    return _with_tags(draw, payload, {unit * count: 1})


@mutation("twin-string-length")
def _long_twin_string(draw: DrawFn, payload: Payload) -> Payload:
    unit = draw(st.sampled_from(["v", "é", "€", "😀"]))
    width = len(unit.encode("utf-8"))
    count = _STRING_BYTES // width + 1 + draw(st.integers(0, 8))
    return _with_tags(draw, payload, {"s": unit * count})


@mutation("twin-integer-range")
def _big_integer(draw: DrawFn, payload: Payload) -> Payload:
    value = draw(st.one_of(st.integers(_INT_MAX + 1, 2**62), st.integers(-(2**62), _INT_MIN - 1)))
    return _with_tags(draw, payload, {"n": value})


@mutation("twin-array-null")
def _null_item(draw: DrawFn, payload: Payload) -> Payload:
    items: list[Any] = [1, "a", True]
    items.insert(draw(st.integers(0, 3)), None)
    return _with_tags(draw, payload, {"list": items})


@mutation("twin-section-size")
def _big_section(draw: DrawFn, payload: Payload) -> Payload:
    # three strings of 4000 characters exceed 8 KB; each stays within the 4 KB value limit
    return _with_tags(draw, payload, {f"k{i}": "a" * 4000 for i in range(3)})


@mutation("twin-metadata-ignored")
def _metadata(draw: DrawFn, payload: Payload) -> Payload:
    name = draw(st.sampled_from(["desired", "reported"]))
    _pick(draw, payload)["properties"] = {name: {"$version": draw(st.integers(1, 99))}}
    return payload


@mutation("parent-scopes-count")
def _two_parents(draw: DrawFn, payload: Payload) -> Payload:
    scopes = draw(st.lists(st.text(string.ascii_letters, min_size=1, max_size=20), min_size=2,
                           max_size=4))
    _pick(draw, payload)["parentScopes"] = scopes
    return payload


@st.composite
def mutated_bodies(draw: DrawFn, mutate: Mutate, *, max_size: int = 4) -> bytes:
    """A valid payload of 1..max_size entries with ``mutate`` applied, as the wire body."""
    payload = draw(valid_bulk_payloads(max_size=max_size, twin_size=_SECTION_BUDGET // 8))
    return as_body(mutate(draw, payload))


MUTATIONS: list[tuple[str, SearchStrategy[bytes]]] = [
    (m.rule, mutated_bodies(m.mutate)) for m in TABLE
]
