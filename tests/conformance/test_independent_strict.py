"""`bulkreg conform --strict` against the independent endpoint: the behaviour decisions whose
evidence is "open" accept every listed alternative, not even as a deviation (decisions.py), so a
strict run must pass the independent endpoint with each such switch. Known false failures of the
kit are kept as strict xfails (see test_independent_endpoint.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bulkreg_conformance.runner import Settings, run

from .test_independent_endpoint import (
    CHEAP_SUITES,
    SWITCHES,
    FalseFailure,
    Fixed,
    _assert_passes,
    _cases,
    endpoint,
)

__all__ = ["endpoint"]  # the fixture, shared with test_independent_endpoint

# The base avoids two answers of this endpoint's defaults that the
# kit reports as deviations: DeviceNotFound before PreconditionFailed for an IfMatch entry without
# its etag on an absent device (no source orders them) and accepting api-version 2019-03-30.
STRICT_BASE: dict[str, Any] = {"missing_etag_first": True, "older_api": "refuse"}
OPEN_SWITCHES = {  # switch -> its decision in decisions.py (evidence "open")
    "omitted-mode-create": "omitted-import-mode",
    "omitted-mode-entry-error": "omitted-import-mode",
    "omitted-mode-request-error": "omitted-import-mode",
    "create-or-update-rejected": "create-or-update-modes",
    "create-or-update-entry-error": "create-or-update-modes",
    "error-format-b": "error-body-format",
    "numeric-entry-codes": "error-code-form",
    "operation-dotnet-names": "error-code-form",
    "etag-does-not-match": "etag-mismatch-code",
    "invalid-entries-per-entry": "request-or-entry",
    "unset-null": "unset-members",
    "unset-empty": "unset-members",
    "extra-members": "responses-grow",
    "status-reason-unlimited": "unenforced-limits",
    "warnings-absent": "warnings",
    "warnings-twinless": "warnings",
    "update-keeps-keys": "update-replaces",
    "header-IotHubErrorCode": "error-headers",
    "no-error-header": "error-headers",
    "twin-nulls-kept": "null-in-twin",
    "member-names-case-insensitive": "member-casing",
    "throttled-without-retry-after": "retry-after",
}
STRICT_FALSE_FAILURES = {
    "omitted-mode-entry-error": Fixed(frozenset({"status"}), (
        "under --strict, an error for an entry without importMode (decision "
        "omitted-import-mode: open) fails check status (inferred): 'expected HTTP 200, got "
        "400'")),
    "omitted-mode-request-error": Fixed(frozenset({"differential"}), (
        "under --strict, a request-level error for an entry without importMode (decision "
        "omitted-import-mode: open) fails check differential (inferred): 'the validator "
        "accepts the request; the endpoint rejected it as a whole (HTTP 400, ArgumentNull)'")),
}
STRICT_CASES: list[tuple[str, dict[str, Any], FalseFailure | Fixed | None]] = [
    ("strict-base", {}, None),
    ("older-api-accepted", {"older_api": "accept"}, Fixed(
        frozenset({"request-error-code"}),
        "under --strict, accepting api-version 2019-03-30 (decision older-api-versions: "
        "'acceptance, or 400 InvalidProtocolVersion', open) and refusing its twin arrays with "
        "ArgumentInvalid (facts §2.7: arrays need 2019-10-01) fails request-error-code "
        "(observed): 'expected errorCode InvalidProtocolVersion, got ArgumentInvalid'")),
] + [(name, options, STRICT_FALSE_FAILURES.get(name))
     for name, options, _ in SWITCHES if name in OPEN_SWITCHES]


@pytest.mark.parametrize(("options", "suites", "known"), _cases(STRICT_CASES, CHEAP_SUITES))
def test_open_alternative_passes_strict(endpoint: Any, options: dict[str, Any],
                                        suites: tuple[str, ...],
                                        known: FalseFailure | Fixed | None) -> None:
    hub = endpoint(**{**STRICT_BASE, **options})
    _assert_passes(run(Settings(endpoint=hub.url, connection_string=hub.connection_string,
                                suites=suites, max_examples=2, seed=7, time_budget=30.0,
                                strict=True)), known)


def test_open_switches_name_open_decisions() -> None:
    from bulkreg_conformance.decisions import DECISIONS  # noqa: PLC0415

    assert {DECISIONS[key].evidence for key in OPEN_SWITCHES.values()} == {"open"}
    assert set(OPEN_SWITCHES) <= {name for name, _, _ in SWITCHES}
