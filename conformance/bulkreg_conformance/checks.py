"""The conformance checks: registered functions, each claim with the evidence of that claim.

Modelled on schemathesis' checks: a check is one plain function registered once with its name, a
summary and the strongest evidence any of its claims can carry (:func:`check`). It returns the
:class:`Problem` s it finds, and every problem carries the evidence of *that* claim, not of the
check or of the rule it stems from: "a non-array body gets 400" is ``contract`` while "... with
errorCode IotHubFormatError" has the errorCode's own evidence (at most ``observed``).

Evidence levels, strongest first: ``contract`` (the published definition), ``documented``
(Microsoft docs), ``observed`` (SDK code, issues, samples), ``inferred``, and ``open`` (a choice
the spec leaves open: every alternative the behaviour-decisions table lists passes). Breaking a
``contract`` or ``documented`` claim fails the run; ``observed`` and ``inferred`` ones are
deviations (failing only with ``--strict``); ``open`` ones are never reported.

The bulk checks compare an answer with an :class:`Expectation`, built from the oracle's
prediction, the validator's findings, the rule table and the decisions (:func:`expect`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jsonschema_rs

import bulkreg_schema
from bulkreg_validator import RULES, Report

from . import decisions
from .client import Exchange, bulk_ids

__all__ = [
    "CHECKS",
    "FAILING_EVIDENCE",
    "NUMERIC_CODES",
    "Check",
    "EntryClaim",
    "Expectation",
    "Failure",
    "Problem",
    "accept_evidence",
    "check",
    "code_name",
    "entry_at",
    "error_code",
    "evidence_of",
    "expect",
    "markdown",
    "member",
    "rejection_evidence",
    "service_openapi",
    "verdict",
    "weakest",
]

LEVELS = ("open", "inferred", "observed", "documented", "contract")  # weakest first
FAILING_EVIDENCE = frozenset({"contract", "documented"})
API_VERSION = bulkreg_schema.API_VERSION


def weakest(*levels: str) -> str:
    """The weakest of evidence ``levels`` (a claim is only as strong as its weakest part)."""
    return min(levels, key=LEVELS.index)


def verdict(evidence: str, strict: bool) -> str:
    if evidence == "open":
        return "passed"
    return "failed" if strict or evidence in FAILING_EVIDENCE else "deviation"


class Problem(NamedTuple):
    check: str
    message: str
    evidence: str


@dataclass(frozen=True)
class Check:
    name: str
    summary: str
    evidence: str  # the strongest evidence a claim of this check can carry
    function: Callable[..., list[Problem]] | None = None


CHECKS: dict[str, Check] = {}


def check(name: str, summary: str, evidence: str) -> Callable[[Callable[..., list[Problem]]],
                                                               Callable[..., list[Problem]]]:
    """Register a check function under ``name``."""

    def register(function: Callable[..., list[Problem]]) -> Callable[..., list[Problem]]:
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


@dataclass
class Failure:
    """One broken check, with everything needed to reproduce it."""

    check: str
    evidence: str
    message: str
    suite: str = ""
    payload: str | None = None  # the (shrunk) request body, as sent
    exchanges: list[Exchange] = field(default_factory=list)
    rule: str | None = None
    replay: dict[str, Any] | None = None  # what --replay needs (set by the context)

    def __post_init__(self) -> None:  # a failure keeps at most KEEP_BYTES of each body
        self.exchanges = [e.kept() for e in self.exchanges]

    def verdict(self, strict: bool) -> str:
        return verdict(self.evidence, strict)

    def to_dict(self, strict: bool) -> dict[str, Any]:
        return {
            "check": self.check,
            "verdict": self.verdict(strict),
            "evidence": self.evidence,
            "rule": self.rule,
            "suite": self.suite,
            "message": self.message,
            "payload": self.payload,
            "exchanges": [e.to_dict() for e in self.exchanges],
            "curl": [e.curl() for e in self.exchanges],
        }


# -- errorCodes --------------------------------------------------------------------------------

# facts §3.3 (CS ErrorCode.cs): import logs and newer error bodies (format B) carry numeric
# codes; a faithful endpoint may send either form, so numbers are compared by name.
NUMERIC_CODES = {
    400001: "InvalidProtocolVersion", 400003: "InvalidOperation", 400004: "ArgumentInvalid",
    400005: "ArgumentNull", 400006: "IotHubFormatError", 400011: "DeviceDefinedMultipleTimes",
    400012: "DeserializationError", 400013: "BulkRegistryOperationFailure",
    401001: "IotHubNotFound", 401002: "IotHubUnauthorizedAccess", 403002: "IotHubQuotaExceeded",
    404001: "DeviceNotFound", 404010: "ModuleNotFound", 409001: "DeviceAlreadyExists",
    409301: "ModuleAlreadyExistsOnDevice", 412001: "PreconditionFailed",
    413002: "TooManyDevices", 413003: "TooManyModulesOnDevice", 429000: "GenericTooManyRequests",
    429001: "ThrottlingException", 429002: "ThrottleBacklogLimitExceeded",
    429003: "ThrottlingBacklogTimeout", 500001: "ServerError", 503001: "ServiceUnavailable",
}
# Names that mean the same for a verdict (decision etag-mismatch-code).
SAME_CODE = {"EtagDoesNotMatch": "PreconditionFailed"}


def code_name(code: Any) -> str | None:
    """An errorCode as its canonical name, whether sent as a name or a number."""
    if isinstance(code, bool) or code is None:
        return None
    if isinstance(code, int) or (isinstance(code, str) and code.isascii() and code.isdigit()):
        return NUMERIC_CODES.get(int(code), str(code))
    name = str(code)
    return SAME_CODE.get(name, name)


def error_code(exchange: Exchange) -> str | None:
    """The symbolic errorCode of a request-level error: header first, then the body (format A
    ``Message: "ErrorCode:<Name>;…"`` or format B, a JSON ``Message`` with ``errorCode``)."""
    return code_name(_raw_error_code(exchange))


def _raw_error_code(exchange: Exchange) -> str | None:
    header = exchange.header("iothub-errorcode") or exchange.header("IotHubErrorCode")
    if header and header != "BulkRegistryOperationFailure":
        return header
    body = exchange.json()
    message = member(body, "Message") if isinstance(body, dict) else None
    if isinstance(message, str) and message.startswith("ErrorCode:"):
        return message[len("ErrorCode:"):].split(";", 1)[0]
    if isinstance(message, str):
        try:
            inner = json.loads(message)
        except ValueError:
            return header
        code = member(inner, "errorCode") if isinstance(inner, dict) else None
        return str(code) if code is not None else header
    if isinstance(body, dict) and member(body, "errorCode") is not None:
        return str(member(body, "errorCode"))
    return header


def member(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]``, matching the member name case-insensitively (decision responses-grow)."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    return next((v for k, v in obj.items() if isinstance(k, str) and k.lower() == lowered), None)


def _has(obj: dict[str, Any], name: str) -> bool:
    lowered = name.lower()
    return any(isinstance(k, str) and k.lower() == lowered for k in obj)


# -- what the endpoint must answer -------------------------------------------------------------

class EntryClaim(NamedTuple):
    device_id: str
    code: str | None  # the errorCode the oracle predicts for the entry; None: it succeeds
    evidence: str  # evidence that the entry succeeds or fails as predicted
    alternatives: frozenset[str] = frozenset()  # other codes as right (decision error-codes)


@dataclass(frozen=True)
class Expectation:
    """What an endpoint must answer to one bulk call, each part with its evidence."""

    status: int
    body: Any  # the oracle's answer
    request_level: bool  # the oracle rejects the request as a whole
    rule: str | None  # the rule behind a request-level rejection (or the step's own rule)
    reject_evidence: str  # request_level: that the endpoint must not apply any entry
    per_entry_evidence: str  # request_level: that per-entry errors are not enough
    accept_evidence: str  # otherwise: that the request must not be rejected as a whole
    entries: dict[str, EntryClaim]
    api_version: str

    @property
    def code(self) -> str | None:
        message = member(self.body, "Message") if isinstance(self.body, dict) else None
        if isinstance(message, str) and message.startswith("ErrorCode:"):
            return message[len("ErrorCode:"):].split(";", 1)[0]
        return None


# Rejections whose evidence differs from the rule's (which states the limit, not who enforces).
_REJECTION_DECISION = {"status-reason-length": "unenforced-limits"}
# SWG: "a device identity may appear only once" (the errorCode itself is only observed).
_REJECTION_EVIDENCE = {"duplicate-id": "contract"}
# Who decides whether per-entry errors may stand in for a request-level rejection.
_PER_ENTRY_DECISION = {"duplicate-id": "duplicate-ids", "too-many-devices": "too-many-status"}
_WARNING_DECISION = {"enum-case": "enum-case", "id-unsupported-char": "id-special-chars",
                     "import-mode-missing": "omitted-import-mode",
                     "unknown-property": "unknown-members", "mode-ignored-field": "twin-etag-scope"}
_KNOWN_MEMBERS = frozenset(
    name.lower() for name in bulkreg_schema.load("ExportImportDevice")["properties"])
# importModes of import jobs the swagger's bulk enum lacks (createOrUpdate*), lower-cased
_EXTENDED_MODES = frozenset(m.lower() for m in set(bulkreg_schema.contract().import_modes)
                            - set(bulkreg_schema.contract().bulk_modes))


def rejection_evidence(rule: str | None, entry: Any = None) -> str:
    """Evidence that an endpoint must not accept what ``rule`` rejects (in ``entry``)."""
    if rule is None or rule not in RULES:
        return "documented"
    if rule == "enum-value" and isinstance(entry, dict) and _mode_key(entry) in _EXTENDED_MODES:
        return decisions.evidence("create-or-update-modes")
    if rule in _REJECTION_DECISION:
        return decisions.evidence(_REJECTION_DECISION[rule])
    return _REJECTION_EVIDENCE.get(rule, RULES[rule].evidence)


def _warning_evidence(rule: str, entry: Any) -> str:
    if rule == "unknown-property" and isinstance(entry, dict) and any(
            isinstance(k, str) and k.lower() in _KNOWN_MEMBERS and k not in
            bulkreg_schema.load("ExportImportDevice")["properties"] for k in entry):
        return decisions.evidence("member-casing")
    if rule in _WARNING_DECISION:
        return decisions.evidence(_WARNING_DECISION[rule])
    return RULES[rule].evidence if rule in RULES else "inferred"


def _index(pointer: str) -> int | None:
    head = pointer.split("/")[1] if pointer.count("/") >= 1 and pointer.startswith("/") else ""
    return int(head) if head.isdigit() else None


def entry_at(entries: list[Any], finding: Any) -> Any:
    index = _index(finding.pointer) if finding is not None else None
    return entries[index] if index is not None and index < len(entries) else None


def _mode_key(entry: dict[str, Any]) -> str | None:
    mode = member(entry, "importMode")
    return mode.lower() if isinstance(mode, str) else None


def accept_evidence(report: Report, entries: Any, api_version: str) -> str:
    """Evidence that an endpoint must not reject this body as a whole: ``contract`` for a plain
    valid body, weaker when it relies on an older api-version, a warning (an omitted
    ``importMode``, an unknown member, …) or holds entries that fail on their own."""
    listed = entries if isinstance(entries, list) else []
    level = decisions.evidence("older-api-versions") if api_version != API_VERSION \
        else "contract"
    for finding in report.findings:
        index = _index(finding.pointer)
        if finding.severity != "error" and index is not None and index < len(listed):
            level = weakest(level, _warning_evidence(finding.rule, listed[index]))
    if any(f.severity == "error" for f in report.findings):
        level = weakest(level, decisions.evidence("request-or-entry"))
    if any(isinstance(e, dict) and member(e, "importMode") is None for e in listed):
        level = weakest(level, decisions.evidence("omitted-import-mode"))
    return level


def expect(report: Report, entries: Any, status: int, body: Any, *, api_version: str,
           step_rule: str | None = None, unknown: frozenset[str] = frozenset(),
           exists: Callable[[str, str | None], bool] | None = None) -> Expectation:
    """The expectation for one bulk call: the oracle's answer (``status``, ``body``), the
    validator's ``report`` on the body the oracle saw, ``entries`` (that body, parsed) and
    ``exists`` (whether a device, or a module of it, exists before the call)."""
    request_level = not (isinstance(body, dict) and "isSuccessful" in body)
    findings = list(report.findings)
    rejection = next((f for f in findings if f.severity == "error"
                      and RULES[f.rule].scope == "request"), None)
    rule = rejection.rule if rejection is not None else step_rule
    listed = entries if isinstance(entries, list) else []
    if request_level:
        reject = rejection_evidence(rule, entry_at(listed, rejection))
        per_entry = decisions.evidence(_PER_ENTRY_DECISION.get(rule or "", "request-or-entry"))
        return Expectation(status, body, True, rule, reject, per_entry, "contract", {},
                           api_version)
    per_index: dict[int, str] = {}
    for finding in findings:
        index = _index(finding.pointer)
        if finding.severity != "error" and index is not None and index < len(listed):
            level = _warning_evidence(finding.rule, listed[index])
            per_index[index] = weakest(per_index.get(index, "documented"), level)
    predicted = {e.get("deviceId"): code_name(e.get("errorCode"))
                 for e in body.get("errors") or [] if isinstance(e, dict)}
    claims: dict[str, EntryClaim] = {}
    for index, entry in enumerate(listed):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        device_id = entry["id"]
        level = per_index.get(index, "documented")
        mode = entry.get("importMode")
        if device_id in unknown:
            level = "open"
        if mode is None:
            level = weakest(level, decisions.evidence("omitted-import-mode"))
        elif isinstance(mode, str) and mode.lower() in _EXTENDED_MODES:
            level = weakest(level, decisions.evidence("create-or-update-modes"))
        module = entry.get("moduleId") if isinstance(entry.get("moduleId"), str) else None
        if module:
            level = weakest(level, decisions.evidence("module-entries"))
        error = next((f for f in findings if f.severity == "error"
                      and _index(f.pointer) == index), None)
        if error is not None:
            level = weakest(level, rejection_evidence(error.rule, entry))
        claims[device_id] = EntryClaim(device_id, predicted.get(device_id), level,
                                       _alternatives(predicted.get(device_id), error, module,
                                                     device_id, exists))
    return Expectation(status, body, False, step_rule, "contract", "contract",
                       accept_evidence(report, listed, api_version), claims, api_version)


def _alternatives(code: str | None, error: Any, module: str | None, device_id: str,
                  exists: Callable[[str, str | None], bool] | None) -> frozenset[str]:
    """Other errorCodes as right as the predicted one (decision error-codes): an entry with two
    problems may be answered for either (an IfMatch entry without its etag, for a device that
    does not exist); a module entry whose device or module is missing names either."""
    if code is None:
        return frozenset()
    out: set[str] = set()
    missing = exists is not None and not exists(device_id, module)
    if error is not None and missing:
        out.add("ModuleNotFound" if module else "DeviceNotFound")
    if module and code in {"DeviceNotFound", "ModuleNotFound"}:
        out |= {"DeviceNotFound", "ModuleNotFound"}
    return frozenset(out - {code})


# -- reading an answer -------------------------------------------------------------------------

def _result(exchange: Exchange) -> dict[str, Any] | None:
    """The BulkRegistryOperationResult of an answer, or None (a generic error, not JSON…)."""
    body = exchange.json()
    if isinstance(body, dict) and exchange.status < 500 and (
            _has(body, "isSuccessful") or isinstance(member(body, "errors"), list)):
        return body
    return None


def reported_errors(result: dict[str, Any]) -> dict[str, str | None]:
    """device id -> errorCode name, for the entries an answer reports as failed."""
    errors = member(result, "errors")
    out: dict[str, str | None] = {}
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict) and isinstance(member(error, "deviceId"), str):
            out.setdefault(member(error, "deviceId"), code_name(member(error, "errorCode")))
    return out


def rejected_whole(exchange: Exchange) -> bool:
    """The endpoint refused the request as a whole (a 4xx without a result body)."""
    return 400 <= exchange.status < 500 and _result(exchange) is None


def diverged(exchange: Exchange, want: Expectation) -> tuple[bool, set[str]]:
    """(whether the oracle must keep its state, ids whose state at the endpoint is unknown).

    A request refused as a whole changed nothing; an answer the oracle did not predict leaves
    the named devices in a state the oracle does not know, so the run re-synchronises them.
    """
    ids = set(_ids_of(want, exchange))
    if exchange.status >= 500 or exchange.status < 200:
        return False, ids
    if rejected_whole(exchange):
        return True, set()
    result = _result(exchange)
    if result is None:  # 2xx without a result body: applied, but how is unknown
        return want.request_level, ids
    failed = reported_errors(result)
    if want.request_level:
        return True, {i for i in ids if i not in failed}
    return False, {i for i, claim in want.entries.items()
                   if (claim.code is None) != (i not in failed)}


# -- the bulk checks ---------------------------------------------------------------------------

@check("server-error", "no 5xx for any request the kit sends", "contract")
def server_error(exchange: Exchange) -> list[Problem]:
    if exchange.status >= 500:
        return [Problem("server-error", f"HTTP {exchange.status} from {exchange.method}",
                        "contract")]
    return []


@check("status-declared", "the status is one the operation declares (openapi.json)", "contract")
def status_declared(exchange: Exchange) -> list[Problem]:
    declared = declared_statuses(exchange)
    if not declared or exchange.status in declared or exchange.status >= 500:
        return []
    return [Problem("status-declared", f"HTTP {exchange.status} is not declared (declared: "
                    f"{sorted(declared)})", "contract")]


@check("response-schema", "the body matches the declared schema for its status (unset members "
       "may be absent, null or empty; extra members and numeric codes are allowed)", "contract")
def response_schema(exchange: Exchange) -> list[Problem]:
    validator = _response_validator(exchange, exchange.status)
    if validator is None or exchange.status >= 500:
        return []
    body = exchange.json()
    if body is None:
        what = "is not JSON" if exchange.response_body.strip() else "is empty"
        return [Problem("response-schema", f"the {exchange.status} body {what}", "contract")]
    return [Problem("response-schema",
                    f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message}", "contract")
            for e in validator.iter_errors(_representation(body))][:5]


@check("rejection", "the endpoint refuses what it must refuse and applies what it must apply "
       "(accept or reject, as a whole)", "contract")
def rejection(exchange: Exchange, want: Expectation) -> list[Problem]:
    if exchange.status >= 500 or exchange.status in {401, 429}:
        return []
    result = _result(exchange)
    if want.request_level:
        if rejected_whole(exchange):
            return []
        what = f"{want.rule or 'the request'} ({want.code})" if want.code else "the request"
        if result is not None:
            failed = reported_errors(result)
            named = _ids_of(want, exchange)
            count = len(member(result, "errors") or [])
            # every entry must carry its error (duplicates: one per entry, not one per id)
            applied = [i for i in named if i not in failed] or count < len(named)
            if not applied and failed:
                return [Problem("rejection", f"{what} should be rejected as a whole; the "
                                f"endpoint failed its entries instead", want.per_entry_evidence)]
        return [Problem("rejection", f"{what} should be rejected; the endpoint accepted it "
                        f"(HTTP {exchange.status})", want.reject_evidence)]
    if rejected_whole(exchange):
        code = error_code(exchange)
        return [Problem("rejection", f"the request should be processed entry by entry; the "
                        f"endpoint rejected it as a whole (HTTP {exchange.status}, {code})",
                        want.accept_evidence)]
    if result is None and 200 <= exchange.status < 300:
        return [Problem("rejection", "expected a BulkRegistryOperationResult body",
                        "contract")]
    return []


def _ids_of(want: Expectation, exchange: Exchange) -> list[str]:
    return list(want.entries) or bulk_ids(exchange.request_body)


@check("status", "the status is the one predicted for the same kind of answer", "observed")
def status(exchange: Exchange, want: Expectation) -> list[Problem]:
    if exchange.status == want.status or exchange.status >= 500 or exchange.status in {401, 429}:
        return []
    if want.request_level and rejected_whole(exchange):
        level = decisions.evidence(_PER_ENTRY_DECISION.get(want.rule or "", "error-codes"))
        return [Problem("status", f"expected HTTP {want.status}, got {exchange.status}",
                        weakest(level, want.reject_evidence))]
    result = _result(exchange)
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
def request_error_code(exchange: Exchange, want: Expectation) -> list[Problem]:
    if not want.request_level or not rejected_whole(exchange) or exchange.status in {401, 429}:
        return []
    expected, got = code_name(want.code), error_code(exchange)
    if expected is None or got == expected:
        return []
    level = weakest(want.reject_evidence, decisions.evidence("error-codes"))
    if want.api_version != API_VERSION and "InvalidProtocolVersion" in {got, expected}:
        level = decisions.evidence("older-api-versions")  # refused, or accepted and judged
    return [Problem("request-error-code", f"expected errorCode {expected}, got {got}", level)]


@check("is-successful", "isSuccessful is a boolean, true exactly when no entry failed",
       "contract")
def is_successful(exchange: Exchange, want: Expectation) -> list[Problem]:
    result = _result(exchange)
    if result is None:
        return []
    flag = member(result, "isSuccessful")
    failed = reported_errors(result)
    warned = member(result, "warnings")
    if not isinstance(flag, bool):
        return [Problem("is-successful", f"isSuccessful is {flag!r}, not a boolean", "contract")]
    if flag and failed:
        return [Problem("is-successful", f"isSuccessful is true with errors for "
                        f"{sorted(failed)}", "contract")]
    if not flag and not failed and not warned:
        return [Problem("is-successful", "isSuccessful is false with no error and no warning",
                        "contract")]
    return []


@check("errors", "each entry succeeds or fails as predicted, with the predicted errorCode",
       "documented")
def errors(exchange: Exchange, want: Expectation) -> list[Problem]:
    result = _result(exchange)
    if result is None or want.request_level:
        return []
    failed = reported_errors(result)
    problems = [Problem("errors", f"an error names device {i!r}, which the request does not "
                        f"name", "documented") for i in sorted(set(failed) - set(want.entries))]
    for device_id, claim in want.entries.items():
        got = failed.get(device_id, "") if device_id in failed else None
        if claim.code is None and got is not None:
            problems.append(Problem("errors", f"device {device_id!r}: expected success, got "
                                    f"errorCode {got or '(none)'}", claim.evidence))
        elif claim.code is not None and got is None:
            problems.append(Problem("errors", f"device {device_id!r}: expected errorCode "
                                    f"{claim.code}, the entry succeeded", claim.evidence))
        elif claim.code is not None and code_name(got) != code_name(claim.code) and \
                code_name(got) not in claim.alternatives:
            problems.append(Problem("errors", f"device {device_id!r}: expected errorCode "
                                    f"{claim.code}, got {got}", weakest(
                                        claim.evidence, decisions.evidence("error-codes"))))
    return problems


BULK_CHECKS = ("rejection", "status", "request-error-code", "is-successful", "errors")
SHAPE_CHECKS = ("server-error", "status-declared", "response-schema")


def compare_bulk(exchange: Exchange, want: Expectation) -> dict[str, list[Problem]]:
    """Every bulk check's problems, by check name."""
    return {name: CHECKS[name].function(exchange, want)  # type: ignore[misc]
            for name in BULK_CHECKS}


# -- read-back ---------------------------------------------------------------------------------

# Values the service generates or maintains: never compared with the oracle's.
_GENERATED_DEVICE = frozenset({
    "etag", "generationid", "connectionstateupdatedtime", "statusupdatedtime",
    "lastactivitytime", "cloudtodevicemessagecount", "connectionstate", "devicescope",
})


def _unset(value: Any) -> bool:
    return value is None or value in ([], {}, "")


def _strip_meta(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_meta(v) for k, v in value.items() if not str(k).startswith("$")}
    if isinstance(value, list):
        return [_strip_meta(v) for v in value]
    return value


def _same(got: Any, want: Any) -> bool:
    """Equal, with absent, null and empty alike for unset members (decision unset-members)."""
    if _unset(got) and _unset(want):
        return True
    return bool(_strip_meta(got) == _strip_meta(want))


@check("readback-device", "GET /devices/{id} shows the device as predicted (existence and the "
       "stored fields)", "documented")
def readback_device(got: Any, want: dict[str, Any], *, generated_keys: bool,
                    carried: set[str] | None = None) -> list[Problem]:
    """Differences between a read-back Device and the oracle's. A member the last write did not
    carry (``carried``: lower-cased member names; None: unknown) is held to the hub's choice of
    replace-or-keep only as ``inferred``."""
    return [Problem("readback-device", message, _carried_level(name, carried))
            for name, message in _device_diffs(got, want, generated_keys)]


def _carried_level(name: str, carried: set[str] | None) -> str:
    if carried is None or name.lower() in carried or name == "(body)":
        return "documented"
    return decisions.evidence("update-omitted-members")


def _device_diffs(got: Any, want: dict[str, Any],
                  generated_keys: bool) -> list[tuple[str, str]]:
    if not isinstance(got, dict):
        return [("(body)", "the device body is not a JSON object")]
    diffs = []
    for name in sorted(want):
        if name.lower() in _GENERATED_DEVICE:
            continue
        have = member(got, name)
        if name == "authentication" and generated_keys:
            g = member(have, "type") if isinstance(have, dict) else None
            w = (want.get(name) or {}).get("type")
            if not _same(g, w):
                diffs.append((name, f"authentication.type: expected {w!r}, got {g!r}"))
            continue
        if not _same(have, want.get(name)):
            diffs.append((name, f"{name}: expected {_show(want.get(name))}, got {_show(have)}"))
    return diffs


@check("readback-twin", "GET /twins/{id} shows the twin as predicted (tags and desired "
       "properties)", "documented")
def readback_twin(got: Any, want: dict[str, Any], *, carried: set[str] | None = None,
                  device_carried: set[str] | None = None) -> list[Problem]:
    """Differences between a read-back Twin and the oracle's (``carried``: see
    :func:`readback_device`; tags and desired for the twin, the device's members for status)."""
    if not isinstance(got, dict):
        return [Problem("readback-twin", "the twin body is not a JSON object", "documented")]
    problems = []
    for name in ("deviceId", "tags", "status"):
        if name in want and not _same(member(got, name), want.get(name)):
            level = _carried_level(name, device_carried if name == "status" else carried)
            problems.append(Problem("readback-twin", f"{name}: expected "
                                    f"{_show(want.get(name))}, got {_show(member(got, name))}",
                                    "documented" if name == "deviceId" else level))
    props = member(got, "properties")
    got_desired = member(props, "desired") if isinstance(props, dict) else None
    want_desired = (want.get("properties") or {}).get("desired")
    if not _same(got_desired, want_desired):
        problems.append(Problem("readback-twin", f"properties.desired: expected "
                                f"{_show(_strip_meta(want_desired))}, got "
                                f"{_show(_strip_meta(got_desired))}",
                                _carried_level("desired", carried)))
    return problems


def _show(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"


_declare("auth-missing", "a request without Authorization gets 401", "documented")
_declare("auth-invalid", "a wrongly signed SAS token gets 401", "documented")
_declare("auth-expired", "an expired SAS token gets 401", "documented")
_declare("auth-wrong-policy", "a token naming an unknown policy gets 401", "documented")
_declare("differential", "the offline validator and the endpoint agree (accept/reject, then "
         "the errorCode)", "contract")
_declare("cleanup", "every device the run created is gone at the end", "documented")
_declare("schemathesis", "schemathesis' checks over the service view of openapi.json",
         "contract")


# -- the contract as an endpoint must honour it ------------------------------------------------

_TEMPLATES = (
    (re.compile(r"/devices/?$"), "/devices"),
    (re.compile(r"/devices/[^/]+$"), "/devices/{id}"),
    (re.compile(r"/twins/[^/]+$"), "/twins/{id}"),
)


def _operation(exchange: Exchange) -> dict[str, Any] | None:
    path = urlsplit(exchange.url).path
    paths = service_openapi()["paths"]
    for pattern, template in _TEMPLATES:
        if pattern.search(path) and template in paths:
            op: dict[str, Any] | None = paths[template].get(exchange.method.lower())
            return op
    return None


def declared_statuses(exchange: Exchange) -> set[int]:
    op = _operation(exchange)
    return {int(code) for code in op["responses"]} if op else set()


_VALIDATORS: dict[str, Any] = {}


def _response_validator(exchange: Exchange, status: int) -> Any | None:
    op = _operation(exchange)
    if not op or str(status) not in op["responses"]:
        return None
    key = f"{exchange.method} {op['operationId']} {status}"
    if key not in _VALIDATORS:
        content = op["responses"][str(status)].get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            _VALIDATORS[key] = None
        else:
            wrapped = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                       "components": service_openapi()["components"], **schema}
            _VALIDATORS[key] = jsonschema_rs.validator_for(wrapped)
    return _VALIDATORS[key]


def _representation(value: Any) -> Any:
    """A response body as the contract's schema reads it, whatever representation the endpoint
    chose where the spec leaves it open: members with null dropped, known member names in their
    canonical case, numeric errorCodes as names."""
    if isinstance(value, list):
        return [_representation(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            continue
        name = _CANONICAL_MEMBERS.get(key.lower(), key) if isinstance(key, str) else key
        named = code_name(item) or item if name == "errorCode" and not isinstance(item, str) \
            else item
        out[name] = _representation(named)
    return out


def _member_names(doc: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "properties" and isinstance(value, dict):
                names.update({n.lower(): n for n in value})
            names.update(_member_names(value))
    elif isinstance(doc, list):
        for value in doc:
            names.update(_member_names(value))
    return names


_CONSTRAINTS = ("pattern", "minLength", "maxLength", "minimum", "maximum", "minItems",
                "maxItems", "propertyNames", "enum", "const", "format")
_SERVICE: list[dict[str, Any]] = []


def service_openapi() -> dict[str, Any]:
    """openapi.json as a run holds an endpoint to it: only what the service must do.

    Constraints whose rule is a warning, or whose rejection is not ``contract`` or
    ``documented``, are dropped (schemathesis' negative phase then sends only bodies the service
    must reject); ``additionalProperties: false`` is dropped (the service ignores unknown
    members), every optional member may be null (decision unset-members) and a per-entry
    errorCode a number (decision error-code-form).
    """
    if not _SERVICE:
        doc = copy.deepcopy(bulkreg_schema.openapi())
        _open(doc)
        # decision error-code-form: per-entry errorCodes may be names or numbers
        code = doc["components"]["schemas"]["DeviceRegistryOperationError"]["properties"]
        code["errorCode"] = {"anyOf": [code["errorCode"], {"type": "integer"}]}
        _SERVICE.append(doc)
    return _SERVICE[0]


# Rules judged on the text, not the value: twin-integer-range bounds integer literals only
# (1e20 is accepted). JSON Schema sees numbers, not literals; schemathesis writes a Python float
# beyond the bound as a float literal (-1.7976931348623157e+308), which the service accepts, so
# its bound cannot tell a violation. The kit's own suites send the integer literals.
_LITERAL_RULES = frozenset({"twin-integer-range"})


def _weak(rule: Any) -> bool:
    return isinstance(rule, str) and rule in RULES and (
        RULES[rule].severity != "error" or rejection_evidence(rule) not in FAILING_EVIDENCE
        or rule in _LITERAL_RULES)


def _open(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _open(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    rule = node.get("x-bulkreg-rule")
    if isinstance(rule, str) and _weak(rule):
        for keyword in _CONSTRAINTS:
            node.pop(keyword, None)
    elif isinstance(rule, dict):
        for keyword, named in rule.items():
            if _weak(named):
                node.pop(keyword, None)
    required = set(node.get("required", [])) if isinstance(node.get("required"), list) else set()
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):  # the keyword: member -> schema
            for name, schema in value.items():
                if name.startswith("$"):  # service-maintained ($metadata, $version): unchecked
                    value[name] = {}
                    continue
                if name not in required and isinstance(schema, dict):
                    _nullable(schema)
                _open(schema)
        elif key in {"$defs", "definitions", "schemas"} and isinstance(value, dict):
            for schema in value.values():  # a name -> schema map (a schema may be "properties")
                _open(schema)
        else:
            _open(value)


def _nullable(schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if isinstance(kind, str) and kind != "null":
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    elif "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]


_CANONICAL_MEMBERS = _member_names(bulkreg_schema.openapi()["components"])



def markdown() -> str:
    """The README's table of checks: name, the strongest evidence of its claims, summary."""
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
