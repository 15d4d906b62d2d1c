"""The registry model: the oracle of the reference hub (pure: no HTTP, no I/O, no global state).

``Registry`` holds device and module identities with their twins. Every operation is *planned*
first: a ``Plan`` is the response (status, headers, JSON body) plus the ``Changes`` it would make,
computed without touching the registry; ``predict`` turns a plan into an ``Outcome`` whose
``next_state`` is a new registry, ``apply``/``commit`` adopt it. The hub persists a plan's changes
before adopting them, so the model never needs to know about storage.

Request checks are the validator's (``bulkreg_validator.validate``): request-scope error findings
reject the call, entry-scope ones fail only their entry. Generated values (keys, generation ids,
etags, tracking ids) derive from the registry's seed and counter, so a prediction and the
application of the same request generate the same values; timestamps come from an injectable
clock. Behaviour choices for the open questions of facts.md §8 are marked ``# decision:``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

import bulkreg_schema
from bulkreg_validator import RULES, Finding, Report, validate_parsed

__all__ = [
    "API_VERSIONS",
    "Changes",
    "Checked",
    "Outcome",
    "Plan",
    "Registry",
    "check_bulk",
    "device_etag",
    "twin_etag",
]

Key = tuple[str, str]  # (deviceId, moduleId or "")
Record = dict[str, Any]  # an identity with its twin; never mutated once in a Registry
Clock = Callable[[], datetime]

# facts §1.3: the current version and the older ones SDKs used for this operation.
API_VERSIONS = bulkreg_schema.contract().api_versions
MODES = bulkreg_schema.contract().bulk_modes
# decision: an entry without importMode is createOrUpdate, the import-file default (facts §3.2).
DEFAULT_MODE = bulkreg_schema.contract().default_mode
_canonical_mode = bulkreg_schema.contract().canonical_mode
NEVER = "0001-01-01T00:00:00Z"  # .NET DateTime.MinValue, as never-connected devices show
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_SUCCESS = {"isSuccessful": True, "errors": [], "warnings": []}
_JSON = {"Content-Type": "application/json; charset=utf-8"}


class Changes(NamedTuple):
    records: dict[Key, Record | None]  # None: deleted
    counter: int  # the registry's counter after the operation


class Plan(NamedTuple):
    status: int
    headers: dict[str, str]
    body: Any  # JSON value, or None for an empty body
    changes: Changes


class Outcome(NamedTuple):
    status: int
    headers: dict[str, str]
    body: Any
    next_state: Registry


class Checked(NamedTuple):
    """A bulk body after the validator: the state-independent half of a bulk call."""

    rejection: Finding | None  # the request-level error finding, if the call is rejected
    status: int  # 413 or 400 for a rejection
    entries: list[Any]
    entry_errors: dict[int, Finding]  # index -> first entry-scope error finding
    plain: bool = False  # the text holds no null and no "$ key: twin sections need no cleaning


# --- helpers -----------------------------------------------------------------------------------


def device_etag(version: int) -> str:
    """A device etag: base64 of the ASCII decimal version (MA== is 0; facts §2.2)."""
    return base64.b64encode(str(version).encode("ascii")).decode("ascii")


def twin_etag(version: int) -> str:
    """A twin etag: base64 of the 8-byte big-endian version (AAAAAAAAAAE= is 1; facts §2.2)."""
    return base64.b64encode(version.to_bytes(8, "big", signed=True)).decode("ascii")


def _unquote_etag(value: str) -> str:
    value = value.strip()
    value = value.removeprefix("W/")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clone(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _drop_nulls(value: Any) -> Any:
    """Twin sections never store null: null means 'remove' (DOC-TW)."""
    if type(value) is dict:
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A twin PATCH: members merge recursively, null removes (DOC-TW 'partially update')."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif type(value) is dict and type(out.get(key)) is dict:
            out[key] = _merge(out[key], value)
        else:
            out[key] = _drop_nulls(value)
    return out


def _section(value: Any) -> dict[str, Any]:
    """A tags/desired/reported section from a request: the service-maintained $ keys left out."""
    if type(value) is not dict:
        return {}
    return {k: v for k, v in value.items() if not k.startswith("$")}


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one (a null or absent member)."""
    return value if type(value) is dict else {}


def _enum(value: Any, choices: Iterable[str], default: str) -> str:
    if type(value) is not str:
        return default
    return next((c for c in choices if c.lower() == value.lower()), default)


_GENERATION_BASE, _GENERATION_SPAN = 10**17, 9 * 10**17  # 18-digit ids, as the service's


def _b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


_STATUSES = ("enabled", "disabled")
_AUTH_TYPES = ("sas", "selfSigned", "certificateAuthority", "none")
_NO_PRINTS: dict[str, Any] = {"primaryThumbprint": None, "secondaryThumbprint": None}


def _api_at_least(api_version: str, since: str) -> bool:
    return api_version[:10] >= since


def _error_entry(entry: dict[str, Any], mode: str, code: str, text: str) -> dict[str, Any]:
    return {"deviceId": entry.get("id"), "errorCode": code, "errorStatus": text,
            "moduleId": entry.get("moduleId"), "operation": mode}


def _parse(body: bytes | str) -> Any:
    # orjson turns an integer literal beyond 64 bits into a rounded float; 19 digits in a row may
    # be one, so such a text is parsed by json, which keeps every integer's digits.
    if _LONG_DIGITS.search(body.encode() if isinstance(body, str) else body):
        return json.loads(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:  # literals orjson refuses but the validator accepted
        return json.loads(body)


# --- the state-independent check of a bulk body ------------------------------------------------


_MEMBERS = {name.lower(): name
            for name in bulkreg_schema.load("ExportImportDevice")["properties"]}


def _member_casing(body: bytes | str, report: Report) -> bytes | None:
    """``body`` with entry members named in another case renamed to the canonical name, or None.

    decision member-casing: the service reads JSON with Newtonsoft.Json, which matches member
    names case-insensitively, and Node's ``updateDevices(…, false)`` sends the lower-case
    ``etag`` of ``get()``. The validator reports such names as unknown members, so the common
    path costs nothing."""
    renames = []
    for finding in report.findings:
        parts = finding.pointer.split("/")
        if finding.rule == "unknown-property" and len(parts) == 3 and parts[1].isdigit():
            canonical = _MEMBERS.get(parts[2].lower())
            if canonical is not None:
                renames.append((int(parts[1]), parts[2], canonical))
    if not renames:
        return None
    entries = _parse(body)
    for index, name, canonical in renames:
        entry = entries[index]
        if isinstance(entry, dict) and canonical not in entry and name in entry:
            entry[canonical] = entry.pop(name)
    try:
        return orjson.dumps(entries)
    except TypeError:  # an integer beyond 64 bits: the stdlib writes its digits
        return json.dumps(entries).encode()


def check_bulk(body: bytes | str, *, api_version: str = bulkreg_schema.API_VERSION) -> Checked:
    """Run the validator on a bulk body; no registry needed, so the hub runs it unlocked."""
    value, report = validate_parsed(body, api_version=api_version, accelerate=True)
    renamed = _member_casing(body, report) if report.findings else None
    if renamed is not None:
        body = renamed
        value, report = validate_parsed(body, api_version=api_version, accelerate=True)
    errors = report.errors
    rejection = next((f for f in errors if RULES[f.rule].scope == "request"), None)
    if rejection is not None:
        status = 413 if rejection.rule == "too-many-devices" else 400
        return Checked(rejection, status, [], {})
    entry_errors: dict[int, Finding] = {}
    for finding in errors:
        index = int(finding.pointer.split("/")[1])
        entry_errors.setdefault(index, finding)
    raw = body.encode() if isinstance(body, str) else body
    plain = b"null" not in raw and b'"$' not in raw
    # the validator's value: exact (integer digits kept) when no request-scope error was found
    return Checked(None, 200, value, entry_errors, plain)


# --- one transaction: an overlay over the registry's records -----------------------------------


class _Tx:
    """The working state of one operation: reads fall through to the base records."""

    def __init__(self, registry: Registry, *, plain: bool = False) -> None:
        self.plain = plain  # sections are clean as given (see Checked.plain)
        self.base = registry._records
        self.modules = registry._modules
        self.seed = registry._seed
        self.counter = registry._counter
        self.now = _stamp(registry._clock())
        self.changes: dict[Key, Record | None] = {}
        # random() hashes seed + counter; BLAKE2b gives SHA-512's 64 bytes in half its time
        self._seeded = hashlib.blake2b(self.seed)

    def get(self, key: Key) -> Record | None:
        if key in self.changes:
            return self.changes[key]
        return self.base.get(key)

    def put(self, key: Key, record: Record | None) -> None:
        self.changes[key] = record

    def random(self, size: int = 32) -> bytes:
        self.counter += 1
        digest = self._seeded.copy()
        digest.update(self.counter.to_bytes(8, "big"))
        return digest.digest()[:size]

    def _digest(self) -> bytes:
        """random(64) without the slice: the hot path of key pairs and generation ids."""
        self.counter += 1
        digest = self._seeded.copy()
        digest.update(self.counter.to_bytes(8, "big"))
        return digest.digest()

    def version(self) -> int:
        self.counter += 1
        return self.counter

    def key(self) -> str:
        return _b64(self.random())

    def key_pair(self) -> tuple[str, str]:
        both = self._digest()  # one digest, two keys: generation is per device, not per key
        return _b64(both[:32]), _b64(both[32:])

    def clean(self, section: Any) -> dict[str, Any]:
        """A request's twin section as stored: $ keys and nulls removed."""
        if self.plain and type(section) is dict:
            return section
        if section is None:
            return {}
        return _drop_nulls(_section(section))  # type: ignore[no-any-return]

    def generation_id(self) -> str:
        return str(_GENERATION_BASE
                   + int.from_bytes(self._digest()[:8], "big") % _GENERATION_SPAN)

    def done(self) -> Changes:
        return Changes(self.changes, self.counter)


# --- building records --------------------------------------------------------------------------


def _authentication(tx: _Tx, given: Any) -> dict[str, Any]:
    """The stored authentication: enums canonical, keys generated when absent (facts §2.3, §2.5)."""
    if given is None:  # the common case: a SAS device with generated keys
        first, second = tx.key_pair()
        return {"symmetricKey": {"primaryKey": first, "secondaryKey": second},
                "x509Thumbprint": dict(_NO_PRINTS), "type": "sas"}
    auth = _obj(given)
    sym, thumb = _obj(auth.get("symmetricKey")), _obj(auth.get("x509Thumbprint"))
    primary_print = thumb.get("primaryThumbprint") or None
    secondary_print = thumb.get("secondaryThumbprint") or None
    inferred = "selfSigned" if primary_print or secondary_print else "sas"
    kind = _enum(auth.get("type"), _AUTH_TYPES, inferred)
    keys: dict[str, Any] = {"primaryKey": None, "secondaryKey": None}
    if kind == "sas":
        primary, secondary = sym.get("primaryKey"), sym.get("secondaryKey")
        if not (primary and secondary):  # the validator allows both or neither
            primary, secondary = tx.key_pair()
        keys = {"primaryKey": primary, "secondaryKey": secondary}
    prints = {"primaryThumbprint": primary_print if kind == "selfSigned" else None,
              "secondaryThumbprint": secondary_print if kind == "selfSigned" else None}
    return {"symmetricKey": keys, "x509Thumbprint": prints, "type": kind}


def _scopes(entry: dict[str, Any], old: Record | None, edge: bool, device_id: str,
            generation: str) -> tuple[str | None, list[str] | None]:
    if edge:  # edge scope is generated and immutable (facts §2.6)
        scope = old["deviceScope"] if old and old["capabilities"]["iotEdge"] else None
        return scope or f"ms-azure-iot-edge://{device_id}-{generation}", []
    scope = entry.get("deviceScope") or None
    parents = entry.get("parentScopes")
    if not parents and scope:  # the service copies a leaf's scope to parentScopes (facts §2.6)
        parents = [scope]
    return scope, list(parents) if parents else None


def _device_fields(tx: _Tx, entry: dict[str, Any], old: Record | None) -> Record:
    """The identity half of a record: replaced wholesale by create and update (facts §3.2)."""
    device_id = entry["id"]
    generation = old["generationId"] if old else tx.generation_id()
    caps = entry.get("capabilities")
    edge = type(caps) is dict and caps.get("iotEdge") is True
    if edge or entry.get("deviceScope") or entry.get("parentScopes"):
        scope, parents = _scopes(entry, old, edge, device_id, generation)
    else:  # a plain device: no scopes to derive
        scope, parents = None, None
    status = entry.get("status")
    if status != "enabled" and status != "disabled":  # noqa: PLR1714 - the fast path
        status = _enum(status, _STATUSES, "enabled")
    changed_status = old is None or old["status"] != status
    return {
        "deviceId": device_id,
        "moduleId": entry.get("moduleId") or None,
        "generationId": generation,
        "version": tx.version(),
        "status": status,
        "statusReason": entry.get("statusReason"),
        "statusUpdatedTime": NEVER if old is None else
        (tx.now if changed_status else old["statusUpdatedTime"]),
        "authentication": _authentication(tx, entry.get("authentication")),
        "capabilities": {"iotEdge": edge},
        "deviceScope": scope,
        "parentScopes": parents,
    }


def _new_twin(tx: _Tx, entry: dict[str, Any]) -> Record:
    props = entry.get("properties")
    if type(props) is not dict:
        props = {}
    clean = tx.clean
    return {"tags": clean(entry.get("tags")),
            "desired": clean(props.get("desired")),
            "reported": clean(props.get("reported")),
            "twinVersion": 1, "desiredVersion": 1, "reportedVersion": 1,
            "desiredUpdated": tx.now, "reportedUpdated": tx.now}


def _replace_twin(tx: _Tx, old: Record, tags: Any, desired: Any) -> Record:
    """Twin sections given (not null) replace the old ones; the others stay."""
    twin = {k: old[k] for k in ("tags", "desired", "reported", "twinVersion", "desiredVersion",
                                "reportedVersion", "desiredUpdated", "reportedUpdated")}
    if tags is not None:
        twin["tags"] = tx.clean(tags)
    if desired is not None:
        twin["desired"] = tx.clean(desired)
        twin["desiredVersion"] = old["desiredVersion"] + 1
        twin["desiredUpdated"] = tx.now
    if tags is not None or desired is not None:
        twin["twinVersion"] = old["twinVersion"] + 1
    return twin


def _desired_of(entry: dict[str, Any]) -> Any:
    props = entry.get("properties")
    return props.get("desired") if type(props) is dict else None


# --- wire shapes (facts §5) --------------------------------------------------------------------


def _device_wire(record: Record, api_version: str) -> dict[str, Any]:
    wire: dict[str, Any] = {"deviceId": record["deviceId"]}
    if record["moduleId"]:
        wire["moduleId"] = record["moduleId"]
    wire.update({
        "generationId": record["generationId"],
        "etag": device_etag(record["version"]),
        "connectionState": "Disconnected",
        "status": record["status"],
        "statusReason": record["statusReason"],
        "connectionStateUpdatedTime": NEVER,
        "statusUpdatedTime": record["statusUpdatedTime"],
        "lastActivityTime": NEVER,
        "cloudToDeviceMessageCount": 0,
        "authentication": _clone(record["authentication"]),
        "capabilities": dict(record["capabilities"]),
        "deviceScope": record["deviceScope"],
    })
    if _api_at_least(api_version, "2020-09-30"):
        wire["parentScopes"] = list(record["parentScopes"] or [])
    return wire


def _properties_wire(record: Record, name: str) -> dict[str, Any]:
    section: dict[str, Any] = _clone(record[name])
    section["$metadata"] = {"$lastUpdated": record[f"{name}Updated"]}
    section["$version"] = record[f"{name}Version"]
    return section


def _twin_wire(record: Record, api_version: str) -> dict[str, Any]:
    device = _device_wire(record, api_version)
    wire: dict[str, Any] = {"deviceId": record["deviceId"]}
    if record["moduleId"]:
        wire["moduleId"] = record["moduleId"]
    wire.update({
        "etag": twin_etag(record["twinVersion"]),
        "deviceEtag": device["etag"],
        "status": record["status"],
        "statusReason": record["statusReason"],
        "statusUpdateTime": record["statusUpdatedTime"],
        "connectionState": "Disconnected",
        "lastActivityTime": NEVER,
        "cloudToDeviceMessageCount": 0,
        "authenticationType": record["authentication"]["type"],
        "x509Thumbprint": dict(record["authentication"]["x509Thumbprint"]),
        "version": record["twinVersion"],
        "tags": _clone(record["tags"]),
        "properties": {"desired": _properties_wire(record, "desired"),
                       "reported": _properties_wire(record, "reported")},
        "capabilities": dict(record["capabilities"]),
        "deviceScope": record["deviceScope"],
    })
    if "parentScopes" in device:
        wire["parentScopes"] = device["parentScopes"]
    return wire


# --- the registry ------------------------------------------------------------------------------


def _system_clock() -> datetime:
    return datetime.now(UTC)


class _Overlay:
    """Copy-on-write records: a frozen base dict shared between registries, plus this
    registry's own changes (None: deleted). A prediction costs its changes, not the registry."""

    __slots__ = ("base", "delta", "size")

    def __init__(self, base: dict[Key, Record], delta: dict[Key, Record | None],
                 size: int) -> None:
        self.base = base  # never mutated: other registries may read it
        self.delta = delta
        self.size = size

    def get(self, key: Key) -> Record | None:
        delta = self.delta
        if key in delta:
            return delta[key]
        return self.base.get(key)

    def put(self, key: Key, record: Record | None) -> None:
        self.size += (record is not None) - (self.get(key) is not None)
        self.delta[key] = record

    def crowded(self) -> bool:
        """Flattening (O(registry)) pays off once the delta (copied per prediction) is big."""
        return len(self.delta) > max(4096, len(self.base) // 64)  # not a contract limit

    def flat(self) -> dict[Key, Record]:
        out = dict(self.base)
        for key, record in self.delta.items():
            if record is None:
                out.pop(key, None)
            else:
                out[key] = record
        return out


class Registry:
    """Device and module identities with their twins; see the module docstring."""

    def __init__(self, *, seed: bytes | None = None, clock: Clock | None = None,
                 records: dict[Key, Record] | None = None, counter: int = 0) -> None:
        self._seed = os.urandom(32) if seed is None else seed
        self._clock: Clock = clock or _system_clock
        # a dict this registry owns, or an overlay on a base shared with predicted states
        self._records: dict[Key, Record] | _Overlay = {}
        self._modules: dict[str, frozenset[str]] = {}  # device id -> its module ids
        self._modules_shared = False  # copy the dict before changing it
        self._counter = counter
        self._adopt_records(records or {})

    # -- state ----------------------------------------------------------------------------------

    @property
    def seed(self) -> bytes:
        return self._seed

    @property
    def counter(self) -> int:
        return self._counter

    def records(self) -> dict[Key, Record]:
        """The stored records (read-only by convention), for the store and for comparisons."""
        if isinstance(self._records, _Overlay):
            self._records = self._records.flat()  # a fresh dict this registry owns
        return self._records

    def __len__(self) -> int:
        records = self._records
        return records.size if isinstance(records, _Overlay) else len(records)

    def copy(self) -> Registry:
        """An independent registry with the same state, in O(changes since the last flatten):
        both share the current records as a frozen base."""
        return self._derived({})

    def _shared_base(self) -> _Overlay:
        """This registry's records as an overlay whose base may be shared from now on."""
        records = self._records
        if isinstance(records, _Overlay):
            if records.crowded():
                records = _Overlay(records.flat(), {}, records.size)
        else:
            records = _Overlay(records, {}, len(records))
        self._records = records
        return records

    def _derived(self, changes: Mapping[Key, Record | None]) -> Registry:
        mine = self._shared_base()
        nxt = Registry.__new__(Registry)
        nxt._seed, nxt._clock, nxt._counter = self._seed, self._clock, self._counter
        nxt._records = _Overlay(mine.base, dict(mine.delta), mine.size)
        nxt._modules = self._modules  # shared: copied before either side changes it
        self._modules_shared = nxt._modules_shared = True
        nxt._adopt_records(changes)
        return nxt

    def _adopt_records(self, records: Mapping[Key, Record | None]) -> None:
        store = self._records
        put = store.put if isinstance(store, _Overlay) else None
        for key, record in records.items():
            device_id, module_id = key
            if put is not None:
                put(key, record)
            elif record is None:
                store.pop(key, None)  # type: ignore[union-attr]
            else:
                store[key] = record  # type: ignore[index]
            if module_id:
                self._module(device_id, module_id, record is not None)

    def _module(self, device_id: str, module_id: str, present: bool) -> None:
        # copy-on-write: the dict may be shared with predicted states, so it is replaced
        known = self._modules.get(device_id, frozenset())
        if (module_id in known) != present:
            if self._modules_shared:
                self._modules, self._modules_shared = dict(self._modules), False
            self._modules[device_id] = known | {module_id} if present else known - {module_id}

    def adopt(self, changes: Changes) -> None:
        """Make ``changes`` (from a plan of this registry) the current state."""
        self._adopt_records(changes.records)
        self._counter = changes.counter
        if isinstance(self._records, _Overlay) and self._records.crowded():
            self._records = self._records.flat()  # a new dict: the shared base stays intact

    def commit(self, plan: Plan) -> Outcome:
        self.adopt(plan.changes)
        return Outcome(plan.status, plan.headers, plan.body, self)

    def outcome(self, plan: Plan) -> Outcome:
        """The outcome of ``plan`` with a new registry as next state; self is unchanged and the
        two share their unchanged records (copy-on-write, see ``_Overlay``)."""
        nxt = self._derived(plan.changes.records)
        nxt._counter = plan.changes.counter
        return Outcome(plan.status, plan.headers, plan.body, nxt)

    def device(self, device_id: str, module_id: str | None = None, *,
               api_version: str = bulkreg_schema.API_VERSION) -> dict[str, Any] | None:
        record = self._records.get((device_id, module_id or ""))
        return None if record is None else _device_wire(record, api_version)

    def twin(self, device_id: str, module_id: str | None = None, *,
             api_version: str = bulkreg_schema.API_VERSION) -> dict[str, Any] | None:
        record = self._records.get((device_id, module_id or ""))
        return None if record is None else _twin_wire(record, api_version)

    # -- the bulk call --------------------------------------------------------------------------

    def predict(self, body: bytes | str, *,
                api_version: str = bulkreg_schema.API_VERSION) -> Outcome:
        """What a hub in this state answers to ``POST /devices`` with ``body``, and the state
        after it. No side effects."""
        return self.outcome(self.plan_bulk(check_bulk(body, api_version=api_version)))

    def apply(self, body: bytes | str, *,
              api_version: str = bulkreg_schema.API_VERSION) -> Outcome:
        return self.commit(self.plan_bulk(check_bulk(body, api_version=api_version)))

    def plan_bulk(self, checked: Checked) -> Plan:
        tx = _Tx(self, plain=checked.plain)
        if checked.rejection is not None:
            return self._error(tx, checked.status, checked.rejection.code or "ArgumentInvalid",
                               checked.rejection.message)
        errors: list[dict[str, Any]] = []
        for index, entry in enumerate(checked.entries):
            error = self._entry(tx, entry, checked.entry_errors.get(index))
            if error is not None:
                errors.append(error)
        if not errors:
            return Plan(200, dict(_JSON), _clone(_SUCCESS), tx.done())
        # facts §3.1: per-entry failures answer 400 with the result body and this header.
        headers = {**_JSON, "IotHubErrorCode": "BulkRegistryOperationFailure"}
        body = {"isSuccessful": False, "errors": errors, "warnings": []}
        return Plan(400, headers, body, tx.done())

    def plan_entries(self, entries: Iterable[dict[str, Any]]
                     ) -> tuple[Changes, list[dict[str, Any] | None]]:
        """``entries`` (each already accepted by the validator) applied one after the other as
        a bulk call applies its entries, each seeing the changes of those before it: the
        changes, and for each entry None or its error (the bulk result's error shape). Import
        jobs apply their lines with it, in batches; the import-only modes (createOrUpdate,
        createOrUpdateIfMatchETag) are understood here too."""
        tx = _Tx(self)
        results = [self._entry(tx, entry, None) for entry in entries]
        return tx.done(), results

    def _entry(self, tx: _Tx, entry: dict[str, Any],
               finding: Finding | None) -> dict[str, Any] | None:
        raw_mode = entry.get("importMode")
        mode = _canonical_mode(raw_mode) or (raw_mode if type(raw_mode) is str else DEFAULT_MODE)
        if finding is not None:
            return _error_entry(entry, mode, finding.code or "ArgumentInvalid", finding.message)
        key: Key = (entry["id"], entry.get("moduleId") or "")
        handler = _HANDLERS[mode]
        problem = handler(tx, key, entry, tx.get(key))
        if problem is None:
            return None
        return _error_entry(entry, mode, *problem)

    # -- errors ---------------------------------------------------------------------------------

    def _error(self, tx: _Tx, status: int, code: str, text: str) -> Plan:
        """IoT Hub's generic error: body format A and header iothub-errorcode (facts §3.4)."""
        tracking = hashlib.sha256(self._seed + b"tracking" + tx.counter.to_bytes(8, "big"))
        stamp = self._clock().astimezone(UTC).strftime("%m/%d/%Y %H:%M:%S")
        body = {"Message": f"ErrorCode:{code};{text}",
                "ExceptionMessage": f"Tracking ID:{tracking.hexdigest()[:32]}-G:0-"
                                    f"TimeStamp:{stamp}"}
        return Plan(status, {**_JSON, "iothub-errorcode": code}, body, Changes({}, tx.counter))

    def error(self, status: int, code: str, text: str) -> Plan:
        """A generic error answer (used by the HTTP layer for auth, api-version, faults)."""
        return self._error(_Tx(self), status, code, text)

    # -- single-identity operations (facts §5) --------------------------------------------------

    def get_device(self, device_id: str, module_id: str | None = None, *,
                   api_version: str = bulkreg_schema.API_VERSION) -> Plan:
        wire = self.device(device_id, module_id, api_version=api_version)
        if wire is None:
            return self._not_found(device_id, module_id)
        return Plan(200, dict(_JSON), wire, Changes({}, self._counter))

    def get_twin(self, device_id: str, module_id: str | None = None, *,
                 api_version: str = bulkreg_schema.API_VERSION) -> Plan:
        wire = self.twin(device_id, module_id, api_version=api_version)
        if wire is None:
            return self._not_found(device_id, module_id)
        return Plan(200, dict(_JSON), wire, Changes({}, self._counter))

    def _not_found(self, device_id: str, module_id: str | None) -> Plan:
        if module_id:
            return self.error(404, "ModuleNotFound",
                              f"Module {module_id} on device {device_id} could not be found.")
        return self.error(404, "DeviceNotFound", f"Device {device_id} could not be found.")

    def put_device(self, device_id: str, body: bytes | str, if_match: str | None, *,
                   api_version: str = bulkreg_schema.API_VERSION) -> Plan:
        """PUT /devices/{id}: create without If-Match, update with "*" or a matching etag."""
        parsed, problem = self._single_body(device_id, body, "deviceId")
        if problem is not None:
            return problem
        old = self._records.get((device_id, ""))
        match = _if_match(if_match)
        if match is None and old is not None:
            return self.error(409, "DeviceAlreadyExists",
                              f"A device with ID '{device_id}' is already registered.")
        if match is not None and old is None:
            return self._not_found(device_id, None)
        if match not in (None, "*") and old is not None and device_etag(old["version"]) != match:
            return self._precondition(device_etag(old["version"]), match)
        entry = {k: v for k, v in parsed.items() if k in _DEVICE_MEMBERS and v is not None}
        entry.update(id=device_id, importMode="create" if old is None else "update")
        rejected = self._rejection([entry], api_version)
        if rejected is not None:
            return rejected
        tx = _Tx(self)
        record = {**(old or _new_twin(tx, {})), **_device_fields(tx, entry, old)}
        tx.put((device_id, ""), record)
        return Plan(200, dict(_JSON), _device_wire(record, api_version), tx.done())

    def delete_device(self, device_id: str, if_match: str | None) -> Plan:
        old = self._records.get((device_id, ""))
        if old is None:
            return self._not_found(device_id, None)
        match = _if_match(if_match)
        if match not in (None, "*") and device_etag(old["version"]) != match:
            return self._precondition(device_etag(old["version"]), match or "")
        tx = _Tx(self)
        _delete(tx, (device_id, ""), {}, old)
        return Plan(204, {}, None, tx.done())

    def replace_twin(self, device_id: str, body: bytes | str, if_match: str | None, *,
                     api_version: str = bulkreg_schema.API_VERSION,
                     module_id: str | None = None) -> Plan:
        """PUT /twins/{id}[/modules/{mid}]: tags and desired replaced (missing ones emptied)."""
        return self._twin_write(device_id, body, if_match, api_version, merge=False,
                                module_id=module_id)

    def update_twin(self, device_id: str, body: bytes | str, if_match: str | None, *,
                    api_version: str = bulkreg_schema.API_VERSION,
                    module_id: str | None = None) -> Plan:
        """PATCH /twins/{id}[/modules/{mid}]: tags and desired merged, null removes a member."""
        return self._twin_write(device_id, body, if_match, api_version, merge=True,
                                module_id=module_id)

    def _twin_write(self, device_id: str, body: bytes | str, if_match: str | None,
                    api_version: str, *, merge: bool, module_id: str | None = None) -> Plan:
        parsed, problem = self._single_body(device_id, body, "deviceId")
        if problem is not None:
            return problem
        if module_id and parsed.get("moduleId") not in (None, module_id):
            return self.error(400, "ArgumentInvalid",
                              "moduleId in the body does not match the request URI")
        key = (device_id, module_id or "")
        old = self._records.get(key)
        if old is None:
            return self._not_found(device_id, module_id)
        match = _if_match(if_match)
        if match not in (None, "*") and twin_etag(old["twinVersion"]) != match:
            return self._precondition(twin_etag(old["twinVersion"]), match or "")
        tags = parsed.get("tags")
        props = _obj(parsed.get("properties"))
        desired = props.get("desired")
        entry = {"id": device_id, "importMode": "updateTwin", "tags": tags,
                 "properties": {"desired": desired}}
        if module_id:
            entry["moduleId"] = module_id
        rejected = self._rejection([entry], api_version)
        if rejected is not None:
            return rejected
        tx = _Tx(self)
        if merge:
            tags = _merge(old["tags"], _section(tags)) if tags is not None else None
            desired = _merge(old["desired"], _section(desired)) if desired is not None else None
        else:
            tags, desired = tags or {}, desired or {}
        record = {**old, **_replace_twin(tx, old, tags, desired)}
        tx.put(key, record)
        return Plan(200, dict(_JSON), _twin_wire(record, api_version), tx.done())

    def _single_body(self, device_id: str, body: bytes | str,
                     id_field: str) -> tuple[dict[str, Any], Plan | None]:
        try:
            parsed = _parse(body)
        except RecursionError:  # orjson took it (<= 1024 levels), the stdlib fallback did not
            return {}, self.error(400, "IotHubFormatError", "the body nests too deep")
        except ValueError:
            return {}, self.error(400, "IotHubFormatError", "the body is not valid JSON")
        if type(parsed) is not dict:
            return {}, self.error(400, "ArgumentInvalid", "the body must be a JSON object")
        given = parsed.get(id_field)
        if given is not None and given != device_id:
            return {}, self.error(400, "ArgumentInvalid",
                                  f"{id_field} in the body does not match the request URI")
        return parsed, None

    def _rejection(self, entries: list[dict[str, Any]], api_version: str) -> Plan | None:
        try:
            text = orjson.dumps(entries)
        except TypeError:  # an integer beyond 64 bits, or deeper than orjson writes (255): the
            try:  # stdlib writes what it read
                text = json.dumps(entries).encode()
            except RecursionError:
                return self.error(400, "IotHubFormatError", "the body nests too deep")
        checked = check_bulk(text, api_version=api_version)
        if checked.rejection is None:
            return None
        return self.error(400, checked.rejection.code or "ArgumentInvalid",
                          checked.rejection.message)

    def _precondition(self, existing: str, given: str) -> Plan:
        return self.error(412, "PreconditionFailed",
                          f"Precondition failed: etag did not match, existing:{existing} "
                          f"given:{given}")


_DEVICE_MEMBERS = frozenset({"status", "statusReason", "authentication", "capabilities",
                             "deviceScope", "parentScopes"})


def _if_match(header: str | None) -> str | None:
    """The etag of an If-Match header; '*' for the wildcard. Unquoted values are ignored, as
    the service silently did for Node's unquoted etags (facts §5, azure-iot-sdk-node#606)."""
    if header is None:
        return None
    value = header.strip().removeprefix("W/")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return "*" if value == "*" else None


# --- per-mode handlers: return None on success or (errorCode, errorStatus) ---------------------

Problem = tuple[str, str] | None


def _absent(key: Key) -> tuple[str, str]:
    device_id, module_id = key
    if module_id:
        return "ModuleNotFound", f"Module {module_id} on device {device_id} could not be found."
    return "DeviceNotFound", f"Device {device_id} could not be found."


def _etag_mismatch(what: str, existing: str, given: Any) -> tuple[str, str]:
    # decision: PreconditionFailed (412001, C# mapping) rather than swagger's EtagDoesNotMatch.
    return "PreconditionFailed", (f"Precondition failed: {what} etag did not match, "
                                  f"existing:{existing} given:{given}")


def _create(tx: _Tx, key: Key, entry: dict[str, Any], old: Record | None) -> Problem:
    device_id, module_id = key
    if old is not None:
        if module_id:
            return "ModuleAlreadyExistsOnDevice", (
                f"A module with ID '{module_id}' is already registered on device '{device_id}'.")
        return "DeviceAlreadyExists", f"A device with ID '{device_id}' is already registered."
    if module_id and tx.get((device_id, "")) is None:  # facts §2.1: parent must exist
        return _absent((device_id, ""))
    record = _new_twin(tx, entry)
    record.update(_device_fields(tx, entry, None))
    tx.put(key, record)
    return None


def _update(tx: _Tx, key: Key, entry: dict[str, Any], old: Record | None) -> Problem:
    if old is None:
        return _absent(key)
    # decision: update replaces the identity (keys regenerated when authentication is omitted)
    # and replaces the twin sections it carries; sections it omits stay (facts §3.2, §8).
    twin = _replace_twin(tx, old, entry.get("tags"), _desired_of(entry))
    tx.put(key, {**twin, **_device_fields(tx, entry, old)})
    return None


def _stale_device_etag(entry: dict[str, Any], old: Record) -> Problem:
    existing = device_etag(old["version"])
    if _unquote_etag(str(entry.get("eTag"))) != existing:
        return _etag_mismatch("device", existing, entry.get("eTag"))
    return None


def _update_if_match(tx: _Tx, key: Key, entry: dict[str, Any], old: Record | None) -> Problem:
    if old is None:
        return _absent(key)
    return _stale_device_etag(entry, old) or _update(tx, key, entry, old)


def _create_or_update(tx: _Tx, key: Key, entry: dict[str, Any], old: Record | None) -> Problem:
    return _create(tx, key, entry, old) if old is None else _update(tx, key, entry, old)


def _create_or_update_if_match(tx: _Tx, key: Key, entry: dict[str, Any],
                               old: Record | None) -> Problem:
    """Import jobs only (DOC-BULK): a new device is created; an existing one is overwritten
    only if the line's eTag matches (a missing eTag does not)."""
    if old is None:
        return _create(tx, key, entry, old)
    return _stale_device_etag(entry, old) or _update(tx, key, entry, old)


def _delete(tx: _Tx, key: Key, entry: dict[str, Any], old: Record | None) -> Problem:
    if old is None:
        return _absent(key)
    tx.put(key, None)
    device_id, module_id = key
    if not module_id:  # a device's modules go with it
        for module in tx.modules.get(device_id, ()):
            tx.put((device_id, module), None)
    return None


def _delete_if_match(tx: _Tx, key: Key, entry: dict[str, Any], old: Record | None) -> Problem:
    if old is None:
        return _absent(key)
    return _stale_device_etag(entry, old) or _delete(tx, key, entry, old)


def _update_twin(tx: _Tx, key: Key, entry: dict[str, Any], old: Record | None) -> Problem:
    if old is None:
        return _absent(key)
    tx.put(key, {**old, **_replace_twin(tx, old, entry.get("tags"), _desired_of(entry))})
    return None


def _update_twin_if_match(tx: _Tx, key: Key, entry: dict[str, Any],
                          old: Record | None) -> Problem:
    if old is None:
        return _absent(key)
    existing = twin_etag(old["twinVersion"])
    if _unquote_etag(str(entry.get("twinETag"))) != existing:
        return _etag_mismatch("twin", existing, entry.get("twinETag"))
    return _update_twin(tx, key, entry, old)


Handler = Callable[[_Tx, Key, dict[str, Any], Record | None], Problem]
_HANDLERS: dict[str, Handler] = {
    "create": _create,
    "update": _update,
    "updateIfMatchETag": _update_if_match,
    "delete": _delete,
    "deleteIfMatchETag": _delete_if_match,
    "updateTwin": _update_twin,
    "updateTwinIfMatchETag": _update_twin_if_match,
    DEFAULT_MODE: _create_or_update,
    "createOrUpdateIfMatchETag": _create_or_update_if_match,
}
