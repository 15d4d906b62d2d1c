"""The conformance checks: registered functions, one signature, each claim with its own evidence.

Modelled on schemathesis' checks: a check is one plain function registered once (:func:`check`)
with its name, a summary and the strongest evidence any of its claims can carry. Every check
takes one :class:`Seen` (an exchange, and what was expected of it) and returns the
:class:`Problem` s it finds; every problem carries the evidence of *that* claim
(:mod:`~bulkreg_conformance.evidence`), not of the check or of the rule it stems from: "a
non-array body gets 400" is ``contract`` while "... with errorCode IotHubFormatError" has the
errorCode's own evidence (at most ``observed``).

Checks of a claim a suite makes itself (auth, differential, cleanup, schemathesis') are declared
here too, so the table of checks is complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from bulkreg_conformance import decisions
from bulkreg_conformance.answers import (
    code_name,
    code_status,
    error_code,
    failed_entries,
    member,
    rejected_whole,
    result_of,
)
from bulkreg_conformance.client import Exchange
from bulkreg_conformance.evidence import CONTRACT, DOCUMENTED, Evidence, blamed
from bulkreg_conformance.expectation import API_VERSION, Expectation
from bulkreg_conformance.service_view import (
    declared_statuses,
    representation,
    response_validator,
)

__all__ = [
    "BULK_CHECKS",
    "CHECKS",
    "READ_CHECKS",
    "SCHEMATHESIS_EVIDENCE",
    "SCHEMATHESIS_PREFIX",
    "SHAPE_CHECKS",
    "Check",
    "Problem",
    "Read",
    "Seen",
    "check",
    "evidence_of",
    "markdown",
    "run_checks",
    "same",
]


class Problem(NamedTuple):
    check: str
    message: str
    evidence: Evidence


class Read(NamedTuple):
    """What one read-back (``GET /devices/{id}`` or ``GET /twins/{id}``) must show."""

    kind: str  # "device" or "twin"
    device_id: str
    want: dict[str, Any]  # the oracle's Device or Twin
    generated_keys: bool = True  # the keys are the endpoint's own: only their type is compared
    carried: frozenset[str] | None = None  # lower-cased members the last write carried
    device_carried: frozenset[str] | None = None  # the same for the device (a twin's status)
    explicit: frozenset[str] = frozenset()  # generated members the run set (deviceScope)
    etag_before: str | None = None  # the endpoint's etag before writes that must change it
    # the endpoint's generated keys as last read, when nothing the oracle knows wrote the
    # device since (a twin update must leave them): they must read the same
    keys_before: tuple[Any, Any] | None = None


@dataclass(frozen=True)
class Seen:
    """What a check looks at: one exchange and what was expected of it."""

    exchange: Exchange
    want: Expectation | None = None  # a bulk call's expectation
    read: Read | None = None  # a read-back's


@dataclass(frozen=True)
class Check:
    name: str
    summary: str
    evidence: str  # the strongest evidence a claim of this check can carry
    function: Callable[[Seen], list[Problem]] | None = None


CHECKS: dict[str, Check] = {}


def check(name: str, summary: str, evidence: str) -> Callable[
        [Callable[[Seen], list[Problem]]], Callable[[Seen], list[Problem]]]:
    """Register a check function under ``name``."""

    def register(function: Callable[[Seen], list[Problem]]) -> Callable[[Seen], list[Problem]]:
        CHECKS[name] = Check(name, summary, evidence, function)
        return function

    return register


def _declare(name: str, summary: str, evidence: str) -> None:
    """A check whose claims a suite makes itself (auth, differential, cleanup, schemathesis)."""
    CHECKS[name] = Check(name, summary, evidence)


SCHEMATHESIS_PREFIX = "schemathesis:"  # schemathesis' own checks are tallied under this prefix
# What each schemathesis check claims, judged against the service view of openapi.json.
SCHEMATHESIS_EVIDENCE = {
    "not_a_server_error": "contract",
    "status_code_conformance": "contract",
    "content_type_conformance": "contract",
    "response_schema_conformance": "contract",
    "response_headers_conformance": "contract",
    "negative_data_rejection": "contract",
    "positive_data_acceptance": "contract",
    "missing_required_header": "documented",
    "ignored_auth": "documented",
    "unsupported_method": "inferred",
    "allow_header_conformance": "inferred",
    "object_level_authorization": "inferred",
    "bulk_result_body": "inferred",  # facts §3.1: the per-entry result on 400 is inferred
}


def evidence_of(name: str) -> str | None:
    """The strongest evidence of check ``name``'s claims."""
    if name in CHECKS:
        return CHECKS[name].evidence
    if name.startswith(SCHEMATHESIS_PREFIX):
        return SCHEMATHESIS_EVIDENCE.get(name[len(SCHEMATHESIS_PREFIX):], "contract")
    return None


def run_checks(names: tuple[str, ...], seen: Seen) -> dict[str, list[Problem]]:
    """The problems of each of the checks ``names`` on ``seen``."""
    out: dict[str, list[Problem]] = {}
    for name in names:
        function = CHECKS[name].function
        assert function is not None, name
        out[name] = function(seen)
    return out


def _want(seen: Seen) -> Expectation:
    assert seen.want is not None, "a bulk check needs the call's expectation"
    return seen.want


def _not_judged(exchange: Exchange) -> bool:
    """Answers that are no verdict on the request (the shape and auth checks judge them)."""
    return exchange.status >= 500 or exchange.status in {401, 429}


# -- any answer --------------------------------------------------------------------------------

@check("server-error", "no 5xx for any request the kit sends (a 503 the client's retries could "
       "not get past is unavailability, like a 429: no verdict)", "contract")
def server_error(seen: Seen) -> list[Problem]:
    exchange = seen.exchange
    if exchange.status >= 500 and exchange.status != 503:
        return [Problem("server-error", f"HTTP {exchange.status} from {exchange.method}",
                        CONTRACT)]
    return []


@check("status-declared", "the status is one the operation declares (openapi.json)", "contract")
def status_declared(seen: Seen) -> list[Problem]:
    exchange = seen.exchange
    declared = declared_statuses(exchange)
    if not declared or exchange.status in declared or exchange.status >= 500:
        return []
    return [Problem("status-declared", f"HTTP {exchange.status} is not declared (declared: "
                    f"{sorted(declared)})", CONTRACT)]


@check("response-schema", "the body matches the declared schema for its status (unset members "
       "may be absent, null or empty; extra members and numeric codes are allowed)", "contract")
def response_schema(seen: Seen) -> list[Problem]:
    exchange = seen.exchange
    validator = response_validator(exchange, exchange.status)
    if validator is None or exchange.status >= 500:
        return []
    body = exchange.json()
    if body is None:
        what = "is not JSON" if exchange.response_body.strip() else "is empty"
        return [Problem("response-schema", f"the {exchange.status} body {what}", CONTRACT)]
    return [Problem("response-schema",
                    f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message}", CONTRACT)
            for e in validator.iter_errors(representation(body))][:5]


SHAPE_CHECKS = ("server-error", "status-declared", "response-schema")


# -- a bulk call -------------------------------------------------------------------------------

def all_failed(exchange: Exchange, want: Expectation) -> bool:
    """The answer is a result that fails every entry of the request (so applied none)."""
    result = result_of(exchange)
    if result is None or not want.ids:
        return False
    return len(failed_entries(result, list(want.ids)).failed) == len(want.ids)


@check("rejection", "the endpoint refuses what it must refuse and applies what it must apply "
       "(accept or reject, as a whole)", "contract")
def rejection(seen: Seen) -> list[Problem]:
    exchange, want = seen.exchange, _want(seen)
    if _not_judged(exchange):
        return []
    result = result_of(exchange)
    if want.request_level:
        if rejected_whole(exchange):
            return []
        what = f"{want.rule or 'the request'} ({want.code})" if want.code else "the request"
        if all_failed(exchange, want):
            return [Problem("rejection", f"{what} should be rejected as a whole; the endpoint "
                            f"failed its entries instead", want.per_entry_evidence)]
        return [Problem("rejection", f"{what} should be rejected; the endpoint accepted it "
                        f"(HTTP {exchange.status})", want.reject_evidence)]
    if rejected_whole(exchange):
        return [Problem("rejection", f"the request should be processed entry by entry; the "
                        f"endpoint rejected it as a whole (HTTP {exchange.status}, "
                        f"{error_code(exchange)})", want.accept_evidence)]
    if result is None and 200 <= exchange.status < 300:
        return [Problem("rejection", "expected a BulkRegistryOperationResult body", CONTRACT)]
    return []


@check("status", "the status is the one predicted for the same kind of answer", "observed")
def status(seen: Seen) -> list[Problem]:
    exchange, want = seen.exchange, _want(seen)
    if exchange.status == want.status or _not_judged(exchange):
        return []
    if want.request_level and rejected_whole(exchange):
        decision = decisions.linked("per-entry", want.rule) or "error-codes"
        return [Problem("status", f"expected HTTP {want.status}, got {exchange.status}",
                        blamed(want.reject_evidence, decisions.evidence(decision)))]
    result = result_of(exchange)
    if not want.request_level and result is not None:
        # the status of a result follows the endpoint's own isSuccessful (decision
        # per-entry-status): which entries fail is the errors check's claim
        succeeded = member(result, "isSuccessful") is True
        expected = 200 if succeeded else 400
        if exchange.status != expected and exchange.status in {200, 400}:
            return [Problem("status", f"expected HTTP {expected} for isSuccessful "
                            f"{str(succeeded).lower()}, got {exchange.status}",
                            decisions.evidence("per-entry-status"))]
    return []  # accepted vs rejected: the rejection check's claim


@check("request-error-code", "a request-level rejection carries the predicted errorCode "
       "(iothub-errorcode, format A or B)", "observed")
def request_error_code(seen: Seen) -> list[Problem]:
    exchange, want = seen.exchange, _want(seen)
    if not want.request_level or not rejected_whole(exchange) or _not_judged(exchange):
        return []
    expected, got = code_name(want.code), error_code(exchange)
    if expected is None or got == expected:
        return []
    level = blamed(want.reject_evidence, decisions.evidence("error-codes"))
    if want.api_version != API_VERSION and "InvalidProtocolVersion" in {got, expected}:
        level = decisions.evidence("older-api-versions")  # refused, or accepted and judged
    return [Problem("request-error-code", f"expected errorCode {expected}, got {got}", level)]


@check("is-successful", "isSuccessful is a boolean, true exactly when no entry failed",
       "contract")
def is_successful(seen: Seen) -> list[Problem]:
    exchange, want = seen.exchange, _want(seen)
    result = result_of(exchange)
    if result is None:
        return []
    flag = member(result, "isSuccessful")
    reported = failed_entries(result, list(want.ids))
    warned = member(result, "warnings")
    if not isinstance(flag, bool):
        return [Problem("is-successful", f"isSuccessful is {flag!r}, not a boolean", CONTRACT)]
    if flag and reported.total:
        return [Problem("is-successful", f"isSuccessful is true with {reported.total} "
                        f"error(s)", CONTRACT)]
    if not flag and not reported.total and not warned:
        return [Problem("is-successful", "isSuccessful is false with no error and no warning",
                        CONTRACT)]
    return []


@check("errors", "each entry succeeds or fails as predicted, with the predicted errorCode",
       "documented")
def errors(seen: Seen) -> list[Problem]:
    exchange, want = seen.exchange, _want(seen)
    result = result_of(exchange)
    if result is None or want.request_level:
        return []
    reported = failed_entries(result, list(want.ids))
    problems = [Problem("errors", f"an error names device {i!r}, which the request does not "
                        f"name", DOCUMENTED) for i in sorted(set(reported.stray))]
    if reported.unmatched:
        problems.append(Problem("errors", f"{reported.unmatched} error(s) name no device, and "
                                f"no entry is left for them", DOCUMENTED))
    for claim in want.entries:
        failed = claim.position in reported.failed
        got = reported.failed.get(claim.position)
        who = f"device {claim.device_id!r}" if claim.device_id else f"entry {claim.position}"
        if claim.code is None and failed:
            problems.append(Problem("errors", f"{who}: expected success, got errorCode "
                                    f"{got or '(none)'}", claim.evidence))
        elif claim.code is not None and not failed:
            problems.append(Problem("errors", f"{who}: expected errorCode {claim.code}, the "
                                    f"entry succeeded", claim.evidence))
        elif claim.code is not None and code_name(got) != code_name(claim.code) and \
                code_name(got) not in claim.alternatives and "*" not in claim.alternatives:
            # another code for the same status is the error-codes decision's deviation; a
            # code of another status (a conflict for a missing device) is a wrong answer
            other = None not in (code_status(got), code_status(claim.code)) and \
                code_status(got) != code_status(claim.code)
            problems.append(Problem("errors", f"{who}: expected errorCode {claim.code}, got "
                                    f"{got}", claim.evidence if other else blamed(
                                        claim.evidence, decisions.evidence("error-codes"))))
    return problems


BULK_CHECKS = ("rejection", "status", "request-error-code", "is-successful", "errors")


# -- read-back ---------------------------------------------------------------------------------

# Device members the service generates or maintains: never compared with the oracle's (a
# deviceScope the run set itself is, see Read.explicit).
_GENERATED_DEVICE = frozenset({
    "etag", "generationid", "connectionstateupdatedtime", "statusupdatedtime",
    "lastactivitytime", "cloudtodevicemessagecount", "connectionstate", "devicescope",
})


def _unset(value: Any) -> bool:
    return value is None or value in ([], {}, "")


def canonical(value: Any) -> Any:
    """``value`` as a read-back is compared: service-maintained ``$`` members dropped, and
    unset members (absent, null, empty) dropped at every depth (decision unset-members)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("$"):
                continue
            kept = canonical(item)
            if not _unset(kept):
                out[key] = kept
        return out
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def same(got: Any, want: Any) -> bool:
    """Equal, with absent, null and empty alike for unset members at every depth."""
    got, want = canonical(got), canonical(want)
    return (_unset(got) and _unset(want)) or bool(got == want)


def _read(seen: Seen) -> Read:
    assert seen.read is not None, "a read-back check needs the read's claim"
    return seen.read


def _carried_level(name: str, carried: frozenset[str] | None) -> Evidence:
    if carried is None or name.lower() in carried or name == "(body)":
        return DOCUMENTED
    return decisions.evidence("update-omitted-members")


def _device_member(name: str, value: Any, want: Any = None) -> Any:
    """A read's device member as it is compared: extra members inside it ignored (decision
    responses-grow), iotEdge false as its absence (the default), enum values and thumbprints
    in any case (docs print "Enabled"; a thumbprint is hex)."""
    if isinstance(want, dict) and isinstance(value, dict):
        value = {k: _device_member(k, member(value, k), w) for k, w in want.items()
                 if member(value, k) is not None}
    if name == "capabilities" and isinstance(value, dict):
        return {k: v for k, v in value.items() if not (k.lower() == "iotedge" and v is False)}
    if isinstance(value, str) and name.lower() in _CASELESS:
        return value.lower()
    return value


def generated_keys(authentication: Any) -> tuple[Any, Any]:
    """(primaryKey, secondaryKey) of a read's authentication member."""
    keys = member(authentication, "symmetricKey")
    return member(keys, "primaryKey"), member(keys, "secondaryKey")


_CASELESS = frozenset({"status", "type", "primarythumbprint", "secondarythumbprint"})


@check("readback-device", "GET /devices/{id} shows the device as predicted (existence and every "
       "stored member: keys, thumbprints, status, statusReason, capabilities, scopes)",
       "documented")
def readback_device(seen: Seen) -> list[Problem]:
    """Differences between a read-back Device and the oracle's. A member the last write did not
    carry is held to the hub's choice of replace-or-keep only as the decision says."""
    got, read = seen.exchange.json(), _read(seen)
    if not isinstance(got, dict):
        return [Problem("readback-device", f"device {read.device_id!r}: the body is not a JSON "
                        f"object", DOCUMENTED)]
    problems = []
    for name in sorted(read.want):
        lowered = name.lower()
        if lowered in _GENERATED_DEVICE and lowered not in read.explicit:
            continue
        have, wanted, shown = member(got, name), read.want.get(name), name
        if name == "authentication" and read.generated_keys:
            if read.keys_before is not None and generated_keys(have) != read.keys_before:
                problems.append(Problem("readback-device", f"device {read.device_id!r}: its "
                                        f"keys changed, and no write since the last read "
                                        f"changed the device", DOCUMENTED))
            have, wanted = member(have, "type"), (wanted or {}).get("type")
            shown = "authentication.type"
        if not same(_device_member(name, have, wanted), _device_member(name, wanted, wanted)):
            problems.append(Problem("readback-device", f"device {read.device_id!r}: {shown}: "
                                    f"expected {_show(canonical(wanted))}, got "
                                    f"{_show(canonical(have))}",
                                    _carried_level(name, read.carried)))
    return problems


@check("readback-twin", "GET /twins/{id} shows the twin as predicted (tags and desired "
       "properties)", "documented")
def readback_twin(seen: Seen) -> list[Problem]:
    got, read = seen.exchange.json(), _read(seen)
    if not isinstance(got, dict):
        return [Problem("readback-twin", f"twin {read.device_id!r}: the body is not a JSON "
                        f"object", DOCUMENTED)]
    problems = []
    for name in ("deviceId", "tags", "status"):
        if name in read.want and not same(_device_member(name, member(got, name)),
                                          _device_member(name, read.want.get(name))):
            level = DOCUMENTED if name == "deviceId" else _carried_level(
                name, read.device_carried if name == "status" else read.carried)
            problems.append(Problem("readback-twin", f"twin {read.device_id!r}: {name}: expected "
                                    f"{_show(canonical(read.want.get(name)))}, got "
                                    f"{_show(canonical(member(got, name)))}", level))
    got_desired = member(member(got, "properties"), "desired")
    want_desired = member(read.want.get("properties"), "desired")
    if not same(got_desired, want_desired):
        problems.append(Problem("readback-twin", f"twin {read.device_id!r}: properties.desired: "
                                f"expected {_show(canonical(want_desired))}, got "
                                f"{_show(canonical(got_desired))}",
                                _carried_level("desired", read.carried)))
    return problems


@check("etag-lifecycle", "a write changes the etag it must change (an update the device's, a "
       "twin update the twin's); the etag before it is refused by IfMatch modes (errors)",
       "documented")
def etag_lifecycle(seen: Seen) -> list[Problem]:
    """DOC-IR: the etag is a weak ETag of the identity (twin), as per RFC 7232: it changes when
    the identity (twin) does."""
    got, read = seen.exchange.json(), _read(seen)
    if read.etag_before is None or not isinstance(got, dict):
        return []
    etag = member(got, "etag")
    if etag == read.etag_before:
        return [Problem("etag-lifecycle", f"{read.device_id!r}: etag {etag!r} unchanged by a "
                        f"write that changed the {read.kind}",
                        DOCUMENTED)]
    return []


READ_CHECKS = {"device": ("readback-device", "etag-lifecycle"),
               "twin": ("readback-twin", "etag-lifecycle")}


def _show(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"


_declare("auth-missing", "a request without Authorization gets 401", "documented")
_declare("auth-invalid", "a wrongly signed SAS token gets 401", "documented")
_declare("auth-expired", "an expired SAS token gets 401", "documented")
_declare("auth-wrong-policy", "a token naming an unknown policy gets 401", "documented")
_declare("auth-wrong-resource", "a token signed for another hub, or for a path that does not "
         "hold /devices, gets 401", "documented")
_declare("auth-read-only", "a token of a read-only policy may read but write neither a device "
         "nor a twin (401) (with --read-connection-string; the built-in hub supplies one)",
         "documented")
_declare("api-version", "a bulk call without api-version (required) or with one no hub serves "
         "is refused (400)", "contract")
_declare("jobs-lifecycle", "an import job moves through JobProperties' statuses and ends "
         "completed though lines failed", "contract")
_declare("jobs-import-log", "importErrors.log fails exactly the predicted lines (the validator's "
         "and the oracle's), with the predicted errorCodes", "documented")
_declare("jobs-one-active", "a second job is refused while one is active (JobQuotaExceeded)",
         "documented")
_declare("jobs-cancel", "a job cancelled while active ends cancelled", "observed")
_declare("jobs-export", "an export writes every device of the prefix with its twin, keys left "
         "out with excludeKeysInExport", "documented")
_declare("jobs-round-trip", "exported lines imported again read back as the originals",
         "documented")
_declare("differential", "the offline validator and the endpoint agree (accept/reject, then "
         "the errorCode); an observer of every bulk call", "contract")
_declare("cleanup", "every device the run created is gone at the end", "documented")
_declare("schemathesis", "schemathesis' checks over the service view of openapi.json",
         "contract")


def markdown() -> str:
    """The table of checks in docs/conform.md: name, the strongest evidence of its claims,
    summary."""
    lines = ["| check | strongest claim | what it compares |", "| --- | --- | --- |"]
    lines += [f"| `{c.name}` | {c.evidence} | {c.summary} |" for c in CHECKS.values()
              if c.name != "schemathesis"]
    by_level: dict[str, list[str]] = {}
    for name, level in SCHEMATHESIS_EVIDENCE.items():
        by_level.setdefault(level, []).append(f"`{name}`")
    levels = "; ".join(f"{level}: {', '.join(names)}" for level, names in by_level.items())
    lines.append(f"| `{SCHEMATHESIS_PREFIX}<check>` | {levels} | schemathesis' checks over the "
                 f"service view of openapi.json (`bulk_result_body` is ours) |")
    return "\n".join(lines)
