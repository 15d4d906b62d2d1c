"""The minimum-coverage plan: every item of the run's minimum, packed into as few calls as the
contract allows, before any random exploration.

Units, each one episode of its own ids, run in this order (cheapest first), and once more for
any unit whose items an endpoint's open choice (a re-synchronised device) or a passing fault
(429) left unreached:

- ``auth``: the auth suite's bad tokens, and a read-only policy's write;
- ``valid``: the valid side of every rule at its limit and every stored member, in one call of
  100 entries whose rules are ``contract`` or ``documented`` (a rejection fails the run), one of
  the weaker rules' valid sides (a rejection is a deviation), the JSON text's valid forms, ids
  with ``+ # ;`` (decision id-special-chars) and arrays at api-version 2019-10-01; then updates
  of the members, a leaf under an edge device and a module; every member read back. A call
  rejected as a whole is re-sent entry by entry, so the failure names the rule;
- ``cells``: every importMode with every outcome, and the etag transitions: one setup call, the
  reads that learn the etags, one call of 17 entries on 17 devices, one without importMode, the
  reads that see the etags change, one call with the etags from before the change;
- ``writes``: a request refused as a whole applied none of its entries; modules whose ids
  differ only in case, and a module twin update that leaves the device twin alone;
- ``api-version``: a bulk call without one, or with one no hub serves, is refused;
- one unit per rule: a payload that breaks it (``suites/cases.py``), one call each, and one
  more per variant (the other end of a range, the desired properties beside the tags).

The valid unit also holds what a write does beyond its members: the 100-entry call puts its
padding first, so the entries read back are its last (an endpoint that drops or truncates
late entries shows); the ids with special characters carry tags and are deleted in bulk, each
read back; the cells read a twin-updated device's keys before and after (kept) and a deleted
device's twin (gone).

Each call names the coverage items it exercises; an item is reached when the endpoint's answer
to it was judged (not 401, 429 or 5xx), a member when its read-backs were.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import bulkreg_schema
from bulkreg_conformance import decisions
from bulkreg_conformance.answers import member, rejected_whole
from bulkreg_conformance.checks import same
from bulkreg_conformance.client import Exchange, OutOfTime
from bulkreg_conformance.coverage import BULK_RULES, CELLS
from bulkreg_conformance.evidence import CONTRACT, Evidence, of_rule
from bulkreg_conformance.session import (
    CURRENT_ETAG,
    CURRENT_TWIN_ETAG,
    PREVIOUS_ETAG,
    PREVIOUS_TWIN_ETAG,
    STALE_ETAG,
    Session,
)
from bulkreg_conformance.settings import Settings
from bulkreg_conformance.suites import auth, jobs
from bulkreg_conformance.suites.cases import (
    API_VERSION_OF,
    RULE_CASES,
    RULE_VARIANTS,
    nest,
    rule_case,
)
from bulkreg_validator import LIMITS

__all__ = ["Unit", "estimate", "run", "units"]

_CONTRACT = bulkreg_schema.contract()
ID_MAX = _CONTRACT.id_max_length
ROUNDS = 2  # a unit whose items are still missing after its first run gets one more
ID_SPECIALS = "-:.%_*?!(),=@$'"  # facts §2.1: the contract's specials, bar + # ; (DOC-IR 2025)
ID_WARN_SPECIALS = "+#;"
ARRAYS_SINCE = LIMITS["arrays_since"]
_OBSERVED = Evidence("observed")


class Unit(NamedTuple):
    name: str
    suite: str  # the suite whose claims the unit makes (its failures are that suite's)
    items: tuple[str, ...]
    run: Callable[[Session], None]


def units(s: Session) -> list[Unit]:
    """The plan's units for the run's suites (see the module docstring)."""
    chosen = set(s.settings.suites)
    out: list[Unit] = []
    if "auth" in chosen:
        out.append(Unit("auth", "auth", tuple(i for i in s.coverage.required
                                              if i.startswith("auth:") and i != "auth:write"),
                        auth.planned))
    if "jobs" in chosen:
        out.append(Unit("jobs", "jobs", tuple(i for i in s.coverage.required
                                              if i.startswith("jobs:")), jobs.planned))
    if "property" in chosen:
        out.append(Unit("valid", "property", _VALID_ITEMS, valid))
        out.append(Unit("cells", "property", _CELL_ITEMS, cells))
        out.append(Unit("writes", "property", ("write:atomic", "write:modules"), writes))
        out.append(Unit("api-version", "property", ("request:api-version",), api_version))
        out += [Unit(f"reject {rule}", "property", (f"rule:{rule}:reject",), _negative(rule))
                for rule in RULE_CASES if rule in BULK_RULES]
    return out


def estimate(settings: Settings) -> int:
    """About how many requests the plan (and the preflight) sends to a conforming endpoint."""
    requests = _PREFLIGHT
    if "auth" in settings.suites:
        requests += _AUTH + (_READ_ONLY if settings.read_connection_string else 0)
    if "property" in settings.suites:
        requests += _VALID + _CELLS + _WRITES + len(RULE_CASES) + _WARNED + sum(
            len(variants) for variants in RULE_VARIANTS.values())
    if "jobs" in settings.suites and settings.blob_container_uri:
        requests += _JOBS  # polls included: more on a hub whose jobs take longer
    return requests


# requests of each part on a conforming endpoint (tests/conformance/test_coverage.py checks)
_PREFLIGHT, _AUTH, _READ_ONLY, _VALID, _CELLS, _WRITES, _WARNED, _JOBS = (
    5, 25, 3, 60, 21, 10, 21, 45)


def run(s: Session) -> None:
    plan = units(s)
    for _ in range(ROUNDS):
        for unit in plan:
            if any(item in s.coverage.required and item not in s.coverage.covered
                   for item in unit.items):
                if s.out_of_time():  # the budget binds the plan too (between units)
                    raise OutOfTime("the run's time is spent")
                s.progress(f"plan: {unit.name}")
                s.episode()
                with s.suite_named(unit.suite):
                    unit.run(s)


# -- the invalid side: one call per rule ------------------------------------------------------

# Rules whose violation shows only on an existing device (a lenient endpoint would fail the
# entry anyway for a missing one): the device is created first.
_EXISTING = frozenset({"module-id-format", "etag-required", "twin-etag-required"})


def _negative(rule: str) -> Callable[[Session], None]:
    def send(s: Session) -> None:
        device = s.fresh_id("r")
        if rule in _EXISTING:
            s.bulk_step([{"id": device, "importMode": "create"}], readback=False)
        for variant in (None, *range(len(RULE_VARIANTS.get(rule, ())))):
            s.bulk_step(None, raw=rule_case(rule, device, variant), rule=rule,
                        api_version=API_VERSION_OF.get(rule), covers=(f"rule:{rule}:reject",))
    return send


# -- the valid side, and every stored member ----------------------------------------------------

def _key(seed: int, size: int = 32) -> str:
    return base64.b64encode(bytes((seed + n) % 256 for n in range(size))).decode()


def _thumbprint(seed: str, length: int) -> str:
    return (seed * length)[:length]


def _section_at(limit: int, key_size: int) -> dict[str, int]:
    """A twin section exactly ``limit`` bytes by the docs' algorithm (keys by characters,
    numbers 8), made of numbers: its JSON text is smaller than its size, so an endpoint that
    counts the JSON text accepts it too."""
    per = key_size + 8
    count, extra = divmod(limit, per)
    members = {f"k{n:0{key_size - 1}d}": n for n in range(count)}
    if extra:
        first = next(iter(members))
        members[first + "x" * extra] = members.pop(first)
    return members


def _twin_keys() -> dict[str, Any]:
    """Keys with every kind of character a twin key allows (all but C0/C1, '.', '$', space)."""
    return {"k-_@#!~*'()": 1, "ünïcödé-€": 2, "日本": 3, "emoji-🙂": 4, "UPPER_lower": 5}


class _Valid(NamedTuple):
    """The ids of the valid unit's devices, by role."""

    stem: str  # what every id of them starts with
    keys: str
    status: str
    edge: str
    ca: str
    none: str
    twin: str
    cases: tuple[str, str]
    long: str
    module: str
    specials: tuple[str, ...]
    boundaries: dict[str, str]  # rule -> the device exercising its valid side in the twin


def _ids(s: Session) -> _Valid:
    prefix = s.client.prefix
    tag = s.fresh_id("v")[len(prefix):]  # a fresh label per run of the unit

    def name(what: str) -> str:
        return f"{prefix}{tag}.{what}"

    long = name("L")
    return _Valid(
        stem=name(""),
        keys=name("keys"), status=name("status"), edge=name("edge"), ca=name("ca"),
        none=name("none"), twin=name("twin"),
        cases=(name("idCase"), name("IDCASE")),
        long=long + "L" * (ID_MAX - len(long)),
        module=name("module"),
        # every special character, and an escape a second decoding would turn into "A"
        specials=(*(name(f"s{c}x") for c in ID_SPECIALS), name("pct%41")),
        boundaries={rule: name(rule) for rule in (
            "twin-depth", "twin-key-chars", "twin-key-length", "twin-string-length",
            "twin-integer-range", "twin-section-size")})


def _strong(v: _Valid) -> list[dict[str, Any]]:
    """Valid entries of the contract's and the docs' rules: a rejection of any fails the run."""
    low, high = _CONTRACT.twin_integer_range
    b = v.boundaries
    reason = "r" * _CONTRACT.status_reason_max_length
    entries: list[dict[str, Any]] = [
        {"id": v.keys, "importMode": "create", "authentication": {"type": "sas", "symmetricKey": {
            "primaryKey": _key(1), "secondaryKey": _key(77)}}},
        {"id": v.status, "importMode": "create", "status": "disabled", "statusReason": reason},
        {"id": v.edge, "importMode": "create", "capabilities": {"iotEdge": True}},
        {"id": v.ca, "importMode": "create", "authentication": {"type": "certificateAuthority"}},
        {"id": v.none, "importMode": "create", "authentication": {"type": "none"}},
        {"id": v.twin, "importMode": "create", "status": "enabled",
         "tags": {"site": "A", "rack": {"row": 3, "on": True}},
         "properties": {"desired": {"rate": 5, "mode": "eco", "limits": {"low": -1.5}}}},
        {"id": v.cases[0], "importMode": "create", "tags": {"case": "lower"}},
        {"id": v.cases[1], "importMode": "create", "tags": {"case": "upper"}},
        {"id": v.long, "importMode": "create"},
        {"id": v.module, "importMode": "create"},
        {"id": b["twin-depth"], "importMode": "create",
         "tags": nest(_CONTRACT.twin_max_depth),
         "properties": {"desired": nest(_CONTRACT.twin_max_depth)}},
        {"id": b["twin-key-chars"], "importMode": "create", "tags": _twin_keys()},
        {"id": b["twin-key-length"], "importMode": "create",
         "tags": {"k" * LIMITS["twin_key_bytes"]: 1},
         "properties": {"desired": {"d" * LIMITS["twin_key_bytes"]: 2}}},
        {"id": b["twin-string-length"], "importMode": "create",
         "tags": {"s": "v" * LIMITS["twin_string_bytes"]},
         "properties": {"desired": {"s": "é" * (LIMITS["twin_string_bytes"] // 2)}}},
        {"id": b["twin-integer-range"], "importMode": "create",
         "tags": {"low": low, "high": high}},
        {"id": b["twin-section-size"], "importMode": "create",
         "tags": _section_at(LIMITS["tags_bytes"], 5),
         "properties": {"desired": _section_at(LIMITS["desired_bytes"], 6)}},
        *({"id": i, "importMode": "create", "tags": {"id": i}} for i in v.specials),
    ]
    return entries


def _weak(v: _Valid, s: Session) -> tuple[list[dict[str, Any]], dict[str, Evidence]]:
    """Valid entries of the weaker rules (client-side, observed): a rejection is a deviation."""
    sha1, sha256 = _CONTRACT.thumbprint_lengths
    low, high = _CONTRACT.key_decoded_bytes
    cases: dict[str, list[dict[str, Any]]] = {
        "auth-key-invalid": [
            {"authentication": {"symmetricKey": {"primaryKey": _key(3, low),
                                                 "secondaryKey": _key(7, high)}}}],
        "auth-thumbprint-format": [
            {"authentication": {"type": "selfSigned", "x509Thumbprint": {
                "primaryThumbprint": _thumbprint("a1", sha1),
                "secondaryThumbprint": _thumbprint("b2", sha1)}}},
            {"authentication": {"type": "selfSigned", "x509Thumbprint": {
                "primaryThumbprint": _thumbprint("c3", sha256),
                "secondaryThumbprint": _thumbprint("d4", sha256)}}}],
        "twin-array-null": [{"tags": {"list": [1, "two", {"three": [3]}, [4]]}}],
    }
    entries, bounds = [], {}
    for rule, shapes in cases.items():
        for n, shape in enumerate(shapes):
            device = s.fresh_id(f"w.{rule}.{n}")
            entries.append({"id": device, "importMode": "create", **shape})
            bounds[device] = of_rule(rule)
    return entries, bounds


# Items the valid unit covers once its calls and reads are judged.
_ACCEPTED_STRONG = ("json-depth", "bulk-not-array", "bulk-empty", "too-many-devices",
                    "duplicate-id", "value-type", "enum-value", "enum-case", "unknown-property",
                    "device-id-missing", "device-id-format", "status-reason-length",
                    "import-mode-missing", "mode-ignored-field", "auth-type-mismatch",
                    "auth-keys-pair", "twin-depth", "twin-key-chars", "twin-key-length",
                    "twin-string-length", "twin-integer-range", "twin-section-size",
                    "twin-metadata-ignored")
_ACCEPTED_WEAK = ("auth-key-invalid", "auth-thumbprint-format", "auth-thumbprint-lengths",
                  "auth-keys-and-thumbprints", "twin-array-null", "twin-array-api-version")
_ACCEPTED_JSON = ("json-syntax", "json-encoding", "json-lone-surrogate", "json-duplicate-key",
                  "json-nonfinite", "json-number-range")
_ACCEPTED_LATER = ("module-id-format", "parent-scopes-count", "parent-scopes-api-version",
                   "id-unsupported-char")
_MEMBER_READS = {  # member item -> the roles whose reads (after create and update) show it
    "primaryKey": ("keys",), "secondaryKey": ("keys",),
    "primaryThumbprint": ("thumbprints",), "secondaryThumbprint": ("thumbprints",),
    "authentication.type": ("keys", "thumbprints", "ca", "none"),
    "status": ("status",), "statusReason": ("status",), "capabilities.iotEdge": ("edge",),
    "deviceScope": ("leaf",), "parentScopes": ("leaf",), "tags": ("twin",),
    "desired": ("twin",),
}
_VALID_ITEMS = (
    *(f"rule:{r}:accept" for r in (*_ACCEPTED_STRONG, *_ACCEPTED_WEAK, *_ACCEPTED_JSON,
                                   *_ACCEPTED_LATER)),
    *(f"member:{m}" for m in _MEMBER_READS), "id:case-distinct")


def valid(s: Session) -> None:
    v = _ids(s)
    read: dict[str, bool] = {}  # role -> every read of it so far was judged

    def reads(role: str, *ids: str, twin: bool = False, device: bool = True,
              cause: Exchange | None = None) -> None:
        ok = all(s.read(i, cause, twin=twin, device=device) for i in ids)
        read[role] = read.get(role, True) and ok

    strong = _strong(v)
    padding = [{"id": s.fresh_id("p"), "importMode": "create"}
               for _ in range(_CONTRACT.max_entries - len(strong))]  # 100 entries in all
    # the padding first: what the reads check is in the call's last entries
    exchange = s.bulk_step(padding + strong, readback=False,
                           covers=_accepted(_ACCEPTED_STRONG))
    if rejected_whole(exchange):
        _one_by_one(s, strong, None)
    reads("keys", v.keys, cause=exchange)
    reads("status", v.status, cause=exchange)
    reads("edge", v.edge, cause=exchange)
    reads("ca", v.ca, cause=exchange)
    reads("none", v.none, cause=exchange)
    reads("twin", v.twin, twin=True, cause=exchange)
    reads("cases", *v.cases, twin=True, device=False, cause=exchange)
    reads("ids", v.long, twin=True, cause=exchange)
    reads("ids", *v.specials, twin=True, device=False, cause=exchange)  # their tags
    reads("boundaries", *v.boundaries.values(), twin=True, device=False, cause=exchange)
    if read.get("cases") and read.get("ids"):
        s.coverage.cover("id:case-distinct")
    if all(read.get(role) for role in ("keys", "status", "twin", "ids", "boundaries")):
        s.coverage.cover("write:every-entry")

    weak, bounds = _weak(v, s)
    exchange = s.bulk_step(weak, readback=False, bounds=bounds,
                           covers=_accepted(_ACCEPTED_WEAK[:-1]))
    if rejected_whole(exchange):
        _one_by_one(s, weak, bounds)
    thumbs = [e["id"] for e in weak if "x509Thumbprint" in e.get("authentication", {})]
    reads("thumbprints", *thumbs, cause=exchange)
    reads("keys", *(e["id"] for e in weak if "symmetricKey" in e.get("authentication", {})),
          cause=exchange)
    reads("arrays", *(e["id"] for e in weak if "tags" in e), twin=True, device=False,
          cause=exchange)
    _json_text(s)
    _warned_ids(s)
    _arrays_since(s)
    _updates(s, v, reads)
    for name, roles in _MEMBER_READS.items():
        if all(read.get(role) for role in roles):
            s.coverage.cover(f"member:{name}")
    if read.get("changes") and read.get("status"):
        s.coverage.cover("write:update-changes")
    _delete_specials(s, v)


def _delete_specials(s: Session, v: _Valid) -> None:
    """A bulk delete of the ids with special characters, each confirmed gone (an endpoint that
    looks them up unescaped misses some): by one device query when the endpoint's query works
    (what it still lists is read back), else each read back."""
    exchange = s.bulk_step([{"id": i, "importMode": "delete"} for i in v.specials],
                           readback=False)
    listed = s.client.listed(v.stem) if s.client.query_works else None
    left = v.specials if listed is None else [i for i in v.specials if i in listed]
    judged = [s.read(i, exchange, twin=False) for i in left]
    if all(judged):
        s.coverage.cover("write:special-ids")


def _accepted(rules: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"rule:{r}:accept" for r in rules)


def _one_by_one(s: Session, entries: list[dict[str, Any]],
                bounds: dict[str, Evidence] | None) -> None:
    """After a whole rejection: each entry alone, so the failure names the rule whose valid
    side the endpoint refuses."""
    for entry in entries:
        rule = _rule_of(entry["id"])
        s.bulk_step([entry], readback=False, rule=rule,
                    bounds={entry["id"]: bounds[entry["id"]]} if bounds and entry["id"] in bounds
                    else None)


def _rule_of(device_id: str) -> str | None:
    """The rule an entry's id names (``<prefix><tag>.<rule>``, ``<prefix>w.<rule>.<n>``)."""
    return next((part for part in device_id.split(".") if part in BULK_RULES), None)


def _json_text(s: Session) -> None:
    """The valid forms of the JSON text itself: escapes (a surrogate pair among them), raw
    multibyte UTF-8, a member name repeated in sibling objects, numbers at the ends of a 64-bit
    float (json-number-range, json-nonfinite's finite side)."""
    device = s.fresh_id("j")
    tags = ('{"esc": "\\u00e9\\ud83d\\ude00\\"\\\\\\/\\b\\f\\n\\r\\t", "raw": "é🙂日本", '
            '"a": {"k": 1}, "b": {"k": 2}, "big": 1.7976931348623157e308, '
            '"small": -1.7976931348623157E+308, "tiny": 1e-300, "frac": 0.5}')
    raw = f'[{{"id": "{device}", "importMode": "create", "tags": {tags}}}]'
    entries = json.loads(raw)
    exchange = s.bulk_step(entries, raw=raw.encode("utf-8"), readback=False)
    if s.read(device, exchange, device=False):
        s.coverage.cover(*_accepted(_ACCEPTED_JSON))


def _warned_ids(s: Session) -> None:
    """Ids with + # ; (the contract allows them; 2025 docs do not: decision id-special-chars),
    each alone, apart from the contract-valid ones so that a rejection names only them."""
    ids = [s.fresh_id(f"s{c}x") for c in ID_WARN_SPECIALS]
    exchange = s.bulk_step([{"id": i, "importMode": "create"} for i in ids], readback=False)
    if all(s.read(i, exchange, twin=False) for i in ids):
        s.coverage.cover("rule:id-unsupported-char:accept")


def _arrays_since(s: Session) -> None:
    """Twin arrays at the first api-version that has them (an endpoint may refuse an older
    api-version altogether: decision older-api-versions)."""
    device = s.fresh_id("a")
    entries = [{"id": device, "importMode": "create", "tags": {"list": [1, 2]}}]
    exchange = s.bulk_step(entries, readback=False, api_version=ARRAYS_SINCE)
    if s.read(device, exchange, device=False):
        s.coverage.cover("rule:twin-array-api-version:accept")


def _updates(s: Session, v: _Valid, reads: Callable[..., None]) -> None:
    """Updates with explicit values of every member a create stored, and of capabilities and
    the authentication type, read back; then the weaker members (thumbprints, a leaf under the
    edge device, a module with a 128-character id), apart."""
    reason = ("n" * _CONTRACT.status_reason_max_length)[:_CONTRACT.status_reason_max_length]
    strong = [
        {"id": v.keys, "importMode": "update", "authentication": {"type": "sas",
            "symmetricKey": {"primaryKey": _key(51), "secondaryKey": _key(151)}}},
        {"id": v.status, "importMode": "update", "status": "disabled",
         "statusReason": reason[:-1] + "!", "capabilities": {"iotEdge": True}},
        {"id": v.twin, "importMode": "update", "status": "enabled",
         "tags": {"site": "B", "rack": {"row": 4}}, "properties": {"desired": {"rate": 6}}},
        {"id": v.none, "importMode": "update",
         "authentication": {"type": "certificateAuthority"}},
    ]
    exchange = s.bulk_step(strong, readback=False)
    reads("keys", v.keys, cause=exchange)
    reads("status", v.status, cause=exchange)
    reads("twin", v.twin, twin=True, cause=exchange)
    reads("changes", v.none, twin=False, cause=exchange)

    edge = s.mirror.last_read.get(v.edge)
    scope = member(edge, "deviceScope") or (
        f"ms-azure-iot-edge://{v.edge}-{member(edge, 'generationId')}" if edge else None)
    sha1 = _CONTRACT.thumbprint_lengths[0]
    module = ("m" + ID_SPECIALS + "M" * ID_MAX)[:ID_MAX]
    leaf = s.fresh_id("leaf")
    thumbs = s.fresh_id("tp")
    weak = [{"id": thumbs, "importMode": "create", "authentication": {"type": "selfSigned",
             "x509Thumbprint": {"primaryThumbprint": _thumbprint("e5", sha1),
                                "secondaryThumbprint": _thumbprint("f6", sha1)}}},
            {"id": v.module, "moduleId": module, "importMode": "create"}]
    if scope:
        weak.append({"id": leaf, "importMode": "create", "deviceScope": scope,
                     "parentScopes": [scope]})
    bounds = {thumbs: of_rule("auth-thumbprint-format"),
              v.module: decisions.evidence("module-entries"),
              leaf: of_rule("parent-scopes-count")}
    exchange = s.bulk_step(weak, readback=False, bounds=bounds, covers=_accepted(
        ("module-id-format", *(("parent-scopes-count", "parent-scopes-api-version")
                               if scope else ()))))
    thumbs_update = [{"id": thumbs, "importMode": "update", "authentication": {
        "type": "selfSigned", "x509Thumbprint": {
            "primaryThumbprint": _thumbprint("07", sha1),
            "secondaryThumbprint": _thumbprint("18", sha1)}}}]
    reads("thumbprints", thumbs, cause=exchange)
    if scope:
        reads("leaf", leaf, cause=exchange)
    else:
        s.coverage.miss("the edge device could not be read", "member:deviceScope",
                        "member:parentScopes")
    exchange = s.bulk_step(thumbs_update, readback=False, bounds={thumbs: bounds[thumbs]})
    reads("thumbprints", thumbs, cause=exchange)


# -- what a write does beyond its members, and the api-version --------------------------------

def writes(s: Session) -> None:
    """A request refused as a whole (an invalid status in its last entry) applied none of its
    entries; then modules: two whose ids differ only in case, and a module twin update that
    must leave the device twin alone (decision module-entries: observed)."""
    ids = [s.fresh_id("w.atomic.") for _ in range(3)]
    entries = [{"id": ids[0], "importMode": "create"},
               {"id": ids[1], "importMode": "create", "tags": {"a": 1}},
               {"id": ids[2], "importMode": "create", "status": "paused"}]
    exchange = s.bulk_step(entries, readback=False, rule="enum-value")
    judged = [s.read(i, exchange, twin=False) for i in ids[:2]]  # each read, not the first
    if all(judged):
        s.coverage.cover("write:atomic")
    device = s.fresh_id("w.mod.")
    bound = {device: decisions.evidence("module-entries")}
    s.bulk_step([{"id": device, "importMode": "create", "tags": {"of": "device"}}],
                readback=False)
    calls = [[{"id": device, "moduleId": "mCase", "importMode": "create"}],
             [{"id": device, "moduleId": "mcase", "importMode": "create"}],
             [{"id": device, "moduleId": "mCase", "importMode": "updateTwin",
               "tags": {"of": "module"}}]]
    answers = [s.bulk_step(call, readback=False, bounds=bound) for call in calls]
    if _module_left_device_twin(s, device, answers[-1]):
        s.coverage.cover("write:modules")


def _module_left_device_twin(s: Session, device: str, cause: Exchange) -> bool:
    """The device twin as the oracle has it after module writes, held to the module decision's
    evidence (the premise that an entry with moduleId writes the module is a maintainer's
    note); True when judged."""
    got = s.client.get_twin(device)
    s.shape(got, None)
    if got.status in {401, 429} or got.status >= 500:
        return False
    want = s.mirror.oracle.twin(device)
    tags = member(got.json(), "tags")
    problems = [] if want is not None and got.status == 200 and \
        same(tags, want.get("tags")) else [
            f"twin {device!r} after its module's twin update: tags expected "
            f"{want.get('tags') if want else None}, got {tags} ({got.status})"]
    if not s.judge("readback-twin", problems, evidence=decisions.evidence("module-entries"),
                   exchanges=[cause, got]):
        s.resync({device})
    return True


def api_version(s: Session) -> None:
    """A valid bulk call without api-version (required: SWG) or with one no hub serves
    (400 InvalidProtocolVersion: observed) is refused."""
    for version, level in (("", CONTRACT), ("1999-01-01", _OBSERVED)):
        device = s.fresh_id("av")
        body = f'[{{"id": "{device}", "importMode": "create"}}]'
        exchange = s.client.bulk(body.encode(), api_version=version)
        s.shape(exchange, body)
        if exchange.status in {401, 429} or exchange.status >= 500:
            s.coverage.miss(f"the endpoint answered {exchange.status}", "request:api-version")
            return
        shown = "no api-version" if not version else f"api-version {version}"
        problems = [] if 400 <= exchange.status < 500 else [
            f"a bulk call with {shown}: expected 400, got {exchange.status}"]
        if not s.judge("api-version", problems, evidence=level, payload=body,
                       exchanges=[exchange]):
            s.resync({device})
    s.coverage.cover("request:api-version")


# -- every importMode with every outcome, and the etag transitions -----------------------------

_CELL_ITEMS = (*(f"cell:{m}:{o}" for m, o in CELLS),
               "etag:device-changes", "etag:twin-changes", "etag:stale-update",
               "etag:stale-delete", "etag:stale-twin", "rule:etag-required:accept",
               "rule:twin-etag-required:accept", "write:delete-twin", "write:keys-kept")


def cells(s: Session) -> None:
    name = {role: s.fresh_id(f"c.{role}.") for role in (
        "update", "uim", "uim-stale", "delete", "dim", "dim-stale", "twin", "tim", "tim-stale",
        "exists", "cou")}

    def missing() -> str:
        return s.fresh_id("c.missing.")

    setup = s.bulk_step([{"id": i, "importMode": "create", "tags": {"v": 0}}
                         for i in name.values()], readback=False)
    for role in ("update", "uim", "dim"):
        s.read(name[role], setup, twin=False)
    s.read(name["twin"], setup)  # the device too: its keys, which the twin update must keep
    s.read(name["tim"], setup, device=False)
    entries = [
        {"id": s.fresh_id("c.new."), "importMode": "create"},
        {"id": name["exists"], "importMode": "create"},
        {"id": name["update"], "importMode": "update", "status": "disabled"},
        {"id": missing(), "importMode": "update"},
        {"id": name["uim"], "importMode": "updateIfMatchETag", "eTag": CURRENT_ETAG,
         "status": "disabled"},
        {"id": missing(), "importMode": "updateIfMatchETag", "eTag": STALE_ETAG},
        {"id": name["uim-stale"], "importMode": "updateIfMatchETag", "eTag": STALE_ETAG},
        {"id": name["delete"], "importMode": "delete"},
        {"id": missing(), "importMode": "delete"},
        {"id": name["dim"], "importMode": "deleteIfMatchETag", "eTag": CURRENT_ETAG},
        {"id": missing(), "importMode": "deleteIfMatchETag", "eTag": STALE_ETAG},
        {"id": name["dim-stale"], "importMode": "deleteIfMatchETag", "eTag": STALE_ETAG},
        {"id": name["twin"], "importMode": "updateTwin", "tags": {"v": 1}},
        {"id": missing(), "importMode": "updateTwin", "tags": {"v": 1}},
        {"id": name["tim"], "importMode": "updateTwinIfMatchETag",
         "twinETag": CURRENT_TWIN_ETAG, "tags": {"v": 2}},
        {"id": missing(), "importMode": "updateTwinIfMatchETag", "twinETag": STALE_ETAG,
         "tags": {"v": 2}},
        {"id": name["tim-stale"], "importMode": "updateTwinIfMatchETag",
         "twinETag": STALE_ETAG, "tags": {"v": 2}},
    ]
    exchange = s.bulk_step(entries, readback=False, covers=(
        "rule:etag-required:accept", "rule:twin-etag-required:accept"))
    # createOrUpdate is the bulk call's omitted importMode (decision omitted-import-mode): apart;
    # named, it is outside the bulk call's enum (decision create-or-update-modes): apart too
    s.bulk_step([{"id": s.fresh_id("c.cou."), "status": "enabled"},
                 {"id": name["cou"], "status": "disabled"}], readback=False)
    s.bulk_step([{"id": s.fresh_id("c.named-cou."), "importMode": _CONTRACT.default_mode}],
                readback=False)
    device_seen = [s.read(name[r], exchange, twin=False) for r in ("update", "uim")]
    twin_seen = [s.read(name["twin"], exchange), s.read(name["tim"], exchange, device=False)]
    if s.read(name["delete"], exchange):  # its twin read gone too
        s.coverage.cover("write:delete-twin")
    s.read(name["dim"], exchange, twin=False)
    if twin_seen[0]:
        s.coverage.cover("write:keys-kept")
    if all(device_seen):
        s.coverage.cover("etag:device-changes")
    if all(twin_seen):
        s.coverage.cover("etag:twin-changes")
    stale = {"etag:stale-update": (name["uim"], "updateIfMatchETag", "eTag", PREVIOUS_ETAG,
                                   "device"),
             "etag:stale-delete": (name["update"], "deleteIfMatchETag", "eTag", PREVIOUS_ETAG,
                                   "device"),
             "etag:stale-twin": (name["tim"], "updateTwinIfMatchETag", "twinETag",
                                 PREVIOUS_TWIN_ETAG, "twin")}
    known = {item: spec for item, spec in stale.items()
             if s.mirror.etag(spec[0], spec[4], previous=True) is not None}
    if known:
        s.bulk_step([{"id": i, "importMode": mode, field: placeholder, "tags": {"v": 3}}
                     if field == "twinETag" else {"id": i, "importMode": mode, field: placeholder}
                     for i, mode, field, placeholder, _ in known.values()], readback=False,
                    covers=tuple(known))
    for item in set(stale) - set(known):
        s.coverage.miss("the endpoint's etags did not change (etag-lifecycle)", item)
    # a twinETag beside the eTag of updateIfMatchETag (decision twin-etag-scope) and a member
    # named in another case (decision member-casing): choices the table leaves open or weak,
    # each in a call of its own, read back by nothing that holds them to one reading
    s.bulk_step([{"id": name["update"], "importMode": "updateIfMatchETag",
                  "eTag": CURRENT_ETAG, "twinETag": STALE_ETAG}], readback=False)
    s.bulk_step([{"id": name["twin"], "importMode": "update", "Status": "disabled"}],
                readback=False)
