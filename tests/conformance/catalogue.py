"""The mutation catalogue: broken hubs, one realistic defect each, one or more per claim the kit
makes (issue 13). Every one must fail the run naming the right check, and nothing else.

Classes (``Mutant.kind``):

- ``member``: a member a write stores is lost, swapped or altered on its way in;
- ``lax``: a rule is not enforced (the hub repairs the violation and applies the entry, as a
  lenient reader would);
- ``strict``: a rule is over-enforced (the valid side at its limit is refused);
- ``etag``: an etag is not bumped, or not checked;
- ``identity``: ids are folded to one case;
- ``auth``: a read-only policy may write;
- ``answer``: an answer is malformed (status, result body, codes, auth, 5xx).

A defect against a claim of ``observed``/``inferred`` evidence is a deviation, not a failure
(``verdict``). The hubs are the reference hub behind the middleware of ``variants.Variant``.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, unquote_plus

from werkzeug.wrappers import Request

import bulkreg_schema
from bulkreg_conformance.hub.app import Hub
from bulkreg_conformance.oracle import API_VERSIONS
from bulkreg_conformance.sas import Policy, SasError, generate_token, verify_token
from bulkreg_validator import LIMITS

from .conftest import call_hub
from .variants import (
    Variant,
    _entries,
    _id,
    _mode,
    each_entry,
    entries_where,
    errors_of,
    refuse_if,
)

Json = Any
App = Callable[..., Any]
Factory = Callable[[App, Hub], App]
_CONTRACT = bulkreg_schema.contract()
_DEPTH = _CONTRACT.twin_max_depth
ID_MAX = _CONTRACT.id_max_length
_MODES = {m.lower() for m in _CONTRACT.bulk_modes}


class Mutant(NamedTuple):
    kind: str
    name: str
    make: Factory
    checks: frozenset[str]  # the checks that must fail (at least one) and the only ones that may
    verdict: str = "failed"  # "failed", or "deviation" for a claim of weaker evidence


def _v(**hooks: Callable[..., Any]) -> Factory:
    return lambda app, hub: Variant(app, hub, **hooks)


def _auth(entry: dict[str, Any]) -> dict[str, Any]:
    auth = entry.get("authentication")
    return auth if isinstance(auth, dict) else {}


def _writes(entry: dict[str, Any]) -> bool:
    return _mode(entry) in {"create", "update", "updateIfMatchETag", "createOrUpdate"}


def _shown(path: str, fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Factory:
    """Reads (``GET {path}{id}``) show what the hub stored as ``fn`` changes it: the member was
    lost, swapped or altered on its way into the store."""
    def after(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
        if req.method == "GET" and req.path.startswith(path) and isinstance(body, dict):
            changed = fn(copy.deepcopy(body))
            if changed is not None:
                body = changed
        return status, headers, body
    return _v(after=after)


def _device(fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Factory:
    return _shown("/devices/", fn)


def _twin(fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Factory:
    return _shown("/twins/", fn)


def _swap_keys(body: dict[str, Any]) -> dict[str, Any] | None:
    sym = _auth(body).get("symmetricKey")
    if isinstance(sym, dict) and sym.get("primaryKey") and sym.get("secondaryKey"):
        sym["primaryKey"], sym["secondaryKey"] = sym["secondaryKey"], sym["primaryKey"]
        return body
    return None


def _secondary_is_primary(body: dict[str, Any]) -> dict[str, Any] | None:
    sym = _auth(body).get("symmetricKey")
    if isinstance(sym, dict) and sym.get("primaryKey") and sym.get("secondaryKey"):
        sym["secondaryKey"] = sym["primaryKey"]
        return body
    return None


def _thumbprints(fn: Callable[[dict[str, Any]], None]) -> Callable[..., Any]:
    def change(body: dict[str, Any]) -> dict[str, Any] | None:
        prints = _auth(body).get("x509Thumbprint")
        if isinstance(prints, dict) and prints.get("primaryThumbprint"):
            fn(prints)
            return body
        return None
    return change


def _swap_prints(prints: dict[str, Any]) -> None:
    prints["primaryThumbprint"], prints["secondaryThumbprint"] = \
        prints.get("secondaryThumbprint"), prints["primaryThumbprint"]


def _set_if(path: tuple[str, ...], test: Callable[[Any], bool], value: Callable[[Any], Any]
            ) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    def change(body: dict[str, Any]) -> dict[str, Any] | None:
        node: Any = body
        for step in path[:-1]:
            node = node.get(step) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node and test(node[path[-1]]):
            node[path[-1]] = value(node[path[-1]])
            return body
        return None
    return change


def _numbers_as_strings(body: dict[str, Any]) -> dict[str, Any] | None:
    tags = body.get("tags")
    if isinstance(tags, dict) and any(type(x) is int for x in tags.values()):
        body["tags"] = {k: str(x) if type(x) is int else x for k, x in tags.items()}
        return body
    return None


def _cut_strings(limit: int) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    def walk(value: Json) -> Json:
        if isinstance(value, str):
            return value[:limit]
        if isinstance(value, dict):
            return {k: walk(x) for k, x in value.items()}
        if isinstance(value, list):
            return [walk(x) for x in value]
        return value

    def change(body: dict[str, Any]) -> dict[str, Any] | None:
        desired = (body.get("properties") or {}).get("desired")
        cut = walk(desired)
        if cut != desired:
            body["properties"]["desired"] = cut
            return body
        return None
    return change


def _truthy(value: Any) -> bool:
    return value not in (None, "", [], {})


MEMBER = frozenset({"readback-device"})
TWIN = frozenset({"readback-twin"})

MEMBERS: list[Mutant] = [
    Mutant("member", "primary and secondary keys swapped", _device(_swap_keys), MEMBER),
    Mutant("member", "secondary key stored as the primary", _device(_secondary_is_primary),
           MEMBER),
    Mutant("member", "thumbprints swapped", _device(_thumbprints(_swap_prints)), MEMBER),
    Mutant("member", "primary thumbprint lost", _device(_thumbprints(
        lambda p: p.update(primaryThumbprint=None))), MEMBER),
    Mutant("member", "secondary thumbprint lost", _device(_thumbprints(
        lambda p: p.update(secondaryThumbprint=None))), MEMBER),
    Mutant("member", "certificateAuthority stored as none", _device(_set_if(
        ("authentication", "type"), lambda t: t == "certificateAuthority", lambda t: "none")),
        MEMBER),
    Mutant("member", "status disabled stored as enabled", _device(_set_if(
        ("status",), lambda s: s == "disabled", lambda s: "enabled")), MEMBER),
    Mutant("member", "statusReason lost", _device(_set_if(
        ("statusReason",), _truthy, lambda r: None)), MEMBER),
    Mutant("member", "statusReason cut to 64 characters", _device(_set_if(
        ("statusReason",), lambda r: isinstance(r, str) and len(r) > 64, lambda r: r[:64])),
        MEMBER),
    Mutant("member", "capabilities.iotEdge lost", _device(_set_if(
        ("capabilities", "iotEdge"), lambda x: x is True, lambda x: False)), MEMBER),
    Mutant("member", "deviceScope lost", _device(_set_if(("deviceScope",), _truthy,
                                                         lambda x: None)), MEMBER),
    Mutant("member", "parentScopes lost", _device(_set_if(
        ("parentScopes",), _truthy, lambda p: [])), MEMBER),
    Mutant("member", "tags lost", _twin(_set_if(("tags",), _truthy, lambda t: {})), TWIN),
    Mutant("member", "desired properties lost", _twin(_set_if(
        ("properties", "desired"), lambda d: any(not k.startswith("$") for k in d),
        lambda d: {k: x for k, x in d.items() if k.startswith("$")})), TWIN),
    Mutant("member", "tag numbers stored as strings", _twin(_numbers_as_strings), TWIN),
    Mutant("member", "desired strings cut to 1024 characters", _twin(_cut_strings(1024)),
           TWIN),
]


# -- lax: a rule not enforced -------------------------------------------------------------------

def _raw(fix: Callable[[bytes], bytes | None]) -> Callable[..., Any]:
    """A lenient reader: ``fix`` repairs the bytes of a bulk body before the hub sees them."""
    def first(v: Variant, req: Request) -> Any:
        if req.method != "POST" or req.path.rstrip("/") != "/devices" or not v._may_write(req):
            return None
        data = req.get_data()
        fixed = fix(data)
        if fixed is None:
            return None
        environ = dict(req.environ)
        environ.update(CONTENT_LENGTH=str(len(fixed)), **{"wsgi.input": io.BytesIO(fixed)})
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda _: None

        body = b"".join(v.app(environ, start))
        return int(captured["status"].split()[0]), dict(captured["headers"]), json.loads(body)
    return first


def _lenient(repair: Callable[[Any], Any], *, duplicates: bool = False
             ) -> Callable[[bytes], bytes | None]:
    """A reader lenient in one way only: ``repair`` changes what the strict reader refuses
    (``duplicates``: a repeated member name, the last one kept); any other body is left to the
    hub."""
    def fix(data: bytes) -> bytes | None:
        seen: list[bool] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            if len({k for k, _ in items}) != len(items):
                seen.append(True)
            return dict(items)

        try:
            parsed = json.loads(data.decode("utf-8", "surrogatepass"), object_pairs_hook=pairs)
            repaired = repair(parsed)
            if (seen and not duplicates) or (not seen and repaired == parsed) or (
                    seen and duplicates and repaired != parsed):
                return None
            return json.dumps(repaired, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (ValueError, RecursionError, UnicodeError):
            return None
    return fix


def _nan_as_zero(value: Json) -> Json:
    if isinstance(value, float) and not math.isfinite(value):
        return 0.0
    if isinstance(value, dict):
        return {k: _nan_as_zero(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_nan_as_zero(x) for x in value]
    return value


def _no_lone_surrogates(value: Json) -> Json:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8").replace("?", "\ufffd") \
            if any(0xD800 <= ord(c) <= 0xDFFF for c in value) else value
    if isinstance(value, dict):
        return {k: _no_lone_surrogates(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_no_lone_surrogates(x) for x in value]
    return value


def _walk_twin(entry: dict[str, Any], fn: Callable[[Json, int], Json]) -> dict[str, Any] | None:
    out = dict(entry)
    if isinstance(entry.get("tags"), dict):
        out["tags"] = fn(entry["tags"], 0)
    props = entry.get("properties")
    if isinstance(props, dict):
        out["properties"] = {k: fn(x, 0) if isinstance(x, dict) else x for k, x in props.items()}
    return out if out != entry else None


def _flatten(value: Json, depth: int) -> Json:
    """Containers nested deeper than the limit replaced by 1 (the section root is depth 0)."""
    if isinstance(value, dict):
        return {k: (_flatten(x, depth + 1) if depth < _DEPTH else 1)
                if isinstance(x, dict | list) else x for k, x in value.items()}
    if isinstance(value, list):
        return [(_flatten(x, depth + 1) if depth < _DEPTH else 1)
                if isinstance(x, dict | list) else x for x in value]
    return value


def _twin_map(key: Callable[[str], str], val: Callable[[Json], Json]) -> Callable[..., Any]:
    def walk(value: Json, depth: int) -> Json:
        if isinstance(value, dict):
            return {key(k): walk(x, depth + 1) for k, x in value.items()}
        if isinstance(value, list):
            return [walk(x, depth + 1) for x in value]
        return val(value)
    return lambda v, e: _walk_twin(e, walk)


def _key_chars(k: str) -> str:
    return "".join("_" if c in ".$ " or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F else c
                   for c in k) if not k.startswith("$") else k


def _clamp(x: Json) -> Json:
    low, high = _CONTRACT.twin_integer_range
    return max(low, min(high, x)) if type(x) is int else x


def _fit_sections(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    """Tags over the limit (by the docs' size algorithm) cut to the members that fit."""
    tags = entry.get("tags")
    if isinstance(tags, dict) and _docs_size(tags) > LIMITS["tags_bytes"]:
        kept: dict[str, Any] = {}
        for key, value in tags.items():
            if _docs_size({**kept, key: value}) > LIMITS["tags_bytes"]:
                break
            kept[key] = value
        return {**entry, "tags": kept}
    return None


def _sanitize(name: str) -> Callable[..., Any]:
    def change(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
        value = entry.get(name)
        if not isinstance(value, str):
            return None
        clean = "".join(c if c.isascii() and (c.isalnum() or c in "-:.+%_#*?!(),=@;$'") else "_"
                        for c in value)[:128]
        return {**entry, name: clean} if clean != value else None
    return change


def _drop_wrong(name: str, test: Callable[[Any], bool]) -> Callable[..., Any]:
    def change(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
        return {k: x for k, x in entry.items() if k != name} if name in entry and \
            test(entry[name]) else None
    return change


def _mode_as(old: str, new: str, member: str) -> Callable[..., Any]:
    """``old`` entries without their ``member`` (the etag) applied as ``new``."""
    return lambda v, e: {**e, "importMode": new} if _mode(e) == old and member not in e \
        else None


def _first_parent(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    scopes = entry.get("parentScopes")
    return {**entry, "parentScopes": scopes[:1]} if isinstance(scopes, list) and \
        len(scopes) > 1 else None


def _dedupe(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
    if not isinstance(body, list):
        return None
    seen: dict[Any, Any] = {}
    for entry in body:
        seen[_id(entry) or id(entry)] = entry
    return list(seen.values()) if len(seen) != len(body) else None


def _keys_fixed(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    auth = _auth(entry)
    sym = auth.get("symmetricKey")
    if not isinstance(sym, dict):
        return None
    fixed = {"primaryKey": sym.get("primaryKey") or sym.get("secondaryKey"),
             "secondaryKey": sym.get("secondaryKey") or sym.get("primaryKey")}
    return {**entry, "authentication": {**auth, "symmetricKey": fixed}} if fixed != sym \
        else None


def _valid_key(key: Any) -> bool:
    try:
        size = len(base64.b64decode(key, validate=True))
    except (ValueError, TypeError):
        return False
    low, high = _CONTRACT.key_decoded_bytes
    return low <= size <= high


def _auth_without(*names: str, test: Callable[[dict[str, Any]], bool] = lambda a: True
                  ) -> Callable[..., Any]:
    def change(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
        auth = _auth(entry)
        if not auth or not test(auth) or not any(n in auth for n in names):
            return None
        return {**entry, "authentication": {k: x for k, x in auth.items() if k not in names}}
    return change


def _bad_keys(auth: dict[str, Any]) -> bool:
    sym = auth.get("symmetricKey")
    return isinstance(sym, dict) and not all(_valid_key(sym.get(k)) for k in sym)


def _bad_print_dropped(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    auth = _auth(entry)
    prints = auth.get("x509Thumbprint")
    if not isinstance(prints, dict):
        return None
    kept = {k: (x if isinstance(x, str) and len(x) in _CONTRACT.thumbprint_lengths and all(
        c in "0123456789abcdefABCDEF" for c in x) else None) for k, x in prints.items()}
    return {**entry, "authentication": {**auth, "x509Thumbprint": kept}} if kept != prints \
        else None


def _empty_ok(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
    return (200, {}, {"isSuccessful": True, "errors": [], "warnings": []}) if body == [] \
        else None


REJECT = frozenset({"rejection", "differential"})
ENTRY = frozenset({"errors", "differential"})
RENAMED = REJECT | {"readback-device", "readback-twin"}  # the stored id is not the one sent

LAX: list[Mutant] = [
    Mutant("lax", "json-encoding: a BOM skipped", _v(first=_raw(
        lambda d: d[3:] if d.startswith(b"\xef\xbb\xbf") else None)), REJECT, "deviation"),
    Mutant("lax", "json-lone-surrogate: replaced", _v(first=_raw(_lenient(_no_lone_surrogates))),
           REJECT, "deviation"),
    Mutant("lax", "json-duplicate-key: the last one wins", _v(first=_raw(_lenient(
        lambda x: x, duplicates=True))), REJECT, "deviation"),
    Mutant("lax", "json-nonfinite: NaN read as 0", _v(first=_raw(_lenient(_nan_as_zero))),
           REJECT),
    Mutant("lax", "bulk-not-array: an object taken as one entry", _v(before=lambda v, r, b, e:
           [b] if isinstance(b, dict) else None), REJECT),
    Mutant("lax", "bulk-empty: an empty call succeeds", _v(before=_empty_ok), REJECT,
           "deviation"),
    Mutant("lax", "too-many-devices: the first 100 applied", _v(before=lambda v, r, b, e:
           b[:_CONTRACT.max_entries] if isinstance(b, list) and len(b) > _CONTRACT.max_entries
           else None), REJECT),
    Mutant("lax", "duplicate-id: the last entry wins", _v(before=_dedupe), REJECT),
    Mutant("lax", "value-type: a wrong type dropped", _v(before=each_entry(_drop_wrong(
        "capabilities", lambda c: isinstance(c, dict) and not isinstance(
            c.get("iotEdge"), bool | None)))), REJECT, "deviation"),
    Mutant("lax", "enum-value: an unknown status ignored", _v(before=each_entry(_drop_wrong(
        "status", lambda s: isinstance(s, str) and s.lower() not in {"enabled", "disabled"}))),
        REJECT),
    Mutant("lax", "device-id-missing: the entry skipped", _v(before=entries_where(
        lambda v, e: "id" not in e)), REJECT),
    Mutant("lax", "device-id-format: the id sanitised", _v(before=each_entry(_sanitize("id"))),
           RENAMED),
    Mutant("lax", "module-id-format: the module id sanitised", _v(before=each_entry(
        _sanitize("moduleId"))), REJECT),
    Mutant("lax", "etag-required: no eTag, updated anyway", _v(before=each_entry(
        _mode_as("updateIfMatchETag", "update", "eTag"))), ENTRY),
    Mutant("lax", "twin-etag-required: no twinETag, updated anyway", _v(before=each_entry(
        _mode_as("updateTwinIfMatchETag", "updateTwin", "twinETag"))), ENTRY),
    Mutant("lax", "auth-keys-pair: the missing key copied", _v(before=each_entry(_keys_fixed)),
           REJECT, "deviation"),
    Mutant("lax", "auth-key-invalid: short keys replaced", _v(before=each_entry(_auth_without(
        "symmetricKey", test=_bad_keys))), REJECT, "deviation"),
    Mutant("lax", "auth-thumbprint-format: a bad thumbprint dropped", _v(before=each_entry(
        _bad_print_dropped)), REJECT, "deviation"),
    Mutant("lax", "auth-keys-and-thumbprints: keys dropped", _v(before=each_entry(
        _auth_without("symmetricKey", test=lambda a: "x509Thumbprint" in a
                      and "symmetricKey" in a))), REJECT, "deviation"),
    Mutant("lax", "auth-type-mismatch: the type dropped", _v(before=each_entry(
        _auth_without("type", test=lambda a: a.get("type") == "selfSigned"
                      and "symmetricKey" in a))), REJECT, "deviation"),
    Mutant("lax", "twin-depth: nesting cut at 10", _v(before=each_entry(
        lambda v, e: _walk_twin(e, _flatten))), REJECT),
    Mutant("lax", "twin-key-chars: bad characters replaced", _v(before=each_entry(
        _twin_map(_key_chars, lambda x: x))), REJECT),
    Mutant("lax", "twin-key-length: long keys cut", _v(before=each_entry(_twin_map(
        lambda k: k[:LIMITS["twin_key_bytes"]], lambda x: x))), REJECT),
    Mutant("lax", "twin-string-length: long strings cut", _v(before=each_entry(_twin_map(
        lambda k: k, lambda x: x[:LIMITS["twin_string_bytes"]] if isinstance(x, str)
        else x))), REJECT),
    Mutant("lax", "twin-integer-range: integers clamped", _v(before=each_entry(_twin_map(
        lambda k: k, _clamp))), REJECT),
    Mutant("lax", "twin-section-size: big sections cut", _v(before=each_entry(_fit_sections)),
           REJECT),
    Mutant("lax", "parent-scopes-count: the first scope kept", _v(before=each_entry(
        _first_parent)), REJECT, "deviation"),
]


# -- strict: the valid side at the limit refused -------------------------------------------------

def _depth(value: Json) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(x) for x in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(x) for x in value), default=0)
    return 0


def _twins(body: Json) -> list[Json]:
    out = []
    for entry in _entries(body):
        out.append(entry.get("tags"))
        props = entry.get("properties")
        if isinstance(props, dict):
            out.append(props.get("desired"))
    return [t for t in out if isinstance(t, dict)]


def _keys_and_values(value: Json) -> list[tuple[str | None, Json]]:
    found: list[tuple[str | None, Json]] = []
    if isinstance(value, dict):
        for k, x in value.items():
            found.append((k, x))
            found += _keys_and_values(x)
    elif isinstance(value, list):
        for x in value:
            found.append((None, x))
            found += _keys_and_values(x)
    return found


def _any_twin(test: Callable[[str | None, Json], bool]) -> Callable[[Json], bool]:
    return lambda body: any(test(k, x) for t in _twins(body) for k, x in _keys_and_values(t))


def _docs_size(section: dict[str, Any]) -> int:
    def size(value: Json) -> int:
        if isinstance(value, str):
            return len(value)
        if isinstance(value, bool):
            return 4
        if isinstance(value, int | float):
            return 8
        if isinstance(value, dict):
            return sum(len(k) + size(x) for k, x in value.items())
        if isinstance(value, list):
            return sum(size(x) for x in value)
        return 0
    return size(section)


def _strict(test: Callable[[Json], bool], name: str, verdict: str = "failed",
            checks: frozenset[str] = REJECT | {"errors"}) -> Mutant:
    return Mutant("strict", name, _v(before=refuse_if(test, 400, "ArgumentInvalid")), checks,
                  verdict)


def _ids(body: Json) -> list[str]:
    return [i for i in (_id(e) for e in _entries(body)) if i]


def _auth_values(body: Json, member: str) -> list[str]:
    out = []
    for entry in _entries(body):
        node = _auth(entry).get(member)
        if isinstance(node, dict):
            out += [x for x in node.values() if isinstance(x, str) and x]
    return out


def _key_size(key: str) -> int:
    try:
        return len(base64.b64decode(key, validate=True))
    except ValueError:
        return 0


_STRICT_RULES = frozenset({"rejection", "errors", "differential"})

STRICT: list[Mutant] = [
    _strict(lambda b: any(_depth(t) >= _DEPTH for t in _twins(b)),
            "twin-depth: a twin of depth exactly 10 refused"),
    _strict(_any_twin(lambda k, x: k is not None and len(k.encode()) >= LIMITS["twin_key_bytes"]),
            "twin-key-length: a 1 KB key refused"),
    _strict(_any_twin(lambda k, x: isinstance(x, str) and len(x.encode())
                      >= LIMITS["twin_string_bytes"]), "twin-string-length: a 4 KB value refused"),
    _strict(_any_twin(lambda k, x: type(x) is int and abs(x) >= _CONTRACT.twin_integer_range[1]),
            "twin-integer-range: the range's ends refused"),
    _strict(_any_twin(lambda k, x: k is not None and not k.startswith("$") and not all(
        c.isascii() and (c.isalnum() or c == "_") for c in k)),
            "twin-key-chars: only letters, digits and _ in keys"),
    _strict(lambda b: any(_docs_size(t) >= LIMITS["tags_bytes"] for t in _twins(b)),
            "twin-section-size: a section at its limit refused"),
    _strict(lambda b: any(len(i) >= _CONTRACT.id_max_length for i in _ids(b)),
            "device-id-format: a 128-character id refused"),
    _strict(lambda b: any(c in i for i in _ids(b) for c in "'$("),
            "device-id-format: ' $ ( refused in ids"),
    Mutant("strict", "too-many-devices: 100 entries refused", _v(before=refuse_if(
        lambda b: isinstance(b, list) and len(b) >= _CONTRACT.max_entries, 413,
        "TooManyDevices")), REJECT | {"errors"}),
    _strict(lambda b: any(len(str(e.get("statusReason") or "")) >= 128 for e in _entries(b)),
            "status-reason-length: 128 characters refused"),
    _strict(lambda b: any(_auth(e).get("type") == "none" for e in _entries(b)),
            "enum-value: authentication type none refused"),
    _strict(lambda b: any(_key_size(k) >= _CONTRACT.key_decoded_bytes[1]
                          for k in _auth_values(b, "symmetricKey")),
            "auth-key-invalid: a 64-byte key refused", "deviation"),
    _strict(lambda b: any(len(p) == _CONTRACT.thumbprint_lengths[1]
                          for p in _auth_values(b, "x509Thumbprint")),
            "auth-thumbprint-format: SHA-256 thumbprints refused", "deviation"),
    _strict(lambda b: any(len(str(e.get("moduleId") or "")) >= _CONTRACT.id_max_length
                          for e in _entries(b)),
            "module-id-format: a 128-character module id refused", "deviation"),
    _strict(lambda b: any(e.get("parentScopes") for e in _entries(b)),
            "parent-scopes-count: one parent scope refused", "deviation"),
    _strict(_any_twin(lambda k, x: isinstance(x, list)),
            "twin-array-api-version: twin arrays refused", "deviation"),
    _strict(_any_twin(lambda k, x: isinstance(x, float) and abs(x) > 1e300),
            "json-number-range: floats beyond 1e300 refused"),
    _strict(_any_twin(lambda k, x: isinstance(x, str) and any(ord(c) > 0xFFFF for c in x)),
            "json-lone-surrogate: characters beyond the BMP refused"),
]


# -- etags ---------------------------------------------------------------------------------------

def _frozen_etags(kind: str) -> Factory:
    """Reads show the etag a device (or twin) had when first read: it never changes; an
    IfMatch entry that names it is taken as current."""
    path, member = ("/devices/", "eTag") if kind == "device" else ("/twins/", "twinETag")

    def after(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
        if req.method == "GET" and req.path.startswith(path) and isinstance(body, dict) and \
                isinstance(body.get("etag"), str):
            key = (body.get("deviceId"), body.get("generationId") or body.get("deviceEtag")
                   if kind == "device" else body.get("deviceId"))
            with v.lock:
                frozen = v.state.setdefault("frozen", {}).setdefault(key, body["etag"])
                v.state.setdefault("ids", {})[body.get("deviceId")] = frozen
            body = {**body, "etag": frozen}
        return status, headers, body

    def current(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
        frozen = v.state.get("ids", {}).get(_id(entry))
        if frozen is None or entry.get(member) != frozen:
            return None
        found = v.hub.registry.device(entry["id"]) if kind == "device" else \
            v.hub.registry.twin(entry["id"])
        return {**entry, member: found["etag"]} if found else None

    return _v(before=each_entry(current), after=after)


def _stale_accepted(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    """IfMatch entries pass with any etag this device ever had (a cache that never forgets)."""
    device = v.hub.registry.device(entry["id"]) if _id(entry) else None
    if device is None:
        return None
    with v.lock:
        seen = v.state.setdefault("seen", {}).setdefault(entry["id"], set())
        seen.add(device["etag"])
    if _mode(entry) in {"updateIfMatchETag", "deleteIfMatchETag"} and entry.get("eTag") in seen:
        return {**entry, "eTag": device["etag"]}
    return None


def _remember_etags(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    if req.method == "GET" and req.path.startswith("/devices/") and isinstance(body, dict):
        with v.lock:
            v.state.setdefault("seen", {}).setdefault(body.get("deviceId"), set()).add(
                body.get("etag"))
    return status, headers, body


ETAGS: list[Mutant] = [
    Mutant("etag", "device etag not bumped by an update", _frozen_etags("device"),
           frozenset({"etag-lifecycle", "errors"})),
    Mutant("etag", "twin etag not bumped by a twin update", _frozen_etags("twin"),
           frozenset({"etag-lifecycle", "errors"})),
    Mutant("etag", "eTag not checked (IfMatch modes as plain ones)", _v(before=each_entry(
        lambda v, e: {**e, "importMode": _mode(e).replace("IfMatchETag", "")}
        if _mode(e) in {"updateIfMatchETag", "deleteIfMatchETag"} else None)), ENTRY),
    Mutant("etag", "twinETag not checked", _v(before=each_entry(
        lambda v, e: {**e, "importMode": "updateTwin"}
        if _mode(e) == "updateTwinIfMatchETag" else None)), ENTRY),
    Mutant("etag", "an etag from before the last write still accepted", _v(
        before=each_entry(_stale_accepted), after=_remember_etags), frozenset({"errors"})),
]


# -- ids, auth ----------------------------------------------------------------------------------

def _fold_ids(app: App, hub: Hub) -> App:
    """Ids are matched without regard to case: the first casing seen names the device."""
    names: dict[str, str] = {}

    def canon(device_id: str) -> str:
        return names.setdefault(device_id.lower(), device_id)

    def app_(environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        data = req.get_data()
        for prefix in ("/devices/", "/twins/"):
            if req.path.startswith(prefix) and req.path != "/devices/query":
                rest = req.path[len(prefix):]
                head, _, tail = rest.partition("/")
                environ["PATH_INFO"] = prefix + canon(head) + (f"/{tail}" if tail else "")
        if req.method == "POST" and req.path.rstrip("/") == "/devices":
            try:
                body = json.loads(data)
            except (ValueError, RecursionError):
                body = None
            if isinstance(body, list) and all(isinstance(e, dict) for e in body):
                data = json.dumps([{**e, "id": canon(e["id"])} if isinstance(e.get("id"), str)
                                   and e["id"] else e for e in body]).encode()
        environ.update(CONTENT_LENGTH=str(len(data)), **{"wsgi.input": io.BytesIO(data)})
        return app(environ, start_response)

    return app_


def _read_only_writes(app: App, hub: Hub) -> App:
    reader = hub.policies["registryRead"]
    hub.policies["registryRead"] = Policy(reader.name, reader.key,
                                          reader.permissions | {"RegistryReadWrite"})
    return app


OTHERS: list[Mutant] = [
    Mutant("identity", "ids folded to one case", _fold_ids,
           frozenset({"rejection", "errors", "readback-device", "readback-twin",
                      "differential"})),
    Mutant("auth", "a read-only policy may write", _read_only_writes,
           frozenset({"auth-read-only"})),
]


# -- what a write does, the tokens, the request line (the red team's classes, our own hubs) ----

def _resigned(lets: Callable[[Request, Hub, float], float | None], *,
              any_resource: bool = False) -> Factory:
    """A hub whose token check has a hole: when ``lets(request, hub, now)`` gives a time at
    which the token verifies (``any_resource``: for its own ``sr``, whatever hub or path that
    names), the request goes on with a valid token of the same policy, as if the hub had
    accepted it."""
    def make(app: App, hub: Hub) -> App:
        def app_(environ: dict[str, Any], start_response: Any) -> Any:
            req = _request(environ)
            header = environ.get("HTTP_AUTHORIZATION", "")
            fields = dict(part.partition("=")[::2] for part in
                          header.removeprefix("SharedAccessSignature ").split("&"))
            resource = unquote_plus(fields.get("sr", "")).partition("/") if any_resource \
                else (hub.host_name, "/", req.path)
            when = lets(req, hub, time.time()) if fields.get("skn") in hub.policies else None
            if when is not None:
                try:
                    policy = verify_token(header, policies=hub.policies, host=resource[0],
                                          path=resource[2], now=when)
                except SasError:
                    policy = None
                if policy is not None:
                    environ["HTTP_AUTHORIZATION"] = generate_token(hub.host_name, policy.name,
                                                                   policy.key)
            return app(environ, start_response)
        return app_
    return make


def _request(environ: dict[str, Any]) -> Request:
    """The request, its body read and put back for the hub."""
    req = Request(environ)
    data = req.get_data()
    environ.update(CONTENT_LENGTH=str(len(data)), **{"wsgi.input": io.BytesIO(data)})
    return req


def _bulk_entries(req: Request) -> list[dict[str, Any]]:
    if req.method != "POST" or req.path.rstrip("/") != "/devices":
        return []
    try:
        body = json.loads(req.get_data())
    except (ValueError, RecursionError):
        return []
    return _entries(body) if isinstance(body, list) else []


def _twin_only(req: Request) -> bool:
    entries = _bulk_entries(req)
    return bool(entries) and all(str(_mode(e)).startswith("updateTwin") for e in entries)


def _read_only_twins(app: App, hub: Hub) -> App:
    """Twin-only bulk calls check "ServiceConnect or read" instead of the write right."""
    owner = hub.policies["iothubowner"]

    def app_(environ: dict[str, Any], start_response: Any) -> Any:
        req = _request(environ)
        header = environ.get("HTTP_AUTHORIZATION", "")
        if _twin_only(req) and "skn=registryRead" in header:
            environ["HTTP_AUTHORIZATION"] = generate_token(hub.host_name, owner.name, owner.key)
        return app(environ, start_response)
    return app_


def _partial_apply(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    """A request refused as a whole had its entries before the first bad one applied."""
    if req.method == "POST" and status == 400 and isinstance(body, dict) and \
            "isSuccessful" not in body and v._may_write(req):
        for entry in _bulk_entries(req):
            one = json.dumps([entry]).encode()
            environ = dict(req.environ, CONTENT_LENGTH=str(len(one)))
            environ["wsgi.input"] = io.BytesIO(one)
            if not call_hub(v.app, environ, one)[0].startswith("200"):
                break
    return status, headers, body


def _remember_ghost(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
    with v.lock:
        ghosts = v.state.setdefault("ghosts", {})
        for entry in _entries(body) if isinstance(body, list) else []:
            if str(_mode(entry)).startswith("delete") and _id(entry) and \
                    not entry.get("moduleId"):
                ghosts[_id(entry)] = v.hub.registry.twin(str(_id(entry)))
    return None


def _ghost_read(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    parts = req.path.split("/")
    ghost = v.state.get("ghosts", {}).get(parts[2]) if len(parts) == 3 else None
    if req.method == "GET" and parts[1] == "twins" and status == 404 and ghost:
        return 200, {}, ghost
    return status, headers, body


def _new_keys(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    """A twin update regenerates the device's symmetric keys (reads show the new ones)."""
    with v.lock:
        fresh = v.state.setdefault("keys", {})
        failed = {e.get("deviceId") for e in body.get("errors") or []} \
            if isinstance(body, dict) and "isSuccessful" in body else None
        for entry in _bulk_entries(req) if failed is not None else []:
            if _mode(entry) == "updateTwin" and _id(entry) and _id(entry) not in failed:
                seed = f"{_id(entry)}{len(fresh)}".encode()
                fresh[_id(entry)] = [base64.b64encode(seed.ljust(32, b"k")[-32:]).decode(),
                                     base64.b64encode(seed.ljust(32, b"s")[-32:]).decode()]
    keys = fresh.get(body.get("deviceId")) if isinstance(body, dict) else None
    sym = _auth(body).get("symmetricKey") if isinstance(body, dict) else None
    if req.method == "GET" and keys and isinstance(sym, dict):
        sym["primaryKey"], sym["secondaryKey"] = keys
    return status, headers, body


def _kept_on_update(name: str) -> Callable[..., Any]:
    """An update keeps the stored ``name`` (honoured on create only)."""
    def change(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
        old = v.hub.registry.device(str(_id(entry))) if _mode(entry) == "update" else None
        if old is None or name not in entry or old.get(name) == entry.get(name):
            return None
        return {**entry, name: old.get(name)}
    return change


def _double_decode(v: Variant, req: Request) -> Any:
    path = req.environ.get("PATH_INFO", "")
    if req.method in {"GET", "DELETE"} and "%" in path:
        req.environ["PATH_INFO"] = unquote(path)
    return None


def _api_version_unchecked(app: App, hub: Hub) -> App:
    def app_(environ: dict[str, Any], start_response: Any) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("api-version", [""])[0] not in API_VERSIONS:
            environ["QUERY_STRING"] = f"api-version={API_VERSIONS[0]}"
        return app(environ, start_response)
    return app_


def _dropped_module(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    if entry.get("moduleId") and str(_mode(entry)).startswith("updateTwin"):
        return {k: x for k, x in entry.items() if k != "moduleId"}
    return None


def _low_end_clamped(x: Json) -> Json:
    low = _CONTRACT.twin_integer_range[0]
    return max(low, x) if type(x) is int else x


def _desired_flattened(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    props = entry.get("properties")
    desired = props.get("desired") if isinstance(props, dict) else None
    if not isinstance(desired, dict):
        return None
    flat = _flatten(desired, 0)
    return {**entry, "properties": {**props, "desired": flat}} if flat != desired else None


READBACK = frozenset({"readback-device", "readback-twin"})

WRITES: list[Mutant] = [
    Mutant("auth", "a token for another hub or path accepted", _resigned(
        lambda req, hub, now: now, any_resource=True), frozenset({"auth-wrong-resource"})),
    Mutant("auth", "an expired token accepted on twin-only calls", _resigned(
        lambda req, hub, now: 0.0 if _twin_only(req) else None), frozenset({"auth-expired"})),
    Mutant("auth", "a read-only policy may update twins", _read_only_twins,
           frozenset({"auth-read-only"})),
    Mutant("write", "a refused request's first entries applied", _v(after=_partial_apply),
           frozenset({"readback-device"})),
    Mutant("write", "entries past the 64th dropped", _v(before=lambda v, r, b, e:
           b[:64] if isinstance(b, list) and 64 < len(b) <= 100 else None),
           READBACK | {"errors"}),  # the module of a device never created: a deviation
    Mutant("write", "a delete leaves the twin readable", _v(before=_remember_ghost,
           after=_ghost_read), frozenset({"readback-twin"})),
    Mutant("write", "a twin update regenerates the keys", _v(after=_new_keys), MEMBER),
    Mutant("write", "an update keeps the old capabilities", _v(before=each_entry(
        _kept_on_update("capabilities"))), MEMBER),
    Mutant("write", "an update keeps the old authentication", _v(before=each_entry(
        _kept_on_update("authentication"))), MEMBER),
    Mutant("write", "tags dropped for ids holding '$'", _v(before=each_entry(
        lambda v, e: {k: x for k, x in e.items() if k != "tags"}
        if "$" in str(_id(e)) and "tags" in e else None)), TWIN),
    Mutant("write", "ids in paths decoded twice", _v(first=_double_decode), READBACK),
    Mutant("write", "a bulk delete misses ids holding a quote", _v(before=entries_where(
        lambda v, e: "'" in str(_id(e)) and _mode(e) == "delete", "DeviceNotFound")),
        frozenset({"errors", "readback-device"})),
    Mutant("write", "a module's twin update hits the device twin", _v(before=each_entry(
        _dropped_module)), TWIN, "deviation"),
    Mutant("write", "module ids folded to lower case", _v(before=each_entry(
        lambda v, e: {**e, "moduleId": e["moduleId"].lower()}
        if isinstance(e.get("moduleId"), str) and e["moduleId"] != e["moduleId"].lower()
        else None)), frozenset({"errors", "readback-twin"}), "deviation"),
    Mutant("lax", "device-id-format: 129-character ids cut to 128", _v(before=each_entry(
        lambda v, e: {**e, "id": e["id"][:ID_MAX]} if isinstance(e.get("id"), str)
        and len(e["id"]) > ID_MAX else None)), RENAMED),
    Mutant("lax", "twin-integer-range: the low end clamped", _v(before=each_entry(_twin_map(
        lambda k: k, _low_end_clamped))), REJECT),
    Mutant("lax", "twin-depth: desired properties flattened", _v(before=each_entry(
        _desired_flattened)), REJECT),
    Mutant("lax", "enum-value: an unknown importMode read as the default", _v(before=each_entry(
        lambda v, e: {k: x for k, x in e.items() if k != "importMode"}
        if isinstance(e.get("importMode"), str) and e["importMode"].lower() not in _MODES
        else None)), REJECT),
    Mutant("request", "api-version unchecked", _api_version_unchecked,
           REJECT | {"api-version"}),  # and the rules of older api-versions not enforced
]


# -- answers ------------------------------------------------------------------------------------

def _result(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
    def after(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
        return (status, headers, fn(body)) if isinstance(body, dict) and "isSuccessful" in body \
            else (status, headers, body)
    return after


def _status_for_success(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    return (201 if status == 200 and req.method == "POST" else status), headers, body


def _server_error_on_quote(v: Variant, req: Request) -> Any:
    if req.method == "POST" and b"'" in req.get_data():
        return 500, {}, {"Message": "ErrorCode:ServerError;boom"}
    return None


def _no_auth(app: App, hub: Hub) -> App:
    owner = hub.policies["iothubowner"]

    def app_(environ: dict[str, Any], start_response: Any) -> Any:
        environ["HTTP_AUTHORIZATION"] = generate_token(hub.host_name, owner.name, owner.key)
        return app(environ, start_response)
    return app_


ANSWERS: list[Mutant] = [
    Mutant("answer", "201 for success", _v(after=_status_for_success),
           frozenset({"status-declared", "status"})),
    Mutant("answer", "isSuccessful missing", _v(after=_result(
        lambda b: {k: x for k, x in b.items() if k != "isSuccessful"})),
        frozenset({"is-successful"})),
    Mutant("answer", "isSuccessful a string", _v(after=_result(
        lambda b: {**b, "isSuccessful": str(b["isSuccessful"]).lower()})),
        frozenset({"response-schema", "is-successful"})),
    Mutant("answer", "an errorCode outside the enum", _v(after=errors_of(
        lambda e: {**e, "errorCode": "NoSuchDevice"} if e["errorCode"] == "DeviceNotFound"
        else e)), frozenset({"response-schema", "errors"})),
    Mutant("answer", "an error naming the wrong device", _v(after=errors_of(
        lambda e: {**e, "deviceId": f"{e['deviceId']}x"})), ENTRY),
    Mutant("answer", "no auth at all", _no_auth,
           frozenset({"auth-missing", "auth-invalid", "auth-expired", "auth-wrong-policy",
                      "auth-wrong-resource", "auth-read-only"})),
    Mutant("answer", "500 on an id with a quote", _v(first=_server_error_on_quote),
           frozenset({"server-error"})),
    Mutant("answer", "a delete that does not delete", _v(before=each_entry(
        lambda v, e: {"id": e["id"], "importMode": "updateTwin"}
        if _mode(e) == "delete" and "importMode" in e and _id(e) else None)),
        frozenset({"readback-device", "cleanup"})),
    Mutant("answer", "a refusal with a 200", _v(after=lambda v, r, s, h, b: (
        200 if s == 400 and isinstance(b, dict) and "Message" in b else s, h, b)),
        frozenset({"rejection", "status-declared", "differential", "status",
                   "response-schema", "api-version"})),
]

CATALOGUE: list[Mutant] = [*MEMBERS, *LAX, *STRICT, *ETAGS, *OTHERS, *WRITES, *ANSWERS]
UNTESTABLE = {  # rules without a realistic lax defect (an unreadable body cannot be applied)
    "json-syntax": "a body that is not JSON cannot be applied",
    "json-depth": "a body nested past the parser's limit cannot be read",
    "json-number-range": "1e400 read as infinity is nonfinite: the json-nonfinite defect",
    "status-reason-length": "accepting it is an open choice (decision unenforced-limits)",
    "twin-array-null": "accepting it is a deviation row's variant (decision twin-limits)",
    "auth-thumbprint-lengths": "the auth-thumbprint-format defect drops both alike",
    "twin-array-api-version": "no api-version before 2019-10-01 is served: the version is "
                              "refused before the arrays are looked at",
}
