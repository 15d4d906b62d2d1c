"""The conformance checks: names, evidence levels, and the comparisons every suite shares.

A check is a named comparison between what an endpoint answered and what the contract or the
oracle says it must answer. A broken check yields a :class:`Failure` (check name, evidence,
message, payload, the request/response pairs). Its verdict follows its evidence: breaking a
``contract`` or ``documented`` behaviour fails the run; a difference on ``observed`` or
``inferred`` behaviour is a *deviation*, failing only in strict mode (design.md principle 3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jsonschema_rs

import bulkreg_schema
from bulkreg_validator import RULES

from .client import Exchange

__all__ = [
    "CHECKS",
    "NUMERIC_CODES",
    "Check",
    "Failure",
    "code_name",
    "compare_bulk",
    "declared_statuses",
    "error_code",
    "evidence_of",
    "response_schema_problems",
    "verdict",
]

FAILING_EVIDENCE = frozenset({"contract", "documented"})


class Check(NamedTuple):
    name: str
    evidence: str
    summary: str


_ROWS = [
    ("status-declared", "contract", "the status is one the operation declares (openapi.json)"),
    ("response-schema", "contract", "the body matches the declared schema for its status"),
    ("server-error", "contract", "no 5xx for any request the kit sends"),
    ("status", "documented", "the status is the one the oracle predicts"),
    ("is-successful", "documented", "isSuccessful is true exactly when no entry failed"),
    ("errors", "documented", "errors name the failing devices with the predicted errorCode"),
    ("error-operation", "inferred", "an error's operation names the entry's importMode"),
    ("error-code-form", "inferred",
     "per-entry errorCodes are names as in the swagger enum (facts §8: numeric codes occur)"),
    ("request-error-code", "documented",
     "a request-level rejection carries the predicted errorCode (iothub-errorcode / Message)"),
    ("readback-device", "documented",
     "GET /devices/{id} shows the device as the oracle predicts (existence and stored fields)"),
    ("readback-twin", "documented",
     "GET /twins/{id} shows the twin as the oracle predicts (tags and desired properties)"),
    ("etag-changes", "documented", "a write changes the device or twin ETag it affects"),
    ("auth-missing", "documented", "a request without Authorization gets 401 before its body"),
    ("auth-invalid", "documented", "a wrongly signed SAS token gets 401"),
    ("auth-expired", "documented", "an expired SAS token gets 401"),
    ("auth-wrong-policy", "documented", "a token naming an unknown policy gets 401"),
    ("differential", "documented",
     "the offline validator and the endpoint agree (accept/reject and errorCode)"),
    ("schemathesis", "contract", "schemathesis' checks over openapi.json"),
    ("cleanup", "contract", "every device the run created is gone at the end"),
]
CHECKS: dict[str, Check] = {row[0]: Check(*row) for row in _ROWS}
SCHEMATHESIS_PREFIX = "schemathesis:"  # schemathesis' own checks are tallied under this prefix


def evidence_of(name: str) -> str | None:
    """The evidence of check ``name``; schemathesis' checks test the contract (openapi.json)."""
    if name in CHECKS:
        return CHECKS[name].evidence
    if name.startswith(SCHEMATHESIS_PREFIX):
        return CHECKS["schemathesis"].evidence
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
    replay: dict[str, Any] | None = None  # what --replay needs (set by the runner)

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


def verdict(evidence: str, strict: bool) -> str:
    return "failed" if strict or evidence in FAILING_EVIDENCE else "deviation"


def rule_evidence(rule: str | None, default: str = "documented") -> str:
    return RULES[rule].evidence if rule in RULES else default


# Accepting a payload these rules reject breaks a stronger source than the rule's code does:
# SWG says "a device identity may appear only once" (the errorCode itself is only observed).
ACCEPT_EVIDENCE = {"duplicate-id": "contract"}


# -- response shape --------------------------------------------------------------------------

_TEMPLATES = (
    (re.compile(r"/devices$"), "/devices"),
    (re.compile(r"/devices/[^/]+$"), "/devices/{id}"),
    (re.compile(r"/twins/[^/]+$"), "/twins/{id}"),
)


def _operation(exchange: Exchange) -> dict[str, Any] | None:
    path = urlsplit(exchange.url).path
    for pattern, template in _TEMPLATES:
        if pattern.search(path):
            item = bulkreg_schema.openapi()["paths"][template]
            op: dict[str, Any] | None = item.get(exchange.method.lower())
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
            doc = bulkreg_schema.openapi()
            wrapped = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                       "components": doc["components"], **schema}
            _VALIDATORS[key] = jsonschema_rs.validator_for(wrapped)
    return _VALIDATORS[key]


def response_schema_problems(exchange: Exchange) -> list[str]:
    """Why the response does not match its declared schema ([] when it does).

    Numeric per-entry errorCodes are read as their names first: whether the service sends names
    or numbers is open (facts §8); ``error_code_form_problems`` reports them as a deviation.
    """
    validator = _response_validator(exchange, exchange.status)
    if validator is None:
        return []
    body = exchange.json()
    if body is None and exchange.response_body.strip():
        return [f"the {exchange.status} body is not JSON"]
    if body is None:
        return [f"the {exchange.status} response has no body"]
    return [f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(_named_codes(body))][:5]


def _numeric_codes(body: Any) -> list[Any]:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [e["errorCode"] for e in errors if isinstance(e, dict)
            and isinstance(e.get("errorCode"), int) and not isinstance(e["errorCode"], bool)
            and e["errorCode"] in NUMERIC_CODES]


def _named_codes(body: Any) -> Any:
    if not _numeric_codes(body):
        return body
    errors = [{**e, "errorCode": code_name(e["errorCode"])}
              if isinstance(e, dict) and e.get("errorCode") in NUMERIC_CODES else e
              for e in body["errors"]]
    return {**body, "errors": errors}


def error_code_form_problems(exchange: Exchange) -> list[str]:
    """Known numeric per-entry errorCodes (a deviation from the swagger's names)."""
    return [f"errorCode {code} is a number; the swagger enum names it {code_name(code)}"
            for code in _numeric_codes(exchange.json())][:5]


# facts.md §3.3 (CS ErrorCode.cs): import logs and newer error bodies (format B) carry numeric
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
# Names that mean the same for a conformance verdict (facts §8: the per-entry ETag mismatch code
# is PreconditionFailed in the C# mapping, EtagDoesNotMatch in the swagger enum).
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
    """The symbolic errorCode of a request-level error: header first, then Message."""
    return code_name(_raw_error_code(exchange))


def _raw_error_code(exchange: Exchange) -> str | None:
    header = exchange.header("iothub-errorcode") or exchange.header("IotHubErrorCode")
    if header and header != "BulkRegistryOperationFailure":
        return header
    body = exchange.json()
    message = body.get("Message") if isinstance(body, dict) else None
    if isinstance(message, str) and message.startswith("ErrorCode:"):
        return message[len("ErrorCode:"):].split(";", 1)[0]
    if isinstance(message, str):
        try:
            inner = json.loads(message)
        except ValueError:
            return header
        code = inner.get("errorCode") if isinstance(inner, dict) else None
        return str(code) if code is not None else header
    return header


# -- bulk result vs prediction ---------------------------------------------------------------

class Problem(NamedTuple):
    check: str
    message: str
    evidence: str


def _errors_by_id(body: Any) -> dict[str | None, list[dict[str, Any]]] | None:
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return None
    out: dict[str | None, list[dict[str, Any]]] = {}
    for error in body["errors"]:
        if isinstance(error, dict):
            out.setdefault(error.get("deviceId"), []).append(error)
    return out


def compare_bulk(exchange: Exchange, predicted_status: int, predicted_body: Any,
                 rule: str | None = None) -> list[Problem]:
    """Problems of a POST /devices answer against the oracle's prediction."""
    problems: list[Problem] = []
    got = exchange.json()
    request_level = not (isinstance(predicted_body, dict) and "isSuccessful" in predicted_body)
    if exchange.status != predicted_status:
        evidence = rule_evidence(rule) if rule else (
            # 200-vs-400 for a per-entry failure is inferred (facts §3.1, §8)
            "inferred" if {exchange.status, predicted_status} == {200, 400} and not request_level
            and isinstance(got, dict) and "isSuccessful" in got else "documented")
        if rule in ACCEPT_EVIDENCE and exchange.status < 300 <= predicted_status:
            evidence = ACCEPT_EVIDENCE[rule]
        problems.append(Problem("status", f"expected HTTP {predicted_status}, got "
                                f"{exchange.status}", evidence))
    if request_level:
        if isinstance(got, dict) and "isSuccessful" in got and exchange.status < 500:
            problems.append(Problem("status", "the request should be rejected as a whole; the "
                                    "endpoint processed its entries",
                                    ACCEPT_EVIDENCE.get(rule or "", rule_evidence(rule))))
        want = error_code_of(predicted_body)
        have = error_code(exchange)
        if exchange.status == predicted_status and want and have != want:
            problems.append(Problem("request-error-code",
                                    f"expected errorCode {want}, got {have}",
                                    rule_evidence(rule)))
        return problems
    if not isinstance(got, dict) or "isSuccessful" not in got:
        problems.append(Problem("is-successful", "expected a BulkRegistryOperationResult body",
                                "contract"))
        return problems
    if got.get("isSuccessful") is not predicted_body.get("isSuccessful"):
        problems.append(Problem("is-successful", f"expected isSuccessful "
                                f"{predicted_body.get('isSuccessful')}, got "
                                f"{got.get('isSuccessful')!r}", "documented"))
    problems += _compare_errors(_errors_by_id(got) or {}, _errors_by_id(predicted_body) or {})
    return problems


def error_code_of(body: Any) -> str | None:
    message = body.get("Message") if isinstance(body, dict) else None
    if isinstance(message, str) and message.startswith("ErrorCode:"):
        return message[len("ErrorCode:"):].split(";", 1)[0]
    return None


def _compare_errors(got: dict[str | None, list[dict[str, Any]]],
                    want: dict[str | None, list[dict[str, Any]]]) -> list[Problem]:
    problems: list[Problem] = []
    missing = sorted(str(i) for i in set(want) - set(got))
    extra = sorted(str(i) for i in set(got) - set(want))
    if missing:
        problems.append(Problem("errors", f"no error reported for device(s) {missing}",
                                "documented"))
    if extra:
        problems.append(Problem("errors", f"unexpected error for device(s) {extra}",
                                "documented"))
    for device_id in sorted(set(got) & set(want), key=str):
        g, w = got[device_id][0], want[device_id][0]
        if code_name(g.get("errorCode")) != code_name(w.get("errorCode")):
            # the per-entry code of an ETag mismatch is inferred (facts §8)
            evidence = "inferred" if w.get("errorCode") == "PreconditionFailed" else "documented"
            problems.append(Problem("errors", f"device {device_id!r}: expected errorCode "
                                    f"{w.get('errorCode')}, got {g.get('errorCode')!r}",
                                    evidence))
        if w.get("operation") and g.get("operation") != w.get("operation"):
            problems.append(Problem("error-operation", f"device {device_id!r}: expected "
                                    f"operation {w.get('operation')!r}, got "
                                    f"{g.get('operation')!r}", "inferred"))
    return problems


# -- read-back -------------------------------------------------------------------------------

# Values the service generates or maintains: never compared with the oracle's.
_GENERATED_DEVICE = frozenset({
    "etag", "generationId", "connectionStateUpdatedTime", "statusUpdatedTime",
    "lastActivityTime", "cloudToDeviceMessageCount", "connectionState", "deviceScope",
})
_GENERATED_TWIN = frozenset({
    "etag", "version", "deviceEtag", "statusUpdateTime", "lastActivityTime",
    "connectionState", "cloudToDeviceMessageCount", "deviceScope", "modelId",
})


def _strip_meta(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_meta(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_meta(v) for v in value]
    return value


def compare_device(got: Any, want: Any, generated_keys: bool) -> list[str]:
    """Differences between a read-back Device and the oracle's (generated values ignored)."""
    if not isinstance(got, dict):
        return ["the device body is not a JSON object"]
    diffs = []
    for name in sorted(set(want) - _GENERATED_DEVICE):
        if name == "authentication" and generated_keys:
            g = (got.get(name) or {}).get("type") if isinstance(got.get(name), dict) else None
            if g != (want.get(name) or {}).get("type"):
                diffs.append(f"authentication.type: expected "
                             f"{(want.get(name) or {}).get('type')!r}, got {g!r}")
            continue
        if _strip_meta(got.get(name)) != _strip_meta(want.get(name)):
            diffs.append(f"{name}: expected {_show(want.get(name))}, got {_show(got.get(name))}")
    return diffs


def compare_twin(got: Any, want: Any) -> list[str]:
    if not isinstance(got, dict):
        return ["the twin body is not a JSON object"]
    diffs = []
    for name in ("deviceId", "tags", "status"):
        if name in want and _strip_meta(got.get(name)) != _strip_meta(want.get(name)):
            diffs.append(f"{name}: expected {_show(want.get(name))}, got {_show(got.get(name))}")
    want_desired = _strip_meta((want.get("properties") or {}).get("desired"))
    got_props = got.get("properties") if isinstance(got.get("properties"), dict) else {}
    got_desired = _strip_meta((got_props or {}).get("desired"))
    if want_desired != got_desired:
        diffs.append(f"properties.desired: expected {_show(want_desired)}, got "
                     f"{_show(got_desired)}")
    return diffs


def _show(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"


def names() -> Iterable[str]:
    return CHECKS.keys()
