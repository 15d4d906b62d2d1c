"""Differential suite: the offline validator's verdict on every payload the run sends agrees with
the endpoint's (accept/reject, and the errorCode).

It adds no requests of its own: it hooks every bulk call the other suites make. The validator and
the oracle agree by construction, so a disagreement is reported as an *endpoint* deviation, with
the evidence of the rule involved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkreg_conformance.checks import code_name, error_code, rule_evidence
from bulkreg_validator import RULES, validate

if TYPE_CHECKING:
    from bulkreg_conformance.client import Exchange
    from bulkreg_conformance.context import Context

__all__ = ["run"]

_STATE_CODES = frozenset({"DeviceNotFound", "DeviceAlreadyExists", "PreconditionFailed",
                          "ModuleNotFound", "ModuleAlreadyExistsOnDevice", "EtagDoesNotMatch"})


def run(ctx: Context) -> None:
    ctx.after_bulk.append(compare)


def compare(ctx: Context, body: bytes, api_version: str, exchange: Exchange,
            rule: str | None) -> None:
    if exchange.status in {401, 429} or exchange.status >= 500 or \
            error_code(exchange) == "InvalidProtocolVersion":
        return  # not a verdict on the payload
    report = validate(body, api_version=api_version)
    request_errors = [f for f in report.errors if RULES[f.rule].scope == "request"]
    entry_errors = [f for f in report.errors if RULES[f.rule].scope == "entry"]
    got = exchange.json()
    result = isinstance(got, dict) and "isSuccessful" in got
    problems: list[str] = []
    evidence = "documented"
    if request_errors:
        want = request_errors[0]
        evidence = rule_evidence(want.rule)
        if result or exchange.status < 400:
            problems.append(f"the validator rejects the request ({want.rule}: {want.code}); "
                            f"the endpoint accepted it (HTTP {exchange.status})")
        elif error_code(exchange) != want.code:
            problems.append(f"the validator predicts errorCode {want.code} ({want.rule}); the "
                            f"endpoint answered {error_code(exchange)}")
    elif not result:
        problems.append(f"the validator accepts the request; the endpoint rejected it as a whole "
                        f"(HTTP {exchange.status}, {error_code(exchange)})")
    else:
        problems += _entry_problems(entry_errors, got, body)
        if entry_errors:
            evidence = rule_evidence(entry_errors[0].rule)
    ctx.judge("differential", problems, evidence=evidence,
              payload=body.decode("utf-8", "replace"), exchanges=[exchange], rule=rule)


def _entry_problems(entry_errors: list[Any], got: dict[str, Any], body: bytes) -> list[str]:
    import json  # noqa: PLC0415 - only on the entry path

    entries = json.loads(body)
    reported = {e.get("deviceId"): code_name(e.get("errorCode")) for e in got.get("errors") or []
                if isinstance(e, dict)}
    problems = []
    flagged = set()
    for finding in entry_errors:
        index = int(finding.pointer.split("/")[1])
        device = entries[index].get("id")
        flagged.add(device)
        if reported.get(device) != finding.code:
            problems.append(f"the validator fails entry {index} ({finding.rule}: "
                            f"{finding.code}); the endpoint answered {reported.get(device)}")
    for device, code in reported.items():
        if device not in flagged and code not in _STATE_CODES:
            problems.append(f"the validator accepts device {device!r}; the endpoint failed it "
                            f"with {code}")
    return problems
