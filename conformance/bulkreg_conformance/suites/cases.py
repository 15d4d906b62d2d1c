"""Deterministic cases: one negative payload per rule, and the importMode x outcome scenarios.

These guarantee the default run's coverage (every rule of the rule table exercised negatively,
every importMode with every outcome) however few examples hypothesis draws. A rule case is a
function of a fresh in-prefix id; it returns the body as bytes (so broken JSON can be sent) and
the rule it must trigger. ``tests/conformance`` checks that the offline validator reports each
case's rule, so the table cannot drift from the rule table silently.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import bulkreg_schema
from bulkreg_validator import LIMITS

__all__ = ["API_VERSION_OF", "RULE_CASES", "RULE_VARIANTS", "nest", "rule_case"]

Maker = Callable[[str], Any]  # id -> JSON value, or bytes for bodies JSON cannot express

_CONTRACT = bulkreg_schema.contract()  # every limit below is read from the schema files
_KEY = base64.b64encode(bytes(range(_CONTRACT.key_decoded_bytes[0] * 2))).decode()
_SHA1 = "ab" * (_CONTRACT.thumbprint_lengths[0] // 2)
_SHA256 = "cd" * (_CONTRACT.thumbprint_lengths[1] // 2)
_DEEPER = LIMITS["json_max_depth"] + 76  # past the parser's nesting limit


def _one(**fields: Any) -> Maker:
    return lambda i: [{"id": i, "importMode": "create", **fields}]


def _desired(value: dict[str, Any]) -> Maker:
    return _one(properties={"desired": value})


def _section(limit: int) -> dict[str, str]:
    return {f"k{n}": "v" * 1000 for n in range(limit // 1000 + 1)}


def nest(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for level in range(depth):
        value = {f"l{level}": value}
    return value


RULE_CASES: dict[str, Maker] = {
    "json-syntax": lambda i: f'[{{"id": "{i}", "importMode": "create"}}'.encode(),
    "json-encoding": lambda i: b"\xef\xbb\xbf" + json.dumps([{"id": i}]).encode(),
    "json-lone-surrogate": lambda i: (
        f'[{{"id": "{i}", "importMode": "create", "tags": {{"k": "\\ud800"}}}}]').encode(),
    "json-duplicate-key": lambda i: (
        f'[{{"id": "{i}", "importMode": "delete", "importMode": "create"}}]').encode(),
    "json-nonfinite": lambda i: (
        f'[{{"id": "{i}", "importMode": "create", "tags": {{"k": NaN}}}}]').encode(),
    "json-number-range": lambda i: (
        f'[{{"id": "{i}", "importMode": "create", "tags": {{"k": 1e400}}}}]').encode(),
    "json-depth": lambda i: (f'[{{"id": "{i}", "tags": {{"k": ' + "[" * _DEEPER
                             + "]" * _DEEPER + "}}]").encode(),
    "bulk-not-array": lambda i: {"id": i, "importMode": "create"},
    "bulk-empty": lambda i: [],
    "too-many-devices": lambda i: [{"id": f"{i}-{n}", "importMode": "create"}
                                   for n in range(_CONTRACT.max_entries + 1)],
    "duplicate-id": lambda i: [{"id": i, "importMode": "create"},
                               {"id": i, "importMode": "delete"}],
    "value-type": _one(capabilities={"iotEdge": "yes"}),
    "enum-value": _one(status="paused"),
    "enum-case": lambda i: [{"id": i, "importMode": "Create", "status": "Enabled"}],
    "unknown-property": _one(thumbprint="x"),
    "device-id-missing": lambda i: [{"importMode": "create"}],
    "device-id-format": lambda i: [{"id": i + " /", "importMode": "create"}],
    "module-id-format": _one(moduleId="m /"),
    "id-unsupported-char": lambda i: [{"id": i + "+#", "importMode": "create"}],
    "status-reason-length": _one(statusReason="r" * (_CONTRACT.status_reason_max_length + 1)),
    "import-mode-missing": lambda i: [{"id": i}],
    "etag-required": lambda i: [{"id": i, "importMode": "updateIfMatchETag"}],
    "twin-etag-required": lambda i: [{"id": i, "importMode": "updateTwinIfMatchETag",
                                      "tags": {"a": 1}}],
    "mode-ignored-field": lambda i: [{"id": i, "importMode": "delete", "tags": {"a": 1}}],
    "auth-type-mismatch": _one(authentication={"type": "selfSigned", "symmetricKey": {
        "primaryKey": _KEY, "secondaryKey": _KEY}}),
    "auth-keys-pair": _one(authentication={"type": "sas", "symmetricKey": {"primaryKey": _KEY}}),
    "auth-key-invalid": _one(authentication={"type": "sas", "symmetricKey": {
        "primaryKey": "c2hvcnQ=", "secondaryKey": "c2hvcnQ="}}),
    "auth-thumbprint-format": _one(authentication={"type": "selfSigned", "x509Thumbprint": {
        "primaryThumbprint": "xyz", "secondaryThumbprint": _SHA1}}),
    "auth-thumbprint-lengths": _one(authentication={"type": "selfSigned", "x509Thumbprint": {
        "primaryThumbprint": _SHA1, "secondaryThumbprint": _SHA256}}),
    "auth-keys-and-thumbprints": _one(authentication={
        "symmetricKey": {"primaryKey": _KEY, "secondaryKey": _KEY},
        "x509Thumbprint": {"primaryThumbprint": _SHA1, "secondaryThumbprint": _SHA1}}),
    "twin-depth": _one(tags=nest(_CONTRACT.twin_max_depth + 1)),
    "twin-key-chars": _one(tags={"a.b": 1}),
    "twin-key-length": _one(tags={"k" * (LIMITS["twin_key_bytes"] + 1): 1}),
    "twin-string-length": _one(tags={"k": "v" * (LIMITS["twin_string_bytes"] + 1)}),
    "twin-integer-range": _one(tags={"k": _CONTRACT.twin_integer_range[1] + 1}),
    "twin-array-null": _one(tags={"k": [1, None]}),
    "twin-array-api-version": _one(tags={"k": [1]}),  # sent with api-version 2019-03-30
    "twin-section-size": _one(tags=_section(LIMITS["tags_bytes"])),
    "twin-metadata-ignored": _one(properties={"desired": {"$metadata": {}, "$version": 3}}),
    "parent-scopes-count": _one(parentScopes=["a", "b"]),
    "parent-scopes-api-version": _one(parentScopes=["a"]),  # sent with api-version 2020-05-31
}

# More payloads that break a rule another way: the other end of a range, the desired
# properties beside the tags, another character. An endpoint that checks one place or one end
# only passes the first case and fails these; each is one more call of the rule's unit.
RULE_VARIANTS: dict[str, tuple[Maker, ...]] = {
    "device-id-format": (lambda i: [{"id": (i + "L" * _CONTRACT.id_max_length)[
        :_CONTRACT.id_max_length + 1], "importMode": "create"}],),
    "enum-value": (lambda i: [{"id": i, "importMode": "upsert"}],),
    "twin-integer-range": (_one(tags={"k": _CONTRACT.twin_integer_range[0] - 1}),),
    "twin-depth": (_desired(nest(_CONTRACT.twin_max_depth + 1)),),
    "twin-key-chars": (_desired({"a.b": 1}), _one(tags={"$k": 1}), _one(tags={"a b": 1})),
    "twin-key-length": (_desired({"k" * (LIMITS["twin_key_bytes"] + 1): 1}),),
    "twin-string-length": (_desired({"k": "v" * (LIMITS["twin_string_bytes"] + 1)}),),
    "twin-section-size": (_desired(_section(LIMITS["desired_bytes"])),),
}

# Rules that need an older api-version to show (facts §1.3).
API_VERSION_OF: dict[str, str] = {
    "twin-array-api-version": "2019-03-30",
    "parent-scopes-api-version": "2020-05-31-preview",
}


def rule_case(rule: str, device_id: str, variant: int | None = None) -> bytes:
    """The body of the rule's case (``variant``: of its n-th variant)."""
    value = (RULE_CASES[rule] if variant is None else RULE_VARIANTS[rule][variant])(device_id)
    if isinstance(value, bytes):
        return value
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
