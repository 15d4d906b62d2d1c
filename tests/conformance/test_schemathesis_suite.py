"""The schemathesis suite: configured for this API it passes on the faithful hub without touching
ids outside the prefix or leaving state in the working directory, and it names the schemathesis
check for defects only it looks for (a wrong content type, an undeclared status)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from werkzeug.wrappers import Request

from bulkreg_conformance.client import ID_PATTERN, bulk_ids
from bulkreg_conformance.hub.app import Hub
from bulkreg_conformance.runner import Result, Settings, run
from bulkreg_conformance.suites.schemathesis_suite import scope_case, scoped_id

from .conftest import Served, call_hub

PREFIX = "st-run-"


@pytest.mark.parametrize("device_id", ["a", "x" * 128, "a b", "é" * 128, "x" * 129, "é", "?" * 5])
def test_scoped_ids_keep_their_validity(device_id: str) -> None:
    scoped = scoped_id(PREFIX, device_id)
    assert scoped.startswith(PREFIX)
    assert bool(ID_PATTERN.match(scoped)) == bool(ID_PATTERN.match(device_id))
    assert (len(scoped) > 128) == (len(device_id) > 128)


def test_scope_case_rewrites_body_and_path_ids() -> None:
    case = SimpleNamespace(path_parameters={"id": "dev"}, body=[
        {"id": "a", "importMode": "create"}, {"id": 7}, "x", {"importMode": "delete"}])
    scope_case(PREFIX, case)  # type: ignore[arg-type]
    assert case.path_parameters == {"id": PREFIX + "dev"}
    assert case.body[0]["id"] == PREFIX + "a"
    assert case.body[1:] == [{"id": 7}, "x", {"importMode": "delete"}]
    raw = SimpleNamespace(path_parameters={}, body=b'[{"id": "b"}')  # not JSON: still rewritten
    scope_case(PREFIX, raw)  # type: ignore[arg-type]
    assert bulk_ids(raw.body) == [PREFIX + "b"]
    assert scoped_id(PREFIX, "") == ""  # an empty id names no device


class _Wrap:
    """Records every bulk body and lets ``alter`` rewrite (status, headers, body) of answers."""

    def __init__(self, hub: Hub, alter: Callable[[Request, str, list[tuple[str, str]], bytes],
                                                 tuple[str, list[tuple[str, str]], bytes]] | None
                 = None) -> None:
        self.hub, self.alter = hub, alter
        self.bodies: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        data = request.get_data()
        if request.method == "POST":
            self.bodies.append(data)
        status, headers, body = call_hub(self.hub, environ, data)
        if self.alter is not None and request.method == "POST":
            status, headers, body = self.alter(request, status, headers, body)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]


def _recording(into: list[_Wrap]) -> Callable[[Hub], _Wrap]:
    def wrap(hub: Hub) -> _Wrap:
        into.append(_Wrap(hub))
        return into[-1]

    return wrap


def _run(served: Served, **kwargs: Any) -> Result:
    options: dict[str, Any] = {"max_examples": 5, "seed": 3, "prefix": PREFIX,
                               "time_budget": 15.0}
    options.update(kwargs)
    return run(Settings(endpoint=served.url, connection_string=served.connection_string,
                        suites=("schemathesis",), **options))


def test_faithful_hub_passes_inside_the_prefix_and_leaves_no_state(
        serve: Callable[..., Served], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    wraps: list[_Wrap] = []
    served = serve(_recording(wraps))
    result = _run(served)
    assert result.failures == [], [f.to_dict(False) for f in result.failures]
    assert result.exit_code() == 0
    for check in ("negative_data_rejection", "positive_data_acceptance",
                  "status_code_conformance", "content_type_conformance",
                  "response_schema_conformance", "missing_required_header"):
        assert result.tally[f"schemathesis:{check}"].passed > 0, check
    ids = [i for body in wraps[0].bodies for i in bulk_ids(body) if i]
    assert len(ids) > 20
    assert all(i.startswith(PREFIX) for i in ids)
    assert len(served.hub.registry) == 0
    assert list(tmp_path.iterdir()) == []  # no .hypothesis/ or .schemathesis/
    assert not GLOBAL_HOOK_DISPATCHER.get_all_by_name("before_call")


def _text_plain(request: Request, status: str, headers: list[tuple[str, str]],
                body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    if status.startswith("200"):
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        headers.append(("Content-Type", "text/plain"))
    return status, headers, body


def _422_without_api_version(request: Request, status: str, headers: list[tuple[str, str]],
                             body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    if "api-version" not in request.args:
        return "422 Unprocessable Entity", headers, body
    return status, headers, body


@pytest.mark.parametrize(("alter", "check"), [
    (_text_plain, "schemathesis:content_type_conformance"),
    (_422_without_api_version, "schemathesis:status_code_conformance"),
], ids=["wrong content type", "undeclared status"])
def test_defects_only_schemathesis_looks_for_are_named(
        serve: Callable[..., Served], alter: Any, check: str) -> None:
    served = serve(lambda hub: _Wrap(hub, alter))
    result = _run(served, time_budget=6.0)
    assert result.exit_code() == 1
    named = {f.check for f in result.failures if f.verdict(False) == "failed"}
    assert check in named, named
    failure = next(f for f in result.failures if f.check == check)
    assert failure.evidence == "contract"
    curl = failure.to_dict(False)["curl"][0]
    assert "$SAS" in curl and "sig=" not in curl
    assert served.key not in json.dumps(failure.to_dict(False))
    assert len(served.hub.registry) == 0


@pytest.mark.slow
def test_same_seed_and_prefix_send_the_same_requests(serve: Callable[..., Served]) -> None:
    sent = []
    for _ in range(2):
        wraps: list[_Wrap] = []
        served = serve(_recording(wraps))
        assert _run(served, time_budget=60.0).exit_code() == 0
        sent.append(wraps[0].bodies)
    assert sent[0] == sent[1]
