"""The behaviour-decisions table as endpoints: one variant of the reference hub per alternative a
row accepts (an ``open`` row) or reports as its deviation (an ``observed``/``inferred`` row).

Each variant is the faithful reference hub behind a WSGI middleware that makes that one other
choice (:class:`Variant`); variants nest, so combinable choices run together. A variant counts
the answers it changed (``changed``): a run that never met the choice proves nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from werkzeug.wrappers import Request, Response

import bulkreg_schema
from bulkreg_conformance.answers import NUMERIC_CODES
from bulkreg_conformance.hub.app import Hub
from bulkreg_conformance.oracle import API_VERSIONS
from bulkreg_conformance.sas import SasError, verify_token
from bulkreg_validator import RULES, validate

from .conftest import call_hub

Json = Any
App = Callable[..., Any]
NUMBERS = {name: number for number, name in NUMERIC_CODES.items()}
_CONTRACT = bulkreg_schema.contract()
_KNOWN = set(bulkreg_schema.load("ExportImportDevice")["properties"])
_KNOWN_LOWER = {k.lower(): k for k in _KNOWN}


def error(status: int, code: str, text: str) -> tuple[int, dict[str, str], Json]:
    return status, {"iothub-errorcode": code}, {"Message": f"ErrorCode:{code};{text}",
                                                "ExceptionMessage": "Tracking ID:0-G:0"}


class Variant:
    """``app`` (the hub, or another variant around it) with one other legitimate choice.

    ``before(variant, request, body, extra)`` sees a bulk call: it may answer in the hub's place
    (a ``(status, headers, body)`` tuple), return a rewritten body, or add errors to ``extra``
    for entries it removed; ``after(variant, request, status, headers, body)`` may rewrite any
    JSON answer; ``first(variant, request)`` may answer any request before the hub sees it.
    """

    def __init__(self, app: App, hub: Hub, *, before: Callable[..., Any] | None = None,
                 after: Callable[..., Any] | None = None,
                 first: Callable[..., Any] | None = None) -> None:
        self.app, self.hub = app, hub
        self.before, self.after, self.first = before, after, first
        self.changed = 0
        self.state: dict[str, Any] = {}
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        data = req.get_data()  # always read all of it: unread bytes would poison keep-alive
        if self.first is not None:
            answer = self.first(self, req)
            if answer is not None:
                self.changed += 1
                return _respond(answer, environ, start_response)
        extra: list[Json] = []
        if self.before and req.method == "POST" and req.path.rstrip("/") == "/devices" and \
                self._may_write(req):
            answer = self.before(self, req, _strict(data), extra)
            if isinstance(answer, tuple):
                self.changed += 1
                return _respond(answer, environ, start_response)
            if answer is not None:
                self.changed += 1
                data = json.dumps(answer).encode()
        status_line, headers, chunks = call_hub(self.app, environ, data)
        status = int(status_line.split()[0])
        if not (extra or self.after) or not chunks.lstrip().startswith((b"{", b"[")):
            start_response(status_line, headers)
            return [chunks]
        out = json.loads(chunks)
        if extra and isinstance(out, dict) and "isSuccessful" in out:
            out = {**out, "isSuccessful": False, "errors": [*out["errors"], *extra]}
            status = 400
        kept = {k: v for k, v in headers if k.lower() not in {"content-length", "content-type"}}
        if self.after:
            before = json.dumps([status, kept, out], sort_keys=True)
            status, kept, out = self.after(self, req, status, kept, out)
            if json.dumps([status, kept, out], sort_keys=True) != before:
                self.changed += 1
        return Response(json.dumps(out), status=status, headers=kept,
                        content_type="application/json")(environ, start_response)


    def _may_write(self, req: Request) -> bool:
        """Whether the hub would let this request write: a variant's choice about the body
        comes after the token and the api-version, as every choice of the table does."""
        version = parse_qs(req.query_string.decode()).get("api-version")
        if version is None or len(version) != 1 or version[0] not in API_VERSIONS:
            return False
        try:
            policy = verify_token(req.headers.get("Authorization") or "",
                                  policies=self.hub.policies, host=self.hub.host_name,
                                  path=req.path, now=time.time())
        except SasError:
            return False
        return "RegistryReadWrite" in policy.permissions


def _strict(data: bytes) -> Json:
    """The body, parsed as strictly as the hub parses it (None for a text the hub refuses as
    JSON: a variant leaves such bodies alone, as rewriting one would repair it)."""
    try:
        value = orjson.loads(data)
        json.loads(data, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        return None
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("duplicate member")
    return dict(pairs)


def _respond(answer: tuple[int, dict[str, str], Json], environ: dict[str, Any],
             start_response: Any) -> Any:
    status, headers, out = answer
    return Response(json.dumps(out), status=status, headers=headers,
                    content_type="application/json")(environ, start_response)


def _mode(entry: Json) -> str | None:
    mode = entry.get("importMode") if isinstance(entry, dict) else None
    return _CONTRACT.canonical_mode(mode) if isinstance(entry, dict) else None


def _id(entry: Json) -> str | None:
    value = entry.get("id") if isinstance(entry, dict) else None
    return value if isinstance(value, str) and value else None


def _fail(entry: Json, code: str, text: str = "not supported") -> Json:
    return {"deviceId": _id(entry), "errorCode": code, "errorStatus": text, "moduleId": None,
            "operation": entry.get("importMode") if isinstance(entry, dict) else None}


def entries_where(test: Callable[[Variant, dict[str, Any]], bool], code: str | None = None
                  ) -> Callable[..., Any]:
    """Drop the entries ``test`` picks; fail them with ``code`` (None: report success)."""

    def before(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
        if not isinstance(body, list):
            return None
        kept = []
        for entry in body:
            if isinstance(entry, dict) and test(v, entry):
                if code:
                    extra.append(_fail(entry, code))
                continue
            kept.append(entry)
        if len(kept) == len(body):
            return None
        if not kept:  # nothing left for the hub: answer for the dropped entries alone
            result = {"isSuccessful": not extra, "errors": list(extra), "warnings": []}
            extra.clear()
            return 200 if result["isSuccessful"] else 400, {}, result
        return kept

    return before


def each_entry(fn: Callable[[Variant, dict[str, Any]], dict[str, Any] | None]
               ) -> Callable[..., Any]:
    """Rewrite entries (``fn`` returns the new entry, or None to keep it)."""

    def before(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
        if not isinstance(body, list):
            return None
        out, changed = [], False
        for entry in body:
            new = fn(v, entry) if isinstance(entry, dict) else None
            changed |= new is not None
            out.append(entry if new is None else new)
        return out if changed else None

    return before


def refuse_if(test: Callable[[Json], bool], status: int, code: str) -> Callable[..., Any]:
    """Refuse the whole request when ``test(body)``."""

    def before(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
        return error(status, code, "refused by this endpoint's choice") if test(body) else None

    return before


def _entries(body: Json) -> list[dict[str, Any]]:
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []


# -- the alternatives --------------------------------------------------------------------------

def _twin_etag_checked(v: Variant, entry: dict[str, Any]) -> bool:
    if _mode(entry) != "updateIfMatchETag" or "twinETag" not in entry or not _id(entry):
        return False
    twin = v.hub.registry.twin(entry["id"])
    return twin is not None and entry["twinETag"] != twin["etag"]


def _import_semantics(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    mode = _mode(entry)
    if mode not in {"createOrUpdate", "createOrUpdateIfMatchETag"} or "importMode" not in entry \
            or not _id(entry):
        return None
    exists = v.hub.registry.device(entry["id"], entry.get("moduleId")) is not None
    if not exists:
        return {**entry, "importMode": "create"}
    return {**entry, "importMode": "update" if mode == "createOrUpdate" else "updateIfMatchETag"}


def _noncanonical(body: Json) -> bool:
    for entry in _entries(body):
        for name, choices in (("importMode", _CONTRACT.import_modes),
                              ("status", ("enabled", "disabled"))):
            value = entry.get(name)
            if isinstance(value, str) and value not in choices and \
                    value.lower() in {c.lower() for c in choices}:
                return True
    return False


def _exact_names(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    kept = {k: val for k, val in entry.items() if k in _KNOWN or k.lower() not in _KNOWN_LOWER}
    return kept if len(kept) != len(entry) else None


def _has_unknown(body: Json) -> bool:
    return any(k not in _KNOWN for e in _entries(body) for k in e)


def _invalid_entries_fail(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
    """Fail only the entries the validator rejects (request scope, pointing into an entry, and
    not duplicates or the count): the others are applied. An entry without an id fails with
    ``deviceId: null``."""
    if not isinstance(body, list):
        return None
    report = validate(json.dumps(body).encode())
    bad: dict[int, Any] = {}
    for finding in report.errors:
        parts = finding.pointer.split("/")
        if RULES[finding.rule].scope != "request" or finding.rule in {
                "duplicate-id", "too-many-devices"} or len(parts) < 2 or not parts[1].isdigit():
            return None
        bad.setdefault(int(parts[1]), finding)
    if not bad:
        return None
    for index, finding in sorted(bad.items()):
        extra.append(_fail(body[index], finding.code or "ArgumentInvalid", finding.message))
    kept = [e for n, e in enumerate(body) if n not in bad]
    if not kept:
        result = {"isSuccessful": False, "errors": list(extra), "warnings": []}
        extra.clear()
        return 400, {}, result
    return kept


def _duplicates_fail(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
    ids = [_id(e) for e in _entries(body)]
    repeated = {i for i in ids if i and ids.count(i) > 1}
    if not repeated:
        return None
    return entries_where(lambda v, e: _id(e) in repeated, "DeviceDefinedMultipleTimes")(
        v, req, body, extra)


def _too_many(status: int) -> Callable[..., Any]:
    return refuse_if(lambda b: isinstance(b, list) and len(b) > _CONTRACT.max_entries, status,
                     "TooManyDevices")


def _rewrite_codes(codes: dict[str, str]) -> Callable[..., Any]:
    def after(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
        message = body.get("Message") if isinstance(body, dict) else None
        if isinstance(message, str) and message.startswith("ErrorCode:"):
            name, _, text = message[len("ErrorCode:"):].partition(";")
            if name in codes:
                body = {**body, "Message": f"ErrorCode:{codes[name]};{text}"}
                headers = {**{k: val for k, val in headers.items()
                              if k.lower() != "iothub-errorcode"},
                           "iothub-errorcode": codes[name]}
        return status, headers, body
    return after


def errors_of(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
    def after(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            body = {**body, "errors": [fn(e) if isinstance(e, dict) else e
                                       for e in body["errors"]]}
        return status, headers, body
    return after


def _format_b(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    message = body.get("Message") if isinstance(body, dict) else None
    if not (isinstance(message, str) and message.startswith("ErrorCode:")):
        return status, headers, body
    name, _, text = message[len("ErrorCode:"):].partition(";")
    inner = {"errorCode": NUMBERS.get(name, 400000), "trackingId": "0" * 32, "message": text,
             "timestampUtc": "2025-01-08T19:28:00.672603626Z"}
    return status, headers, {"Message": json.dumps(inner), "ExceptionMessage": ""}


def _headers(rename: str | None) -> Callable[..., Any]:
    def after(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
        names = {"iothub-errorcode", "iothuberrorcode"}
        found = next((val for k, val in headers.items() if k.lower() in names), None)
        kept = {k: val for k, val in headers.items() if k.lower() not in names}
        if rename and found:
            kept[rename] = found
        return status, kept, body
    return after


def _long_status_reason(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    limit = _CONTRACT.status_reason_max_length
    reason = entry.get("statusReason")
    if isinstance(reason, str) and len(reason) > limit:
        return {**entry, "statusReason": reason[:limit]}
    return None


def _without_array_nulls(value: Json) -> Json:
    if isinstance(value, dict):
        return {k: _without_array_nulls(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_without_array_nulls(x) for x in value if x is not None]
    return value


def _accept_array_nulls(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    cleaned = {k: _without_array_nulls(x) if k in {"tags", "properties"} else x
               for k, x in entry.items()}
    return cleaned if cleaned != entry else None


def _remember_nulls(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
    for entry in _entries(body):
        props = entry.get("properties")
        sections = {"tags": entry.get("tags"),
                    "desired": props.get("desired") if isinstance(props, dict) else None}
        nulls = {name: [k for k, x in section.items() if x is None]
                 for name, section in sections.items() if isinstance(section, dict)}
        if _id(entry) and any(nulls.values()):
            with v.lock:
                v.state[entry["id"]] = nulls
    return None


def _kept_nulls(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    if req.method == "GET" and req.path.startswith("/twins/") and isinstance(body, dict):
        nulls = v.state.get(str(body.get("deviceId")), {})
        if nulls:
            body = json.loads(json.dumps(body))
            body.setdefault("tags", {}).update(dict.fromkeys(nulls.get("tags", [])))
            body.setdefault("properties", {}).setdefault("desired", {}).update(
                dict.fromkeys(nulls.get("desired", [])))
    return status, headers, body


def _short_keys(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    auth = entry.get("authentication")
    sym = auth.get("symmetricKey") if isinstance(auth, dict) else None
    if not isinstance(sym, dict):
        return None
    low, high = _CONTRACT.key_decoded_bytes
    for key in (sym.get("primaryKey"), sym.get("secondaryKey")):
        try:
            size = len(base64.b64decode(key, validate=True)) if isinstance(key, str) and key \
                else None
        except ValueError:
            return None
        if size is not None and not low <= size <= high:
            return {**entry, "authentication": {k: x for k, x in auth.items()
                                                if k != "symmetricKey"}}
    return None


_UPDATES = {"update", "updateIfMatchETag"}
_DEVICE_MEMBERS = ("status", "statusReason", "capabilities", "deviceScope", "parentScopes",
                   "authentication")


def _keep_device_members(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    if _mode(entry) not in _UPDATES or not _id(entry) or entry.get("moduleId"):
        return None
    current = v.hub.registry.device(entry["id"])
    if current is None:
        return None
    kept = {name: current[name] for name in _DEVICE_MEMBERS
            if name not in entry and current.get(name) is not None}
    return {**entry, **kept} if kept else None


def _clear_twin(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    if _mode(entry) not in _UPDATES or not _id(entry):
        return None
    props = entry.get("properties") if isinstance(entry.get("properties"), dict) else {}
    if "tags" in entry and "desired" in props:
        return None
    return {**entry, "tags": entry.get("tags", {}),
            "properties": {**props, "desired": props.get("desired", {})}}


def _keep_keys(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    if _mode(entry) not in _UPDATES or "authentication" in entry or not _id(entry):
        return None
    current = v.hub.registry.device(entry["id"])
    return {**entry, "authentication": current["authentication"]} if current else None


def _twinless_warnings(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    if req.method != "POST" or not isinstance(body, dict) or "isSuccessful" not in body:
        return status, headers, body
    try:
        sent = json.loads(req.get_data())
    except ValueError:
        return status, headers, body
    failed = {e.get("deviceId") for e in body.get("errors") or [] if isinstance(e, dict)}
    warnings = [{"deviceId": e["id"], "warningCode": "DeviceRegisteredWithoutTwin",
                 "warningStatus": "registered without twin"}
                for e in _entries(sent) if _mode(e) == "create" and _id(e)
                and e["id"] not in failed and "tags" not in e and "properties" not in e]
    return status, headers, {**body, "warnings": warnings} if warnings else body


def _throttle_every(n: int) -> Callable[..., Any]:
    def first(v: Variant, req: Request) -> Any:
        with v.lock:
            v.state["count"] = v.state.get("count", 0) + 1
            if v.state["count"] % n:
                return None
        return error(429, "ThrottlingException", "throttled; no Retry-After")
    return first


def _older_refused(v: Variant, req: Request, body: Json, extra: list[Json]) -> Json:
    if parse_qs(req.query_string.decode()).get("api-version") != [bulkreg_schema.API_VERSION]:
        return error(400, "InvalidProtocolVersion", "BadRequest")
    return None


def _opaque(v: Variant, etag: str) -> str:
    """A stable opaque etag for one of the hub's (and back, from ``v.state``)."""
    with v.lock:
        made = v.state.setdefault("opaque", {})
        if etag not in made:
            made[etag] = 'W/"' + hashlib.sha256(etag.encode()).hexdigest()[:20] + '"'
            v.state.setdefault("real", {})[made[etag]] = etag
        return str(made[etag])


_ETAG_MEMBERS = {"etag", "deviceetag"}


def _opaque_out(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    def walk(value: Json) -> Json:
        if isinstance(value, dict):
            return {k: _opaque(v, x) if k.lower() in _ETAG_MEMBERS and isinstance(x, str)
                    else walk(x) for k, x in value.items()}
        if isinstance(value, list):
            return [walk(x) for x in value]
        return value
    return status, headers, walk(body)


def _opaque_in(v: Variant, entry: dict[str, Any]) -> dict[str, Any] | None:
    real = v.state.get("real", {})
    new = {k: real.get(x, x) if k in {"eTag", "twinETag"} and isinstance(x, str) else x
           for k, x in entry.items()}
    return new if new != entry else None


def _unset(value: Json) -> bool:
    return value is None or value in ([], {}, "")


def _unset_as(mode: str) -> Callable[..., Any]:
    """Reads show unset members ``absent``, ``null`` or ``empty`` at every depth."""
    def walk(value: Json) -> Json:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                shown = walk(item)
                if _unset(shown) and not str(key).startswith("$"):
                    if mode == "absent":
                        continue
                    shown = None if mode == "null" else ("" if shown is None else shown)
                out[key] = shown
            return out
        if isinstance(value, list):
            return [walk(x) for x in value]
        return value

    def after(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
        if req.method == "GET" and isinstance(body, dict):
            body = walk(body)
        return status, headers, body
    return after


def _grown(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    if isinstance(body, dict):
        body = {**body, "modelId": "", "x-new-member": {"since": "2030-01-01"}}
    return status, headers, body


def _pascal(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    def pascal(value: Json) -> Json:
        if isinstance(value, dict):
            return {k[:1].upper() + k[1:]: pascal(x) for k, x in value.items()}
        if isinstance(value, list):
            return [pascal(x) for x in value]
        return value
    if isinstance(body, dict) and "isSuccessful" in body:
        body = pascal(body)
    return status, headers, body


def _warnings_absent(v: Variant, req: Request, status: int, headers: Any, body: Json) -> Any:
    if isinstance(body, dict) and "warnings" in body:
        body = {k: x for k, x in body.items() if k != "warnings"}
    return status, headers, body


def _ok_for_entry_failures(v: Variant, req: Request, status: int, headers: Any,
                           body: Json) -> Any:
    if isinstance(body, dict) and body.get("isSuccessful") is False:
        return 200, {k: x for k, x in headers.items() if k.lower() != "iothuberrorcode"}, body
    return status, headers, body


_ROUTES = ("/devices", "/twins", "/statistics", "/jobs", "/_bulkreg")


def _route_before_auth(v: Variant, req: Request) -> Any:
    if not req.path.startswith(_ROUTES):
        return 404, {}, {"Message": "ErrorCode:GenericNotFound;no such route"}
    version = parse_qs(req.query_string.decode()).get("api-version")
    if version is None or version[0] not in API_VERSIONS:
        return error(400, "InvalidProtocolVersion", "BadRequest")
    return None


def _no_parent(v: Variant, entry: dict[str, Any]) -> bool:
    """A valid module entry whose device does not exist (the variant creates it silently)."""
    module = entry.get("moduleId")
    return isinstance(module, str) and bool(_id(entry)) and not validate(
        json.dumps([entry]).encode()).errors and v.hub.registry.device(entry["id"]) is None


Factory = Callable[[App, Hub], Variant]


def _v(**hooks: Callable[..., Any]) -> Factory:
    return lambda app, hub: Variant(app, hub, **hooks)


def _both(before: Callable[..., Any], after: Callable[..., Any]) -> Factory:
    return lambda app, hub: Variant(app, hub, before=before, after=after)


# (decision key, alternative) -> the variant making that choice
VARIANTS: dict[tuple[str, str], Factory] = {
    ("id-special-chars", "reject-plus-hash-semicolon"): _v(before=refuse_if(
        lambda b: any(c in (_id(e) or "") for e in _entries(b) for c in "+#;"), 400,
        "ArgumentInvalid")),
    ("twin-etag-scope", "check-twin-etag-on-update-if-match"): _v(before=entries_where(
        _twin_etag_checked, "PreconditionFailed")),
    ("create-or-update-modes", "entry-error"): _v(before=entries_where(
        lambda v, e: isinstance(e.get("importMode"), str) and _mode(e) in {
            "createOrUpdate", "createOrUpdateIfMatchETag"}, "ArgumentInvalid")),
    ("create-or-update-modes", "import-semantics"): _v(before=each_entry(_import_semantics)),
    ("omitted-import-mode", "create"): _v(before=each_entry(
        lambda v, e: {**e, "importMode": "create"} if "importMode" not in e else None)),
    ("omitted-import-mode", "entry-error"): _v(before=entries_where(
        lambda v, e: "importMode" not in e and bool(_id(e)), "ArgumentInvalid")),
    ("omitted-import-mode", "request-error"): _v(before=refuse_if(
        lambda b: any("importMode" not in e for e in _entries(b)), 400, "ArgumentInvalid")),
    ("enum-case", "reject-other-casing"): _v(before=refuse_if(
        _noncanonical, 400, "DeserializationError")),
    ("member-casing", "exact-names-only"): _v(before=each_entry(_exact_names)),
    ("unknown-members", "reject-unknown"): _v(before=refuse_if(
        _has_unknown, 400, "ArgumentInvalid")),
    ("per-entry-status", "200-for-entry-failures"): _v(after=_ok_for_entry_failures),
    ("request-or-entry", "entry-error"): _v(before=_invalid_entries_fail),
    ("too-many-status", "400"): _v(before=_too_many(400)),
    ("too-many-status", "403"): _v(before=_too_many(403)),
    ("duplicate-ids", "entry-error"): _v(before=_duplicates_fail),
    ("error-codes", "other-code"): _v(after=_rewrite_codes(
        {"IotHubFormatError": "ArgumentInvalid", "DeserializationError": "ArgumentInvalid"})),
    ("error-code-form", "numeric"): _v(after=errors_of(
        lambda e: {**e, "errorCode": NUMBERS.get(e["errorCode"], e["errorCode"])})),
    ("error-code-form", "operation-text"): _v(after=errors_of(
        lambda e: {**e, "operation": f"ImportMode.{e.get('operation')}"})),
    ("etag-mismatch-code", "EtagDoesNotMatch"): _v(after=errors_of(
        lambda e: {**e, "errorCode": "EtagDoesNotMatch"}
        if e.get("errorCode") == "PreconditionFailed" else e)),
    ("error-headers", "IotHubErrorCode-everywhere"): _v(after=_headers("IotHubErrorCode")),
    ("error-headers", "none"): _v(after=_headers(None)),
    ("error-body-format", "format-b"): _v(after=_format_b),
    ("unenforced-limits", "accept-long-status-reason"): _v(before=each_entry(
        _long_status_reason)),
    ("twin-limits", "accept-null-in-arrays"): _v(before=each_entry(_accept_array_nulls)),
    ("null-in-twin", "keep-nulls"): _both(_remember_nulls, _kept_nulls),
    ("keys", "accept-short-keys"): _v(before=each_entry(_short_keys)),
    ("update-omitted-members", "keep-device-members"): _v(before=each_entry(
        _keep_device_members)),
    ("update-omitted-members", "clear-twin-sections"): _v(before=each_entry(_clear_twin)),
    ("update-replaces", "keep-keys"): _v(before=each_entry(_keep_keys)),
    ("warnings", "absent"): _v(after=_warnings_absent),
    ("warnings", "without-twin-warnings"): _v(after=_twinless_warnings),
    ("retry-after", "absent"): _v(first=_throttle_every(150)),
    ("older-api-versions", "refuse-older"): _v(before=_older_refused),
    ("etag-format", "opaque-strings"): _both(each_entry(_opaque_in), _opaque_out),
    ("unset-members", "absent"): _v(after=_unset_as("absent")),
    ("unset-members", "null"): _v(after=_unset_as("null")),
    ("unset-members", "empty"): _v(after=_unset_as("empty")),
    ("responses-grow", "extra-members"): _v(after=_grown),
    ("responses-grow", "pascal-case"): _v(after=_pascal),
    ("auth-first", "route-before-auth"): _v(first=_route_before_auth),
    ("module-entries", "accept-without-parent"): _v(before=entries_where(_no_parent)),
}


def stack(hub: Hub, *keys: tuple[str, str]) -> tuple[App, list[Variant]]:
    """The hub behind the variants ``keys`` (the first outermost), and the variants."""
    app: App = hub
    made: list[Variant] = []
    for key in reversed(keys):
        variant = VARIANTS[key](app, hub)
        made.append(variant)
        app = variant
    return app, made
