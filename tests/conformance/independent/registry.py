"""The registry semantics of Bulk Registry - Update Registry, written from the published swagger
definition and facts.md alone (clean room: no code of the reference hub, oracle or validator).

:class:`Options` holds one switch per question the sources leave open (facts §8 and the
behaviour-decisions table, docs/decisions.md); every default is this implementation's own
choice. :class:`Registry` validates a bulk body and applies it; the HTTP layer lives in
``server.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

API_VERSION = "2021-04-12"
# api-versions the SDKs have used on this route (facts §1.3); others are unknown to a hub.
KNOWN_API_VERSIONS = ("2021-04-12", "2020-09-30", "2020-06-30-preview", "2020-05-31-preview",
                      "2020-03-13", "2020-03-01", "2019-10-01", "2019-03-30", "2018-06-30")
MODES = ("create", "update", "updateIfMatchETag", "delete", "deleteIfMatchETag", "updateTwin",
         "updateTwinIfMatchETag")
EXTRA_MODES = ("createOrUpdate", "createOrUpdateIfMatchETag")
ID_RE = re.compile(r"[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}")
THUMB_RE = re.compile(r"(?:[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})")
# facts §3.3 (first three digits = HTTP status); EtagDoesNotMatch's number is not in the sources
NUMBERS = {
    "GenericBadRequest": 400000, "InvalidProtocolVersion": 400001, "InvalidOperation": 400003,
    "ArgumentInvalid": 400004, "ArgumentNull": 400005, "IotHubFormatError": 400006,
    "DeviceDefinedMultipleTimes": 400011, "DeserializationError": 400012,
    "BulkRegistryOperationFailure": 400013, "IotHubUnauthorizedAccess": 401002,
    "GenericNotFound": 404000, "DeviceNotFound": 404001, "ModuleNotFound": 404010,
    "GenericMethodNotAllowed": 405000, "DeviceAlreadyExists": 409001,
    "ModuleAlreadyExistsOnDevice": 409301, "PreconditionFailed": 412001,
    "EtagDoesNotMatch": 412002, "TooManyDevices": 413002, "ThrottlingException": 429001,
}
ZERO_TIME = "0001-01-01T00:00:00Z"
INT_MIN, INT_MAX = -(2**52), 2**52 - 1


@dataclass(frozen=True)
class Options:
    """One switch per legitimate alternative; defaults are this implementation's choices."""

    omitted_mode: Literal["createOrUpdate", "create", "entry-error", "request-error"] = \
        "createOrUpdate"
    create_or_update: Literal["import", "reject-request", "reject-entry"] = "import"
    error_format: Literal["A", "B"] = "A"
    entry_codes: Literal["names", "numbers"] = "names"
    etag_mismatch: Literal["PreconditionFailed", "EtagDoesNotMatch"] = "PreconditionFailed"
    invalid_entries: Literal["request", "entry"] = "request"
    unset: Literal["absent", "null", "empty"] = "absent"
    extra_members: bool = False  # modelId, x-extra in reads and results
    older_api: Literal["accept", "refuse"] = "accept"
    status_reason_limit: bool = True
    module_parent: Literal["required", "not-required"] = "required"
    # "twinless": a DeviceRegisteredWithoutTwin warning for each create without twin data
    warnings: Literal["empty", "absent", "twinless"] = "empty"
    update_keys: Literal["regenerate", "keep"] = "regenerate"
    failure_status: Literal[400, 200] = 400
    error_header: Literal["iothub-errorcode", "IotHubErrorCode", "none"] = "iothub-errorcode"
    request_codes: Literal["usual", "alternative"] = "usual"
    twin_string_unit: Literal["bytes", "chars"] = "bytes"
    twin_nulls: Literal["drop", "keep"] = "drop"
    member_casing: Literal["exact", "insensitive"] = "exact"
    twin_metadata: bool = True  # $metadata / $version in desired and reported
    empty_body: Literal["reject", "accept"] = "reject"
    bom: Literal["reject", "accept"] = "reject"
    duplicate_keys: Literal["reject", "last-wins"] = "reject"
    twin_etag_on_update_if_match: bool = False
    too_many_status: Literal[413, 400, 403] = 413
    duplicates: Literal["request", "entry"] = "request"
    throttle_every: int = 0  # every Nth request answers 429 ThrottlingException, no Retry-After
    operation_text: Literal["mode", "dotnet"] = "mode"  # "create" or "Create"
    missing_etag_first: bool = False  # IfMatch entry without its etag: 412 before 404
    enum_case: Literal["insensitive", "exact"] = "insensitive"
    special_chars: Literal["accept", "reject"] = "accept"  # '+', '#', ';' in ids
    unknown_members: Literal["ignore", "reject"] = "ignore"
    # $metadata / $version at the root of desired/reported: service-maintained, so ignored;
    # "checked" still reads them as TwinCollection would (object, integer), "ignored" never looks
    metadata_types: Literal["checked", "ignored"] = "checked"
    update_clears_twin: bool = False  # update without tags/desired empties them (full replace)
    update_twin_clears: bool = False  # updateTwin without tags (or desired) empties them
    twin_bumps_device_etag: bool = False  # a twin change also gives the device a new etag
    status_reason_unit: Literal["codepoints", "utf16"] = "codepoints"  # .NET string.Length
    twin_size_unit: Literal["chars", "bytes"] = "chars"  # section sizes (8 KB, 32 KB)
    keep_alive: bool = True  # False: "Connection: close" on every answer (a gateway may do so)
    api_version_first: bool = False  # check api-version before the SAS token
    error_order: Literal["entries", "reversed"] = "entries"  # order of the result's errors
    # "observed": .NET DateTime text as in facts §5 samples: 0001-01-01T00:00:00 (no offset) for
    # never-connected devices and 7 fractional digits elsewhere
    timestamps: Literal["utc", "observed"] = "utc"
    # planted defects (not alternatives): "ignore-etag", "accept-101", "delete-noop"
    defect: str | None = None


class RequestError(Exception):
    """A request-level rejection: the generic error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class EntryError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


# --- JSON --------------------------------------------------------------------------------------


def parse_body(data: bytes, opts: Options) -> Any:
    """RFC 8259 JSON, strictly (IotHubFormatError for anything else)."""
    if data.startswith(b"\xef\xbb\xbf") and opts.bom == "accept":
        data = data[3:]

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if opts.duplicate_keys == "reject" and len({k for k, _ in items}) != len(items):
            raise ValueError("an object names a member twice")
        return dict(items)

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def number(text: str) -> float:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise ValueError("number out of range")
        return value

    def integer(text: str) -> int:
        if len(text) > 310:
            raise ValueError("number out of range")
        return int(text)

    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant,
                           parse_float=number, parse_int=integer)
        _encodable(value)
    except (ValueError, RecursionError, UnicodeError) as exc:
        raise RequestError(400, "IotHubFormatError", f"Invalid JSON: {type(exc).__name__}") \
            from None
    return value


def _encodable(value: Any) -> None:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            node.encode("utf-8")  # lone surrogates raise
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# --- helpers -----------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _api_date(version: str) -> str:
    return version[:10]


def _canonical(value: str, allowed: tuple[str, ...], exact: bool = False) -> str | None:
    for name in allowed:
        if name == value or (not exact and name.lower() == value.lower()):
            return name  # .NET enum parsing ignores case (facts §3.2)
    return None


class _Etags:
    def __init__(self) -> None:
        self.counter = secrets.randbelow(10**8) + 10**8
        self.ticks = 638_000_000_000_000_000 + secrets.randbelow(10**15)

    def device(self) -> str:
        self.counter += 1
        return base64.b64encode(str(self.counter).encode()).decode()

    def twin(self) -> str:
        self.counter += 1
        return base64.b64encode(self.counter.to_bytes(8, "big")).decode()

    def generation(self) -> str:
        self.ticks += 1 + secrets.randbelow(1000)
        return str(self.ticks)


# --- twin rules (facts §2.7) -------------------------------------------------------------------


def _bad_key_char(key: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in ".$ " for c in key)


class TwinChecker:
    def __init__(self, opts: Options, api: str) -> None:
        self.opts, self.arrays = opts, _api_date(api) >= "2019-10-01"

    def section(self, value: Any, where: str, limit: int, root_meta: bool) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise EntryError("DeserializationError", f"'{where}' must be a JSON object")
        meta = {k: v for k, v in value.items() if root_meta and k in ("$metadata", "$version")}
        typed = (meta.get("$metadata") is None or isinstance(meta["$metadata"], dict)) and (
            meta.get("$version") is None or type(meta["$version"]) is int)
        if self.opts.metadata_types == "checked" and not typed:
            raise EntryError("DeserializationError", f"Error converting '{where}' metadata")
        body = {k: v for k, v in value.items() if k not in meta}
        size = self._walk(body, where, 0)
        if size > limit:
            raise EntryError("ArgumentInvalid", f"'{where}' is {size} bytes; at most {limit}")
        stripped: dict[str, Any] = self._strip(body)
        return stripped

    def _walk(self, node: Any, where: str, depth: int) -> int:
        if isinstance(node, dict):
            if depth > 10:
                raise EntryError("ArgumentInvalid", f"'{where}' nests deeper than 10")
            size = 0
            for key, value in node.items():
                if not key or _bad_key_char(key):
                    raise EntryError("ArgumentInvalid", f"invalid twin key in '{where}'")
                if len(key.encode()) > 1024:
                    raise EntryError("ArgumentInvalid", f"a key in '{where}' exceeds 1KB")
                size += self._size(key) + self._walk(value, where, depth + 1)
            return size
        if isinstance(node, list):
            if not self.arrays:
                raise EntryError("ArgumentInvalid", "Provided json is not a valid 'tags' or "
                                 "'properties' object: arrays are not supported.")
            if depth > 10:
                raise EntryError("ArgumentInvalid", f"'{where}' nests deeper than 10")
            if any(item is None for item in node):
                raise EntryError("ArgumentInvalid", f"an array in '{where}' holds null")
            return sum(self._walk(item, where, depth + 1) for item in node)
        if isinstance(node, bool):
            return 4
        if isinstance(node, int):
            if not INT_MIN <= node <= INT_MAX:
                raise EntryError("ArgumentInvalid", f"an integer in '{where}' is out of range")
            return 8
        if isinstance(node, float):
            return 8
        if isinstance(node, str):
            length = len(node) if self.opts.twin_string_unit == "chars" else len(node.encode())
            if length > 4096:
                raise EntryError("ArgumentInvalid", f"a string in '{where}' exceeds 4KB")
            return self._size(node)
        return 0  # null

    def _size(self, text: str) -> int:
        """A key's or string's share of a section's size (DOC-TW: 'UTF-8 chars' excluding C0/C1:
        characters, or, switched, their UTF-8 bytes)."""
        visible = "".join(c for c in text if not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F))
        return len(visible.encode()) if self.opts.twin_size_unit == "bytes" else len(visible)

    def _strip(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: self._strip(v) for k, v in node.items()
                    if not (v is None and self.opts.twin_nulls == "drop")}
        if isinstance(node, list):
            return [self._strip(v) for v in node]
        return node


# --- entry parsing -----------------------------------------------------------------------------

ENTRY_MEMBERS = ("id", "moduleId", "eTag", "importMode", "status", "statusReason",
                 "authentication", "twinETag", "tags", "properties", "capabilities",
                 "deviceScope", "parentScopes")
AUTH_MEMBERS = ("symmetricKey", "x509Thumbprint", "type", "primaryKey", "secondaryKey",
                "primaryThumbprint", "secondaryThumbprint", "iotEdge", "desired", "reported")


def _members(obj: dict[str, Any], names: tuple[str, ...], opts: Options) -> dict[str, Any]:
    if opts.member_casing == "exact":
        return obj
    lower = {n.lower(): n for n in names}
    return {lower.get(k.lower(), k): v for k, v in obj.items()}


def _opt(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise EntryError("DeserializationError", f"Error converting value for '{where}{name}'")
    return value


def _obj(obj: dict[str, Any], name: str, opts: Options) -> dict[str, Any]:
    value = _opt(obj, name, dict, "")
    return _members(value, AUTH_MEMBERS, opts) if value else {}


@dataclass
class Entry:
    id: str
    module_id: str | None
    mode: str
    raw: dict[str, Any]
    auth: dict[str, Any] | None = None  # type, keys, thumbprints (None = not given)
    twin: dict[str, Any] = field(default_factory=dict)  # tags, desired, reported if given


def parse_entry(raw: Any, opts: Options, api: str) -> Entry:
    """Validate one entry; raises EntryError (code, text)."""
    if not isinstance(raw, dict):
        raise EntryError("DeserializationError", "an entry must be a JSON object")
    e = _members(raw, ENTRY_MEMBERS, opts)
    device_id = _opt(e, "id", str, "")
    if device_id is None:
        raise EntryError("ArgumentNull", "Value cannot be null. Parameter name: id")
    module_id = _opt(e, "moduleId", str, "")
    for name, value in (("device", device_id), ("module", module_id)):
        if (value is not None and not ID_RE.fullmatch(value)) or (
                opts.special_chars == "reject" and set(value or "") & set("+#;")):
            raise EntryError("ArgumentInvalid", f"The {name} id is invalid")
    if opts.unknown_members == "reject" and set(e) - set(ENTRY_MEMBERS):
        raise EntryError("DeserializationError", "Could not find member "
                         f"'{sorted(set(e) - set(ENTRY_MEMBERS))[0]}' on ExportImportDevice")
    for name in ("eTag", "twinETag", "statusReason", "deviceScope"):
        _opt(e, name, str, "")
    mode = _import_mode(e, opts)
    status = _opt(e, "status", str, "")
    exact = opts.enum_case == "exact"
    if status is not None and _canonical(status, ("enabled", "disabled"), exact) is None:
        raise EntryError("DeserializationError", f"Error converting value {status!r} to status")
    reason = e.get("statusReason")
    length = None if reason is None else (
        len(reason.encode("utf-16-le")) // 2 if opts.status_reason_unit == "utf16" else len(reason))
    if opts.status_reason_limit and length is not None and length > 128:
        raise EntryError("ArgumentInvalid", "statusReason is longer than 128 characters")
    scopes = _opt(e, "parentScopes", list, "")
    if scopes is not None:
        if not all(isinstance(s, str) for s in scopes):
            raise EntryError("DeserializationError", "parentScopes holds a non-string")
        if len(scopes) > 1:
            raise EntryError("ArgumentInvalid", "parentScopes can only have 1 element")
    caps = _obj(e, "capabilities", opts)
    _opt(caps, "iotEdge", bool, "capabilities.")
    entry = Entry(device_id, module_id, mode, e)
    entry.auth = _auth(e, opts)
    checker = TwinChecker(opts, api)
    if e.get("tags") is not None:
        entry.twin["tags"] = checker.section(e["tags"], "tags", 8 * 1024, False)
    props = _obj(e, "properties", opts)
    for name in ("desired", "reported"):
        if props.get(name) is not None:
            entry.twin[name] = checker.section(props[name], f"properties.{name}", 32 * 1024,
                                               True)
    return entry


def _import_mode(e: dict[str, Any], opts: Options) -> str:
    mode = _opt(e, "importMode", str, "")
    if mode is None:
        if opts.omitted_mode in ("entry-error", "request-error"):
            raise EntryError("ArgumentNull", "importMode is required")
        return opts.omitted_mode
    canonical = _canonical(mode, MODES + EXTRA_MODES, opts.enum_case == "exact")
    if canonical is None or (canonical in EXTRA_MODES and opts.create_or_update != "import"):
        raise EntryError("DeserializationError", f"Error converting value {mode!r} to ImportMode")
    return canonical


def _auth(e: dict[str, Any], opts: Options) -> dict[str, Any] | None:
    auth = _obj(e, "authentication", opts)
    if not e.get("authentication"):
        return None
    keys = _obj(auth, "symmetricKey", opts)
    thumbs = _obj(auth, "x509Thumbprint", opts)
    pk, sk = (_opt(keys, n, str, "symmetricKey.") or None for n in ("primaryKey", "secondaryKey"))
    pt, st = (_opt(thumbs, n, str, "x509Thumbprint.") or None
              for n in ("primaryThumbprint", "secondaryThumbprint"))
    given = _opt(auth, "type", str, "authentication.")
    kind = None if given is None else _canonical(
        given, ("sas", "selfSigned", "certificateAuthority", "none"), opts.enum_case == "exact")
    if given is not None and kind is None:
        raise EntryError("DeserializationError", f"Error converting value {given!r} to type")
    if kind is None:
        kind = "selfSigned" if (pt or st) and not (pk or sk) else "sas"
    if (pk is None) != (sk is None):
        raise EntryError("ArgumentInvalid", "Both primary and secondary keys must be specified")
    for key in (pk, sk):
        if key is not None:
            try:
                size = len(base64.b64decode(key, validate=True))
            except (binascii.Error, ValueError):
                size = 0
            if not 16 <= size <= 64:
                raise EntryError("ArgumentInvalid", "A device key must be base64 of 16-64 bytes")
    for thumb in (pt, st):
        if thumb is not None and not THUMB_RE.fullmatch(thumb):
            raise EntryError("ArgumentInvalid", "A thumbprint must be 40 or 64 hex digits")
    if pt and st and len(pt) != len(st):
        raise EntryError("ArgumentInvalid", "Thumbprint sizes must match")
    if (pk or sk) and (pt or st):
        raise EntryError("ArgumentInvalid", "cannot specify both symmetric keys and thumbprints")
    material = {"sas": not (pt or st), "selfSigned": bool(pt or st) and not (pk or sk)}.get(
        kind, not (pk or sk or pt or st))
    if not material:
        raise EntryError("ArgumentInvalid", f"authentication type {kind} does not match its keys")
    return {"type": kind, "primaryKey": pk, "secondaryKey": sk, "primaryThumbprint": pt,
            "secondaryThumbprint": st}


# --- the registry ------------------------------------------------------------------------------


@dataclass
class Identity:
    device_id: str
    module_id: str | None
    generation_id: str
    etag: str
    status: str = "enabled"
    status_reason: str | None = None
    status_updated: str = ZERO_TIME
    auth: dict[str, Any] = field(default_factory=dict)
    iot_edge: bool = False
    device_scope: str | None = None
    parent_scopes: list[str] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)
    desired: dict[str, Any] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    twin_etag: str = ""
    version: int = 1
    desired_version: int = 1
    reported_version: int = 1
    updated: str = field(default_factory=now_iso)


class Registry:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.etags = _Etags()
        self.items: dict[tuple[str, str | None], Identity] = {}
        self.warnings: list[dict[str, Any]] = []  # of the bulk call in progress

    # -- the bulk call --------------------------------------------------------------------------

    def bulk(self, body: Any, api: str) -> tuple[int, dict[str, Any]]:
        """Apply a parsed bulk body: (status, BulkRegistryOperationResult) or RequestError."""
        opts = self.opts
        alt = opts.request_codes == "alternative"
        if not isinstance(body, list):
            raise RequestError(400, "ArgumentInvalid" if alt else "IotHubFormatError",
                               "The request body must be a JSON array of devices")
        limit = 101 if opts.defect == "accept-101" else 100
        if len(body) > limit:
            raise RequestError(opts.too_many_status, "TooManyDevices",
                               "Too many devices were included in the bulk operation")
        if opts.defect == "accept-101":
            body = body[:100]
        if not body and opts.empty_body == "reject":
            raise RequestError(400, "ArgumentInvalid" if not alt else "ArgumentNull",
                               "The device list is empty")
        body = [_members(r, ENTRY_MEMBERS, opts) if isinstance(r, dict) else r for r in body]
        ids = [r.get("id") if isinstance(r, dict) else None for r in body]
        twice = {i for i in ids if isinstance(i, str) and ids.count(i) > 1}
        if twice and opts.duplicates == "request":
            first = next(i for i in ids if i in twice)
            raise RequestError(400, "DeviceDefinedMultipleTimes",
                               f"DeviceDefinedMultipleTimes, device ID {first}")
        parsed: list[Entry | tuple[Any, EntryError]] = []
        for raw in body:
            try:
                if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"] in twice:
                    raise EntryError("DeviceDefinedMultipleTimes",
                                     f"DeviceDefinedMultipleTimes, device ID {raw['id']}")
                parsed.append(parse_entry(raw, opts, api))
            except EntryError as exc:
                if self._request_scope(raw, exc):
                    code = "ArgumentInvalid" if alt and exc.code != "ArgumentInvalid" \
                        else exc.code
                    raise RequestError(400, code, exc.message) from None
                parsed.append((raw, exc))
        errors = []
        self.warnings = []
        for item in parsed:
            if isinstance(item, Entry):
                failure = self._apply(item)
                if failure:
                    errors.append(self._error(item.id, item.module_id, item.mode, failure))
            else:
                raw, invalid = item
                mode = raw.get("importMode")
                errors.append(self._error(raw["id"], raw.get("moduleId"),
                                          mode if isinstance(mode, str) else None, invalid))
        if opts.error_order == "reversed":
            errors.reverse()
        result: dict[str, Any] = {"isSuccessful": not errors, "errors": errors}
        if opts.warnings != "absent":
            result["warnings"] = self.warnings
        if opts.extra_members:
            result["x-extra"] = "ignored by clients"
        return (200 if not errors else opts.failure_status), result

    def _request_scope(self, raw: Any, exc: EntryError) -> bool:
        """Whether an invalid entry rejects the whole call (else only the entry fails)."""
        if not (isinstance(raw, dict) and isinstance(raw.get("id"), str)
                and ID_RE.fullmatch(raw["id"])):
            return True
        if exc.code == "DeviceDefinedMultipleTimes":
            return False
        if exc.code == "ArgumentNull" and "importMode" in exc.message:
            return self.opts.omitted_mode == "request-error"
        if exc.message.endswith("to ImportMode") and _canonical(
                str(raw.get("importMode")), EXTRA_MODES):
            return self.opts.create_or_update == "reject-request"
        return self.opts.invalid_entries == "request"

    def _error(self, device_id: str, module_id: Any, mode: str | None,
               exc: EntryError) -> dict[str, Any]:
        code: str | int = exc.code
        if self.opts.entry_codes == "numbers":
            code = NUMBERS[exc.code]
        if mode and self.opts.operation_text == "dotnet":
            mode = mode[0].upper() + mode[1:]
        error: dict[str, Any] = {"deviceId": device_id, "errorCode": code,
                                 "errorStatus": exc.message, "operation": mode}
        if isinstance(module_id, str):
            error["moduleId"] = module_id
        return error

    # -- per-entry semantics (facts §3.2) -------------------------------------------------------

    def _mismatch(self, what: str) -> EntryError:
        return EntryError(self.opts.etag_mismatch, f"{what} ETag does not match")

    def _apply(self, entry: Entry) -> EntryError | None:
        key = (entry.id, entry.module_id)
        current = self.items.get(key)
        mode = entry.mode
        if entry.module_id is not None and self.opts.module_parent == "required" \
                and (entry.id, None) not in self.items:
            return EntryError("DeviceNotFound", f"Device {entry.id} is not registered")
        absent = EntryError("ModuleNotFound" if entry.module_id else "DeviceNotFound",
                            f"{entry.id} {entry.module_id or ''} is not registered".strip())
        if mode.startswith("createOrUpdate"):
            mode = "create" if current is None else mode.replace("createOrUpdate", "update")
        if mode == "create":
            if current is not None:
                return EntryError("ModuleAlreadyExistsOnDevice" if entry.module_id
                                  else "DeviceAlreadyExists",
                                  f"A device with ID '{entry.id}' is already registered.")
            self._create(entry)
            if self.opts.warnings == "twinless" and not entry.twin:
                self.warnings.append({"deviceId": entry.id,
                                      "warningCode": "DeviceRegisteredWithoutTwin",
                                      "warningStatus": "The device was registered without a twin"})
            return None
        etag = _unquote(entry.raw.get("eTag"))
        twin_etag = _unquote(entry.raw.get("twinETag"))
        if self.opts.missing_etag_first and (
                (mode in ("updateIfMatchETag", "deleteIfMatchETag") and etag is None)
                or (mode == "updateTwinIfMatchETag" and twin_etag is None)):
            return self._mismatch("The")
        if current is None:
            return absent
        if self.opts.defect != "ignore-etag":
            if mode in ("updateIfMatchETag", "deleteIfMatchETag") and etag != current.etag:
                return self._mismatch("Device")
            if mode == "updateTwinIfMatchETag" and twin_etag != current.twin_etag:
                return self._mismatch("Twin")
            if mode == "updateIfMatchETag" and self.opts.twin_etag_on_update_if_match \
                    and twin_etag is not None and twin_etag != current.twin_etag:
                return self._mismatch("Twin")
        if mode.startswith("delete"):
            if self.opts.defect != "delete-noop":
                self._delete(key)
        elif mode.startswith("updateTwin"):
            if self.opts.update_twin_clears:  # "overwritten with the provided input data"
                entry.twin = {"tags": {}, "desired": {}, **entry.twin}
            self._set_twin(current, entry, ("tags", "desired"))
        else:
            self._update(current, entry)
        return None

    def _delete(self, key: tuple[str, str | None]) -> None:
        del self.items[key]
        if key[1] is None:
            for other in [k for k in self.items if k[0] == key[0]]:
                del self.items[other]

    def _create(self, entry: Entry) -> None:
        item = Identity(entry.id, entry.module_id, self.etags.generation(), self.etags.device())
        item.twin_etag = self.etags.twin()
        self._identity(item, entry, new=True)
        self._set_twin(item, entry, ("tags", "desired", "reported"), bump=False)
        self.items[(entry.id, entry.module_id)] = item

    def _update(self, item: Identity, entry: Entry) -> None:
        self._identity(item, entry, new=False)
        item.etag = self.etags.device()
        if self.opts.update_clears_twin:  # "overwritten with the provided input data"
            entry.twin = {"tags": {}, "desired": {}, **entry.twin}
        self._set_twin(item, entry, ("tags", "desired", "reported"))

    def _identity(self, item: Identity, entry: Entry, *, new: bool) -> None:
        e = entry.raw
        status = _canonical(e.get("status") or "enabled", ("enabled", "disabled")) or "enabled"
        if new or status != item.status or e.get("statusReason") != item.status_reason:
            item.status_updated = now_iso()
        item.status, item.status_reason = status, e.get("statusReason")
        auth = entry.auth
        if auth is None and not new and self.opts.update_keys == "keep":
            auth = item.auth
        elif auth is None:
            auth = {"type": "sas", "primaryKey": None, "secondaryKey": None,
                    "primaryThumbprint": None, "secondaryThumbprint": None}
        auth = dict(auth)
        if auth["type"] == "sas" and auth["primaryKey"] is None:
            auth["primaryKey"], auth["secondaryKey"] = new_key(), new_key()
        item.auth = auth
        caps = _members(e.get("capabilities") or {}, AUTH_MEMBERS, self.opts)
        item.iot_edge = bool(caps.get("iotEdge"))
        scope = e.get("deviceScope")
        if item.iot_edge:  # generated and immutable for edge devices (facts §2.6)
            if not (item.device_scope or "").startswith("ms-azure-iot-edge://"):
                item.device_scope = f"ms-azure-iot-edge://{item.device_id}-{item.generation_id}"
        else:
            item.device_scope = scope or None
        scopes = e.get("parentScopes")
        item.parent_scopes = list(scopes) if scopes else (
            [scope] if scope and not item.iot_edge else [])

    def _set_twin(self, item: Identity, entry: Entry, sections: tuple[str, ...],
                  bump: bool = True) -> None:
        changed = False
        for name in sections:
            if name in entry.twin:
                setattr(item, name, entry.twin[name])
                changed = True
                if bump and name != "tags":
                    setattr(item, f"{name}_version", getattr(item, f"{name}_version") + 1)
        if changed and bump:
            if self.opts.twin_bumps_device_etag:
                item.etag = self.etags.device()
            item.version += 1
            item.twin_etag = self.etags.twin()
            item.updated = now_iso()

    # -- reads ----------------------------------------------------------------------------------

    def _unset(self, doc: dict[str, Any], name: str, value: Any, empty: Any) -> None:
        if value not in (None, [], {}):
            doc[name] = value
        elif self.opts.unset == "null":
            doc[name] = None if name not in ("parentScopes", "tags") else empty
        elif self.opts.unset == "empty":
            doc[name] = empty

    def device_doc(self, item: Identity, api: str) -> dict[str, Any]:
        a = item.auth
        doc: dict[str, Any] = {"deviceId": item.device_id}
        if item.module_id is not None:
            doc["moduleId"] = item.module_id
        doc.update({
            "generationId": item.generation_id, "etag": item.etag,
            "connectionState": "Disconnected", "status": item.status})
        self._unset(doc, "statusReason", item.status_reason, "")
        doc.update({
            "connectionStateUpdatedTime": self._time(ZERO_TIME),
            "statusUpdatedTime": self._time(item.status_updated),
            "lastActivityTime": self._time(ZERO_TIME), "cloudToDeviceMessageCount": 0,
            "authentication": {
                "symmetricKey": {"primaryKey": a["primaryKey"], "secondaryKey": a["secondaryKey"]},
                "x509Thumbprint": {"primaryThumbprint": a["primaryThumbprint"],
                                   "secondaryThumbprint": a["secondaryThumbprint"]},
                "type": a["type"]},
            "capabilities": {"iotEdge": item.iot_edge}})
        self._unset(doc, "deviceScope", item.device_scope, "")
        if _api_date(api) >= "2020-09-30":
            self._unset(doc, "parentScopes", item.parent_scopes, [])
        if self.opts.extra_members:
            doc["modelId"], doc["x-extra"] = "", {"note": "a member clients must ignore"}
        return doc

    def twin_doc(self, item: Identity, api: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"deviceId": item.device_id}
        if item.module_id is not None:
            doc["moduleId"] = item.module_id
        if self.opts.extra_members:
            doc["modelId"] = ""
        doc.update({"etag": item.twin_etag, "deviceEtag": item.etag, "status": item.status})
        self._unset(doc, "statusReason", item.status_reason, "")
        doc.update({"statusUpdateTime": self._time(item.status_updated),
                    "connectionState": "Disconnected",
                    "lastActivityTime": self._time(ZERO_TIME), "cloudToDeviceMessageCount": 0,
                    "authenticationType": item.auth["type"],
                    "x509Thumbprint": {"primaryThumbprint": item.auth["primaryThumbprint"],
                                       "secondaryThumbprint": item.auth["secondaryThumbprint"]},
                    "version": item.version})
        self._unset(doc, "tags", item.tags, {})
        doc["properties"] = {"desired": self._section(item.desired, item.desired_version,
                                                      item.updated),
                             "reported": self._section(item.reported, item.reported_version,
                                                       item.updated)}
        doc["capabilities"] = {"iotEdge": item.iot_edge}
        self._unset(doc, "deviceScope", item.device_scope, "")
        if _api_date(api) >= "2020-09-30":
            self._unset(doc, "parentScopes", item.parent_scopes, [])
        return doc

    def _time(self, stamp: str) -> str:
        if self.opts.timestamps == "utc":
            return stamp
        if stamp == ZERO_TIME:
            return "0001-01-01T00:00:00"
        return stamp[:-1] + "0Z"  # 6 -> 7 fractional digits, as .NET's round-trip format

    def _section(self, values: dict[str, Any], version: int, updated: str) -> dict[str, Any]:
        if not self.opts.twin_metadata:
            return dict(values)
        return {**values, "$metadata": {"$lastUpdated": updated}, "$version": version}


def _unquote(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def tracking_id() -> str:
    return secrets.token_hex(16).upper()


def error_body(code: str, message: str, opts: Options) -> dict[str, Any]:
    """The generic IoT Hub error body, format A or B (facts §3.4)."""
    if opts.error_format == "B":
        inner = {"errorCode": NUMBERS.get(code, 400000), "trackingId": tracking_id(),
                 "message": message, "timestampUtc": now_iso()}
        return {"Message": json.dumps(inner), "ExceptionMessage": ""}
    stamp = time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime())
    return {"Message": f"ErrorCode:{code};{message}",
            "ExceptionMessage": f"Tracking ID:{tracking_id()}-G:0-TimeStamp:{stamp}"}
