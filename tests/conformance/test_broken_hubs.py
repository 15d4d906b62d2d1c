"""Deliberately broken hubs, one defect each: every run must fail naming the right check; the
faithful hub must pass. Defects are planted by a WSGI middleware around the reference hub."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from bulkreg_conformance.hub.app import Hub
from bulkreg_conformance.runner import Result, Settings, run
from bulkreg_conformance.sas import generate_token

from .conftest import Served, call_hub

Rewrite = Callable[[Any], Any]


class Defect:
    """Rewrites POST /devices bodies going in and/or JSON bodies coming out."""

    def __init__(self, hub: Hub, *, request: Rewrite | None = None,
                 response: Callable[[int, Any], tuple[int, Any]] | None = None,
                 headers: Callable[[Request], dict[str, str]] | None = None) -> None:
        self.hub, self.request, self.response, self.headers = hub, request, response, headers

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        if self.headers:
            environ.update({f"HTTP_{k.upper().replace('-', '_')}": v
                            for k, v in self.headers(req).items()})
        bulk = req.method == "POST" and req.path.rstrip("/") == "/devices"
        data = req.get_data()  # always read all of it: unread bytes would poison keep-alive
        if bulk and self.request:
            try:
                body = json.loads(data)
            except (ValueError, RecursionError):
                body = None
            if body is not None:
                data = json.dumps(self.request(body)).encode()
        status, headers, chunks = call_hub(self.hub, environ, data)
        if bulk and self.response and chunks.startswith(b"{"):
            new_status, new_body = self.response(int(status.split()[0]), json.loads(chunks))
            response = Response(json.dumps(new_body), status=new_status,
                                content_type="application/json")
            return response(environ, start_response)
        start_response(status, headers)
        return [chunks]


def _entries(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Rewrite:
    return lambda body: [fn(e) if isinstance(e, dict) else e for e in body] \
        if isinstance(body, list) else body


def _mode(old: str, new: str) -> Rewrite:
    return _entries(lambda e: {**e, "importMode": new} if e.get("importMode") == old else e)


def _result(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[int, Any], Any]:
    return lambda status, body: (status, fn(body) if "isSuccessful" in body else body)


def _errors(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[int, Any], Any]:
    return _result(lambda b: {**b, "errors": [fn(e) for e in b["errors"]]})


def _dedupe(body: Any) -> Any:
    if not isinstance(body, list):
        return body
    seen: dict[Any, Any] = {}
    for entry in body:
        seen[entry.get("id") if isinstance(entry, dict) else id(entry)] = entry
    return list(seen.values())


def _valid_token(hub: Hub) -> Callable[[Request], dict[str, str]]:
    owner = hub.policies["iothubowner"]
    return lambda r: {"Authorization": generate_token(hub.host_name, owner.name, owner.key)}


def _server_error_on_quote(status: int, body: Any) -> Any:
    return status, body


DEFECTS: dict[str, tuple[Callable[[Hub], Any], set[str]]] = {
    "wrong status (201 for success)": (
        lambda h: Defect(h, response=lambda s, b: (201 if s == 200 else s, b)),
        {"status-declared", "status"}),
    "missing isSuccessful": (
        lambda h: Defect(h, response=_result(lambda b: {k: v for k, v in b.items()
                                                         if k != "isSuccessful"})),
        {"is-successful"}),
    "mistyped isSuccessful": (
        lambda h: Defect(h, response=_result(lambda b: {**b, "isSuccessful":
                                                        str(b["isSuccessful"]).lower()})),
        {"response-schema", "is-successful"}),
    "ignored eTag": (
        lambda h: Defect(h, request=lambda b: _mode("deleteIfMatchETag", "delete")(
            _mode("updateIfMatchETag", "update")(b))),
        {"errors"}),
    "delete that does not delete": (
        lambda h: Defect(h, request=_entries(
            lambda e: {"id": e["id"], "importMode": "updateTwin"}
            if str(e.get("importMode", "")).lower() == "delete" else e)),
        {"readback-device"}),
    "101 entries accepted": (
        lambda h: Defect(h, request=lambda b: b[:100] if isinstance(b, list) else b),
        {"rejection"}),
    "duplicates accepted": (lambda h: Defect(h, request=_dedupe), {"rejection"}),
    "errorCode outside the enum": (
        lambda h: Defect(h, response=_errors(lambda e: {**e, "errorCode": "NoSuchDevice"}
                                             if e["errorCode"] == "DeviceNotFound" else e)),
        {"response-schema"}),
    "no auth": (lambda h: Defect(h, headers=_valid_token(h)),
                {"auth-missing", "auth-invalid", "auth-expired", "auth-wrong-policy",
                 "auth-wrong-resource"}),
    "500 on an id with a quote": (
        lambda h: _Crash(h), {"server-error"}),
    "error naming the wrong device": (
        lambda h: Defect(h, response=_errors(lambda e: {**e, "deviceId": f"{e['deviceId']}x"})),
        {"errors"}),
}


class _Crash:
    """500 for a bulk call naming an id with an apostrophe (a valid id character)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        data = req.get_data()
        environ = {k: v for k, v in environ.items() if not k.startswith("werkzeug.")}
        environ.update(CONTENT_LENGTH=str(len(data)), **{"wsgi.input": io.BytesIO(data)})
        if req.method == "POST" and b"'" in data:
            return Response('{"Message":"ErrorCode:ServerError;boom"}', status=500)(
                environ, start_response)
        return self.hub(environ, start_response)


def _run(served: Served, **kwargs: Any) -> Result:
    settings = Settings(endpoint=served.url, connection_string=served.connection_string,
                        suites=("differential", "auth", "property"), max_examples=3, seed=7,
                        time_budget=6.0, app=served.app, **kwargs)  # judged in process
    return run(settings)


def test_faithful_hub_passes(serve: Callable[..., Served]) -> None:
    result = _run(serve())
    assert result.failures == [], [f.to_dict(False) for f in result.failures]
    assert result.exit_code() == 0
    assert result.coverage.reached(), result.coverage.missing()


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_broken_hub_fails_naming_the_check(serve: Callable[..., Served], defect: str) -> None:
    wrap, expected = DEFECTS[defect]
    result = _run(serve(wrap))
    failed = {name for name, t in result.tally.items() if t.failed}
    assert result.exit_code() == 1
    assert failed & expected, f"{defect}: failed checks {sorted(failed)}"
    named = {f.check for f in result.failures if f.verdict(False) == "failed"}
    assert named & expected
    # nothing else fails: the run re-synchronises its oracle after the first difference
    assert failed <= expected | {"differential"}, f"{defect}: also failed {failed - expected}"
