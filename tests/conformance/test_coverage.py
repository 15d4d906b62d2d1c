"""A verdict states its coverage (issue 13): PASS only when nothing failed and the run reached its
minimum coverage; a run that could not tell ends INCOMPLETE (exit 3) naming what it missed and
why, or exit 2 when it cannot write at all. The plan reaches the minimum first, under any budget.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from bulkreg_conformance.coverage import CELLS, MEMBERS, minimum
from bulkreg_conformance.runner import PreflightFailed, Result, Settings, run, time_budget
from bulkreg_conformance.sas import make_connection_string
from bulkreg_conformance.suites import plan

from .conftest import Served
from .hostile import conform

ROOT = Path(__file__).resolve().parents[2]


def _run(served: Served, **kwargs: Any) -> Result:
    options: dict[str, Any] = {"suites": ("auth", "property"), "max_examples": 1, "seed": 3,
                               "read_connection_string": served.read_connection_string}
    options.update(kwargs)
    return run(Settings(endpoint=served.url, connection_string=served.connection_string,
                        **options))


def test_the_minimum_names_every_part_the_issue_lists() -> None:
    items = minimum(("auth", "property"), read_only=True)
    assert {f"cell:{m}:{o}" for m, o in CELLS} <= set(items)
    assert {f"member:{m}" for m in MEMBERS} <= set(items)
    assert {i for i in items if i.startswith("rule:")} and all(
        f"rule:{r}:accept" in items for r in ("twin-depth", "too-many-devices",
                                              "status-reason-length", "device-id-format"))
    assert {"etag:device-changes", "etag:stale-delete", "id:case-distinct", "auth:read-only",
            "auth:write"} <= set(items)
    assert minimum(("auth",), read_only=False).keys() == {
        "auth:write", "auth:missing", "auth:invalid", "auth:expired", "auth:wrong-policy",
        "auth:wrong-resource"}
    assert set(minimum(("stateful", "schemathesis"), read_only=False)) == {
        "explore:stateful", "explore:schemathesis"}


def test_the_plan_reaches_the_minimum_in_at_most_200_requests(
        serve: Callable[..., Served]) -> None:
    result = _run(serve(), suites=("auth", "property"), max_examples=1)
    assert result.verdict == "PASS", (result.coverage.missing(), result.failures)
    assert result.coverage.requests is not None and result.coverage.requests <= 200
    # the estimate that sizes the time budget under --rate-limit is close to the truth
    estimate = plan.estimate(result.settings)
    assert abs(estimate - result.coverage.requests) <= 10, (estimate, result.coverage.requests)


def test_a_run_cut_by_its_time_budget_is_incomplete_and_says_why(
        serve: Callable[..., Served]) -> None:
    served = serve()
    served.hub.faults.latency_ms = 20.0  # the plan's ~160 requests need over 3 s
    result = _run(served, time_budget=0.5)
    assert result.failures == [] and not result.failed
    assert result.verdict == "INCOMPLETE" and result.exit_code() == 3
    missing = result.coverage.missing()
    assert missing and all("time budget" in result.coverage.why(i) for i in missing)


def test_a_read_only_connection_string_cannot_be_tested(serve: Callable[..., Served]) -> None:
    served = serve()
    assert served.read_connection_string is not None
    with pytest.raises(PreflightFailed, match="may not write"):
        run(Settings(endpoint=served.url, connection_string=served.read_connection_string,
                     suites=("auth",)))


def test_a_policy_that_cannot_read_twins_is_exit_2_naming_serviceconnect(
        serve: Callable[..., Served]) -> None:
    served = serve()
    policy = served.hub.policies["registryReadWrite"]  # registry rights, no ServiceConnect
    ran = conform("--endpoint", served.url, "--connection-string", make_connection_string(
        served.hub.host_name, policy.name, policy.key))
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert len(ran.stderr.splitlines()) == 1 and "may not read twins" in ran.stderr
    assert "serviceConnect" in ran.stderr and policy.key not in ran.stderr


def test_a_read_only_connection_string_is_exit_2_and_one_line(
        serve: Callable[..., Served]) -> None:
    served = serve()
    ran = conform("--endpoint", served.url, "--connection-string",
                  str(served.read_connection_string))
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert ran.stdout == ""
    assert len(ran.stderr.splitlines()) == 1 and "may not write" in ran.stderr
    assert "preflight" in ran.stderr and "registryReadWrite" in ran.stderr


def test_a_hub_that_always_throttles_writes_is_incomplete_naming_throttling(
        serve: Callable[..., Served]) -> None:
    from werkzeug.wrappers import Request, Response  # noqa: PLC0415

    def throttle_bulk(hub: Any) -> Any:
        def app(environ: dict[str, Any], start_response: Any) -> Any:
            req = Request(environ)
            data = req.get_data()
            if req.method == "POST" and req.path == "/devices" and b"preflight" not in data:
                return Response('{"Message":"ErrorCode:ThrottlingException;wait"}', status=429,
                                headers={"Retry-After": "0"})(environ, start_response)
            environ["wsgi.input"] = __import__("io").BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
            return hub(environ, start_response)
        return app

    result = _run(serve(throttle_bulk), suites=("property",), time_budget=20.0)
    assert result.verdict == "INCOMPLETE", (result.failures, result.errors)
    reasons = {result.coverage.why(i) for i in result.coverage.missing()}
    assert any("throttling" in r for r in reasons), reasons


def test_latency_and_throttling_still_reach_pass(serve: Callable[..., Served]) -> None:
    """10 ms on every request; then every 30th request throttled (429 ThrottlingException with
    a Retry-After, as IoT Hub answers): slower, still the whole minimum (the plan retries what a
    429 cut)."""
    slow = serve()
    slow.hub.faults.latency_ms = 10.0
    result = _run(slow, seed=2, time_budget=120.0)
    assert result.verdict == "PASS", (result.coverage.missing(), result.errors)
    requests = itertools.count(1)
    throttled: list[str] = []

    def every_30th(hub: Any) -> Any:
        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if next(requests) % 30 == 0:
                throttled.append(environ["PATH_INFO"])
                start_response("429 Too Many Requests", [
                    ("Content-Type", "application/json; charset=utf-8"),
                    ("Retry-After", "0.2"), ("iothub-errorcode", "ThrottlingException")])
                return [b'{"Message":"ErrorCode:ThrottlingException;throttled"}']
            return hub(environ, start_response)
        return app

    result = _run(serve(every_30th), seed=2)
    assert result.verdict == "PASS", (result.coverage.missing(), result.errors)
    assert len(throttled) >= 5, throttled


def test_the_time_budget_grows_under_rate_limit_to_fit_the_plan_and_says_so() -> None:
    assert time_budget(Settings()) == (50.0, None)
    grown, note = time_budget(Settings(rate_limit=1.0))
    assert grown > plan.estimate(Settings(rate_limit=1.0))
    assert note and "grown from 50 s" in note and "--rate-limit 1" in note
    assert time_budget(Settings(rate_limit=1.0, time_budget=30.0)) == (30.0, None)
    assert time_budget(Settings(rate_limit=100.0)) == (50.0, None)


@pytest.mark.parametrize("suites", [("auth",), ("stateful",), ("property",)])
def test_a_suite_subset_has_its_own_minimum(serve: Callable[..., Served],
                                            suites: tuple[str, ...]) -> None:
    result = _run(serve(), suites=suites, max_examples=2, time_budget=30.0)
    assert result.verdict == "PASS", result.coverage.missing()
    assert set(result.coverage.required) == set(minimum(suites, read_only=True))


def test_reports_carry_the_same_verdict(serve: Callable[..., Served], tmp_path: Path) -> None:
    served = serve()
    served.hub.faults.latency_ms = 20.0  # the plan cannot fit in 0.3 s
    report, junit = tmp_path / "deep" / "r.json", tmp_path / "other" / "c.xml"
    ran = conform("--endpoint", served.url, "--connection-string", served.connection_string,
                  "--suite", "auth,property", "--time-budget", "0.3", "--seed", "1",
                  "--report-json", str(report), "--junit-xml", str(junit))
    assert ran.returncode == 3, ran.stdout + ran.stderr
    assert "verdict: INCOMPLETE" in ran.stdout and "not covered:" in ran.stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["verdict"] == "incomplete" and data["coverage"]["reached"] is False
    assert data["coverage"]["missing"] and all(m["why"] for m in data["coverage"]["missing"])
    suite = next(iter(JUnitXml.fromfile(str(junit))))
    cases = {case.name: case for case in suite}
    assert cases["minimum-coverage"].result, "INCOMPLETE must not read as a passing case"
    assert suite.errors == 1


def test_the_pytest_plugin_exits_3_on_an_incomplete_run(serve: Callable[..., Served],
                                                       tmp_path: Path) -> None:
    served = serve()
    served.hub.faults.latency_ms = 20.0  # the plan cannot fit in 0.3 s
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--bulkreg-endpoint",
         served.url, "--bulkreg-connection-string", served.connection_string, "--bulkreg-suite",
         "auth,property", "--bulkreg-time-budget", "0.3"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "SKIPPED" in proc.stdout and "INCOMPLETE" in proc.stdout
