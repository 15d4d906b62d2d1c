"""`bulkreg conform` against an endpoint this project did not otherwise write: the independent
implementation in ``independent/`` (written from the swagger definition and facts.md alone).

Every faithful variant must pass: one case per legitimate alternative (a switch of
:class:`independent.Options`), the all-defaults endpoint over every suite, a few combinations.
A case the kit fails although the endpoint's behaviour is allowed by the spec, facts.md or the
behaviour-decisions table is a false failure of the kit: it is kept, marked ``xfail(strict)``
with the reason. Planted defects must fail naming the right check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from bulkreg_conformance.runner import Result, Settings, run

from .independent import IndependentHub, Options

ALL_SUITES = ("differential", "auth", "property", "stateful", "schemathesis")
CHEAP_SUITES = ("differential", "auth", "property")


class FalseFailure(NamedTuple):
    """A faithful alternative the kit fails: the checks it fails and why that is the kit's error."""

    checks: frozenset[str]
    why: str

    def mark(self) -> Any:
        # raises=AssertionError: only the "no failed check" assertion may fail; a failure of any
        # other check raises UnexpectedFailure and fails the test for real
        return pytest.mark.xfail(strict=True, raises=AssertionError,
                                 reason=f"false failure ({', '.join(sorted(self.checks))}): "
                                        f"{self.why}")


class Fixed(NamedTuple):
    """A false failure this endpoint found in the kit, since fixed: the case must pass, and the
    record says what the kit got wrong (regression history)."""

    checks: frozenset[str]
    why: str

    def mark(self) -> Any:
        return ()


class UnexpectedFailure(Exception):
    pass


# one non-default switch per case: (id, Options keyword arguments, known false failure)
SWITCHES: list[tuple[str, dict[str, Any], FalseFailure | Fixed | None]] = [
    ("omitted-mode-create", {"omitted_mode": "create"}, None),
    ("omitted-mode-entry-error", {"omitted_mode": "entry-error"}, None),
    ("omitted-mode-request-error", {"omitted_mode": "request-error"}, None),
    ("create-or-update-rejected", {"create_or_update": "reject-request"}, None),
    ("create-or-update-entry-error", {"create_or_update": "reject-entry"}, None),
    ("error-format-b", {"error_format": "B"}, None),
    ("numeric-entry-codes", {"entry_codes": "numbers"}, None),
    ("etag-does-not-match", {"etag_mismatch": "EtagDoesNotMatch"}, None),
    ("invalid-entries-per-entry", {"invalid_entries": "entry"}, None),
    ("unset-null", {"unset": "null"}, None),
    ("unset-empty", {"unset": "empty"}, None),
    ("extra-members", {"extra_members": True}, None),
    ("older-api-refused", {"older_api": "refuse"}, None),
    ("status-reason-unlimited", {"status_reason_limit": False}, None),
    ("module-parent-not-required", {"module_parent": "not-required"}, None),
    ("warnings-absent", {"warnings": "absent"}, None),
    ("update-keeps-keys", {"update_keys": "keep"}, None),
    ("per-entry-failure-200", {"failure_status": 200}, None),
    ("header-IotHubErrorCode", {"error_header": "IotHubErrorCode"}, None),
    ("no-error-header", {"error_header": "none"}, None),
    ("alternative-request-codes", {"request_codes": "alternative"}, None),
    ("twin-strings-in-chars", {"twin_string_unit": "chars"}, None),
    ("twin-nulls-kept", {"twin_nulls": "keep"}, None),
    ("member-names-case-insensitive", {"member_casing": "insensitive"}, None),
    ("no-twin-metadata", {"twin_metadata": False}, None),
    ("empty-body-accepted", {"empty_body": "accept"}, None),
    ("bom-accepted", {"bom": "accept"}, None),
    ("duplicate-keys-last-wins", {"duplicate_keys": "last-wins"}, None),
    ("twin-etag-on-update-if-match", {"twin_etag_on_update_if_match": True}, None),
    ("too-many-400", {"too_many_status": 400}, None),
    ("too-many-403", {"too_many_status": 403}, Fixed(frozenset({"status-declared"}), (
        "403 for more than 100 entries (decision too-many-status: 'any rejection; 400 or 403 "
        "instead of 413 is a deviation', observed; facts §8: Node/Java map 403 to "
        "TooManyDevices) fails status-declared (contract): 'HTTP 403 is not declared'"))),
    ("duplicates-per-entry", {"duplicates": "entry"}, None),
    ("throttled-without-retry-after", {"throttle_every": 150}, None),
    ("operation-dotnet-names", {"operation_text": "dotnet"}, None),
    ("missing-etag-before-existence", {"missing_etag_first": True}, None),
    ("enum-case-exact", {"enum_case": "exact"}, None),
    ("special-chars-rejected", {"special_chars": "reject"}, None),
    ("unknown-members-rejected", {"unknown_members": "reject"}, None),
    ("connection-close", {"keep_alive": False}, None),
    ("api-version-before-auth", {"api_version_first": True}, None),
    ("errors-in-reverse-order", {"error_order": "reversed"}, None),
    ("dotnet-timestamps", {"timestamps": "observed"}, None),
    ("metadata-types-ignored", {"metadata_types": "ignored"}, None),
    ("warnings-twinless", {"warnings": "twinless"}, None),
    ("status-reason-utf16-length", {"status_reason_unit": "utf16"}, None),
    ("twin-size-in-bytes", {"twin_size_unit": "bytes"}, None),
    ("twin-change-new-device-etag", {"twin_bumps_device_etag": True}, None),
    ("update-clears-twin", {"update_clears_twin": True}, Fixed(
        frozenset({"readback-twin"}),
        "an update entry without tags/desired empties them: the literal reading of DOC-BULK's "
        "update ('existing information is overwritten with the provided input data', facts "
        "§3.2: 'Update is a replace, not a merge'); no source says the twin survives, the "
        "decisions table leaves it unlisted, yet readback-twin (documented) fails it: "
        "'tags: expected {...}, got null'")),
    ("update-twin-clears", {"update_twin_clears": True}, Fixed(
        frozenset({"readback-twin"}),
        "an updateTwin entry carrying only tags empties desired (and vice versa): DOC-BULK's "
        "updateTwin 'existing information is overwritten with the provided input data' (facts "
        "§3.2 'overwrite the twin (tags/desired)'); the decisions table leaves it unlisted, "
        "yet readback-twin (documented) fails it: 'properties.desired: expected {...}, got {}'"
        " and, the oracle not re-synchronised, later unrelated payloads too")),
]

COMBINATIONS: list[tuple[str, dict[str, Any], FalseFailure | Fixed | None]] = [
    ("format-b-numbers-no-header", {"error_format": "B", "entry_codes": "numbers",
                                    "error_header": "none", "warnings": "absent"}, None),
    ("lenient-endpoint", {"omitted_mode": "create", "status_reason_limit": False,
                          "module_parent": "not-required", "update_keys": "keep",
                          "unset": "null", "extra_members": True}, None),
    ("strict-endpoint", {"omitted_mode": "request-error", "create_or_update": "reject-request",
                         "older_api": "refuse", "etag_mismatch": "EtagDoesNotMatch",
                         "unset": "empty"}, None),
    ("per-entry-everything", {"invalid_entries": "entry", "omitted_mode": "entry-error",
                              "create_or_update": "reject-entry", "failure_status": 200}, None),
]

# Faithful alternatives the kit fails only with schemathesis: each is also a cheap case above
# (which passes); here with the suite that fails it, so the false failure stays on record.
SCHEMATHESIS_CASES: list[tuple[str, dict[str, Any], FalseFailure | Fixed | None]] = [
    ("numeric-entry-codes-schema", {"entry_codes": "numbers"}, Fixed(
        frozenset({"schemathesis:response_schema_conformance"}),
        "numeric per-entry errorCodes (decision error-code-form: 'names or numeric codes', "
        "open) fail schemathesis:response_schema_conformance (contract): openapi.json types "
        "DeviceRegistryOperationError.errorCode as the string enum only")),
    ("per-entry-invalid-200-schema", {"invalid_entries": "entry", "failure_status": 200},
     Fixed(frozenset({"schemathesis:negative_data_rejection"}),
                  "per-entry errors for the invalid entries (decision request-or-entry: open) "
                  "answered 200 + isSuccessful:false (decision per-entry-status: a deviation) "
                  "fail schemathesis:negative_data_rejection (contract): 'Schema-violating "
                  "request accepted'")),
    # module entries accepted without their parent (decision module-entries: a deviation), so
    # that schemathesis' module entry carrying "$version": {} is applied rather than failed
    ("metadata-types-ignored-schema", {"metadata_types": "ignored",
                                       "module_parent": "not-required"}, Fixed(
        frozenset({"schemathesis:negative_data_rejection"}),
        "ignoring the service-maintained $metadata/$version at the root of desired/reported "
        "whatever their value (rule twin-metadata-ignored: 'a bulk call does not set them') "
        "fails schemathesis:negative_data_rejection (contract) for '$version': {}: the types "
        "openapi.json gives them (integer, object) come from the project, not the swagger, "
        "whose PropertyContainer values are all 'object'")),
]

# planted defects: (id, defect, checks of which at least one must fail)
DEFECTS = [
    ("ignores-etag", "ignore-etag", {"errors"}),
    ("accepts-101", "accept-101", {"rejection"}),
    ("delete-does-not-delete", "delete-noop", {"readback-device"}),
]


@pytest.fixture
def endpoint() -> Iterator[Any]:
    hubs: list[IndependentHub] = []

    def start(**options: Any) -> IndependentHub:
        hub = IndependentHub(Options(**options)).start()
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        hub.stop()


def _run(hub: IndependentHub, suites: tuple[str, ...] = CHEAP_SUITES, *, seed: int = 7,
         max_examples: int = 2, time_budget: float = 30.0) -> Result:
    return run(Settings(endpoint=hub.url, connection_string=hub.connection_string,
                        suites=suites, max_examples=max_examples, seed=seed,
                        time_budget=time_budget))


def _assert_passes(result: Result, known: FalseFailure | Fixed | None = None) -> None:
    if isinstance(known, Fixed):
        known = None
    strict = result.settings.strict
    failed = [f.to_dict(strict) for f in result.failures if f.verdict(strict) == "failed"]
    if known is not None and {f["check"] for f in failed} - known.checks:
        raise UnexpectedFailure(failed)
    assert failed == []
    assert result.exit_code() == 0, (result.errors, result.leaks, result.tally)


def _cases(cases: list[tuple[str, dict[str, Any], FalseFailure | Fixed | None]],
           suites: tuple[str, ...]) -> list[Any]:
    return [pytest.param(options, suites, known, id=name, marks=known.mark() if known else ())  # type: ignore[arg-type]
            for name, options, known in cases]


def test_all_defaults_pass_every_suite(endpoint: Any) -> None:
    _assert_passes(_run(endpoint(), ALL_SUITES, max_examples=5, time_budget=8.0))


@pytest.mark.parametrize(("options", "suites", "known"),
                         _cases(SWITCHES + COMBINATIONS, CHEAP_SUITES)
                         + _cases(SCHEMATHESIS_CASES, ("schemathesis",)))
def test_faithful_alternative_passes(endpoint: Any, options: dict[str, Any],
                                     suites: tuple[str, ...],
                                     known: FalseFailure | Fixed | None) -> None:
    if suites == CHEAP_SUITES:
        _assert_passes(_run(endpoint(**options), suites), known)
    else:  # schemathesis alone: its first run in a process spends seconds loading the schema
        _assert_passes(_run(endpoint(**options), suites, max_examples=5, time_budget=15.0),
                       known)


@pytest.mark.parametrize(("defect", "expected"), [pytest.param(d, e, id=n) for n, d, e in DEFECTS])
def test_planted_defect_fails_naming_the_check(endpoint: Any, defect: str,
                                               expected: set[str]) -> None:
    result = _run(endpoint(defect=defect))
    named = {f.check for f in result.failures if f.verdict(False) == "failed"}
    assert result.exit_code() == 1
    assert named & expected, f"{defect}: failed checks {sorted(named)}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_default_suites_over_seeds(endpoint: Any, seed: int) -> None:
    _assert_passes(_run(endpoint(), ALL_SUITES, seed=seed, max_examples=25, time_budget=50.0))
