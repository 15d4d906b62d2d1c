"""Endpoints that answer differently where the spec leaves the service open must pass.

One variant per row of the behaviour-decisions table whose "accepts" column names an
alternative, and per representation choice (issue: zero false failures by construction): each
is the faithful reference hub behind a WSGI middleware that makes one other legitimate choice.
A variant may earn deviations (they fail only with --strict), never a failure. The independent
implementation in ``tests/conformance/independent`` covers the same ground from the spec alone.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
from werkzeug.wrappers import Request, Response

import bulkreg_schema
from bulkreg_conformance.answers import NUMERIC_CODES
from bulkreg_conformance.hub.app import Hub

from .conftest import Served, call_hub
from .test_broken_hubs import Defect, _errors, _run

NUMBERS = {name: number for number, name in NUMERIC_CODES.items()}
Json = Any


def _format_b(status: int, body: Any) -> tuple[int, Any]:
    """A request-level error as format B: Message is JSON with a numeric errorCode."""
    message = body.get("Message") if isinstance(body, dict) else None
    if not (isinstance(message, str) and message.startswith("ErrorCode:")):
        return status, body
    name, _, text = message[len("ErrorCode:"):].partition(";")
    inner = {"errorCode": NUMBERS.get(name, 400000), "trackingId": "0" * 32, "message": text,
             "timestampUtc": "2025-01-08T19:28:00.672603626Z"}
    return status, {"Message": json.dumps(inner), "ExceptionMessage": ""}


def _error(status: int, code: str, text: str) -> tuple[int, dict[str, str], Json]:
    return status, {"iothub-errorcode": code}, {"Message": f"ErrorCode:{code};{text}",
                                                "ExceptionMessage": "Tracking ID:0-G:0"}


class Variant:
    """The reference hub with one other legitimate choice.

    ``before(hub, request, body)`` may rewrite a bulk body, answer in its place (a tuple) or
    keep extra errors to add to the result; ``after(request, status, headers, body)`` may
    rewrite any JSON answer.
    """

    def __init__(self, hub: Hub, before: Callable[..., Any] | None = None,
                 after: Callable[..., Any] | None = None) -> None:
        self.hub, self.before, self.after = hub, before, after

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        data = req.get_data()
        extra: list[Json] = []
        if self.before and req.method == "POST" and req.path.rstrip("/") == "/devices":
            try:
                body = json.loads(data)
            except (ValueError, RecursionError):
                body = None
            answer = self.before(self.hub, req, body, extra)
            if isinstance(answer, tuple):
                status, headers, out = answer
                return Response(json.dumps(out), status=status, headers=headers,
                                content_type="application/json")(environ, start_response)
            if answer is not None:
                data = json.dumps(answer).encode()
        status_line, headers, chunks = call_hub(self.hub, environ, data)
        status = int(status_line.split()[0])
        if not (extra or self.after) or not chunks.startswith((b"{", b"[")):
            start_response(status_line, headers)
            return [chunks]
        out = json.loads(chunks)
        if extra and isinstance(out, dict) and "isSuccessful" in out:
            out = {**out, "isSuccessful": False, "errors": [*out["errors"], *extra]}
            status = 400
        kept = {k: v for k, v in headers if k.lower() not in {"content-length", "content-type"}}
        if self.after:
            status, kept, out = self.after(req, status, kept, out)
        return Response(json.dumps(out), status=status, headers=kept,
                        content_type="application/json")(environ, start_response)


def _entries_where(test: Callable[[Hub, dict[str, Any]], bool], code: str | None = None
                   ) -> Callable[..., Any]:
    """Drop the entries ``test`` picks; fail them with ``code`` (None: report success)."""

    def before(hub: Hub, req: Request, body: Json, extra: list[Json]) -> Json:
        if not isinstance(body, list):
            return None
        kept = []
        for entry in body:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str) and test(hub, entry):
                if code:
                    extra.append({"deviceId": entry["id"], "errorCode": code,
                                  "errorStatus": "not supported", "moduleId": None,
                                  "operation": entry.get("importMode")})
                continue
            kept.append(entry)
        if not kept:  # nothing left for the hub: answer for the dropped entries alone
            result = {"isSuccessful": not extra, "errors": list(extra), "warnings": []}
            extra.clear()
            return 200 if result["isSuccessful"] else 400, {}, result
        return kept if len(kept) != len(body) else None

    return before


def _older_versions_refused(hub: Hub, req: Request, body: Json, extra: list[Json]) -> Json:
    if parse_qs(req.query_string.decode()).get("api-version") != [bulkreg_schema.API_VERSION]:
        return _error(400, "InvalidProtocolVersion", "BadRequest")
    return None


def _object_body_argument_invalid(hub: Hub, req: Request, body: Json, extra: list[Json]) -> Json:
    if isinstance(body, dict):
        return _error(400, "ArgumentInvalid", "the body must be an array")
    return None


def _long_status_reason_accepted(hub: Hub, req: Request, body: Json, extra: list[Json]) -> Json:
    limit = bulkreg_schema.contract().status_reason_max_length
    if not isinstance(body, list):
        return None
    return [{**e, "statusReason": e["statusReason"][:limit]}
            if isinstance(e, dict) and isinstance(e.get("statusReason"), str) else e
            for e in body]


def _create_or_update(hub: Hub, req: Request, body: Json, extra: list[Json]) -> Json:
    """createOrUpdate with the import-job semantics: create when absent, else update."""
    if not isinstance(body, list):
        return None
    out = []
    for entry in body:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and \
                str(entry.get("importMode", "createOrUpdate")).lower() == "createorupdate":
            exists = hub.registry.device(entry["id"], entry.get("moduleId")) is not None
            out.append({**entry, "importMode": "update" if exists else "create"})
        else:
            out.append(entry)
    return out


def _update_keeps_keys(hub: Hub, req: Request, body: Json, extra: list[Json]) -> Json:
    if not isinstance(body, list):
        return None
    out = []
    for entry in body:
        current = hub.registry.device(entry["id"]) if isinstance(entry, dict) and \
            isinstance(entry.get("id"), str) and "authentication" not in entry and \
            str(entry.get("importMode", "")).lower() in {"update", "updateifmatchetag"} \
            else None
        out.append({**entry, "authentication": current["authentication"]} if current else entry)
    return out


def _no_parent(hub: Hub, entry: dict[str, Any]) -> bool:
    """A valid module entry whose device does not exist (the variant creates it silently)."""
    pattern = bulkreg_schema.contract().id_pattern
    module = entry.get("moduleId")
    return isinstance(module, str) and bool(pattern.match(module)) and \
        bool(pattern.match(entry["id"])) and hub.registry.device(entry["id"]) is None


def _unset_dropped(req: Request, status: int, headers: Any, body: Json) -> Any:
    """Reads leave out members that are null or empty (parentScopes, statusReason, tags…)."""
    if req.method == "GET" and isinstance(body, dict):
        body = {k: v for k, v in body.items() if v not in (None, [], {}, "")}
    return status, headers, body


def _unset_null(req: Request, status: int, headers: Any, body: Json) -> Any:
    if req.method == "GET" and isinstance(body, dict):
        body = {k: (None if v in ([], {}) else v) for k, v in body.items()}
    return status, headers, body


def _grown(req: Request, status: int, headers: Any, body: Json) -> Any:
    """Responses carry members a newer service added."""
    if isinstance(body, dict):
        body = {**body, "modelId": "", "x-new-member": {"since": "2030-01-01"}}
    return status, headers, body


def _pascal(req: Request, status: int, headers: Any, body: Json) -> Any:
    """Member names of the bulk result in PascalCase (a .NET serializer's default)."""
    def pascal(value: Json) -> Json:
        if isinstance(value, dict):
            return {k[:1].upper() + k[1:]: pascal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [pascal(v) for v in value]
        return value
    if isinstance(body, dict) and "isSuccessful" in body:
        body = pascal(body)
    return status, headers, body


def _warnings_absent(req: Request, status: int, headers: Any, body: Json) -> Any:
    if isinstance(body, dict):
        body.pop("warnings", None)
    return status, headers, body


def _ok_status_for_entry_failures(req: Request, status: int, headers: Any, body: Json) -> Any:
    if isinstance(body, dict) and body.get("isSuccessful") is False:
        return 200, {k: v for k, v in headers.items() if k.lower() != "iothuberrorcode"}, body
    return status, headers, body


def _no_error_headers(req: Request, status: int, headers: Any, body: Json) -> Any:
    return status, {k: v for k, v in headers.items()
                    if k.lower() not in {"iothub-errorcode", "iothuberrorcode"}}, body


VARIANTS: dict[str, Callable[[Hub], Any]] = {
    "numeric per-entry errorCodes": lambda h: Defect(h, response=_errors(
        lambda e: {**e, "errorCode": NUMBERS.get(e["errorCode"], e["errorCode"])})),
    "format B request errors": lambda h: Defect(h, response=_format_b),
    "EtagDoesNotMatch for a mismatch": lambda h: Defect(h, response=_errors(
        lambda e: {**e, "errorCode": "EtagDoesNotMatch"}
        if e["errorCode"] == "PreconditionFailed" else e)),
    "omitted importMode fails the entry": lambda h: Variant(h, before=_entries_where(
        lambda hub, e: "importMode" not in e, "ArgumentInvalid")),
    "createOrUpdate with import semantics": lambda h: Variant(h, before=_create_or_update),
    "older api-versions refused": lambda h: Variant(h, before=_older_versions_refused),
    "object body: ArgumentInvalid": lambda h: Variant(h, before=_object_body_argument_invalid),
    "statusReason over 128 accepted": lambda h: Variant(h, before=_long_status_reason_accepted),
    "module entry without parent accepted": lambda h: Variant(h, before=_entries_where(
        _no_parent)),
    "update keeps the keys": lambda h: Variant(h, before=_update_keeps_keys),
    "unset members left out of reads": lambda h: Variant(h, after=_unset_dropped),
    "unset members null in reads": lambda h: Variant(h, after=_unset_null),
    "responses grow new members": lambda h: Variant(h, after=_grown),
    "PascalCase result members": lambda h: Variant(h, after=_pascal),
    "no warnings member": lambda h: Variant(h, after=_warnings_absent),
    "200 for per-entry failures": lambda h: Variant(h, after=_ok_status_for_entry_failures),
    "no error headers": lambda h: Variant(h, after=_no_error_headers),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_faithful_variant_passes(serve: Callable[..., Served], variant: str) -> None:
    result = _run(serve(VARIANTS[variant]))
    failed = [f.to_dict(False) for f in result.failures if f.verdict(False) == "failed"]
    assert failed == [], failed
    assert result.exit_code() == 0


def test_a_variant_middleware_changes_what_the_hub_answers(serve: Callable[..., Served]) -> None:
    """The variants are not no-ops: the older-version one really refuses."""
    served = serve(VARIANTS["older api-versions refused"])
    hub = Variant(served.hub, before=_older_versions_refused)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/devices",
               "QUERY_STRING": "api-version=2020-05-31-preview", "wsgi.input": io.BytesIO(b"[]"),
               "CONTENT_LENGTH": "2", "SERVER_NAME": "x", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http"}
    seen: list[str] = []
    body = b"".join(hub(environ, lambda status, headers, exc=None: seen.append(status)))
    assert seen[0].startswith("400") and b"InvalidProtocolVersion" in body


def _all_of(*hooks: Callable[..., Any]) -> Callable[..., Any]:
    def after(req: Request, status: int, headers: Any, body: Json) -> Any:
        for hook in hooks:
            status, headers, body = hook(req, status, headers, body)
        return status, headers, body

    return after


def test_every_suite_passes_an_endpoint_making_many_other_choices(
        serve: Callable[..., Served]) -> None:
    """All suites (schemathesis and stateful included) against several choices at once."""
    served = serve(lambda h: Variant(h, before=_older_versions_refused, after=_all_of(
        _unset_dropped, _grown, _pascal, _warnings_absent, _ok_status_for_entry_failures,
        _no_error_headers)))
    result = _run_all(served)
    failed = [f.to_dict(False) for f in result.failures if f.verdict(False) == "failed"]
    assert failed == [], failed
    assert result.exit_code() == 0
    assert result.tally["readback-device"].passed > 0


def _run_all(served: Served) -> Any:
    from bulkreg_conformance.runner import Settings, run  # noqa: PLC0415

    return run(Settings(endpoint=served.url, connection_string=served.connection_string,
                        max_examples=5, seed=5, time_budget=20.0))
