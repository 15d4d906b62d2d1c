"""Differential suite: the offline validator's verdict on every payload the run sends agrees with
the endpoint's (accept or reject, then the errorCode).

It adds no requests of its own: it hooks every bulk call the other suites make. Each claim
carries its own evidence: that a payload the validator rejects is not accepted has the rule's
rejection evidence; that the endpoint names the same errorCode is at most ``observed``
(decision error-codes); whether an invalid entry fails alone or takes its request with it is
open (decision request-or-entry). Errors that depend on the registry's state (not found, already
exists, etag mismatch) are the oracle's business, not the validator's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bulkreg_conformance import decisions
from bulkreg_conformance.checks import (
    API_VERSION,
    Problem,
    accept_evidence,
    code_name,
    entry_at,
    error_code,
    rejected_whole,
    rejection_evidence,
    reported_errors,
    weakest,
)
from bulkreg_validator import RULES, validate

if TYPE_CHECKING:
    from bulkreg_conformance.client import Exchange
    from bulkreg_conformance.context import Context

__all__ = ["compare", "run"]


def run(ctx: Context) -> None:
    ctx.after_bulk.append(hook)


def hook(ctx: Context, body: bytes, api_version: str, exchange: Exchange,
         rule: str | None) -> None:
    ctx.judge("differential", compare(body, api_version, exchange),
              payload=body.decode("utf-8", "replace"), exchanges=[exchange], rule=rule)


def compare(body: bytes, api_version: str, exchange: Exchange) -> list[Problem]:
    """Where the endpoint's answer to ``body`` contradicts the validator's verdict."""
    if exchange.status in {401, 429} or exchange.status >= 500:
        return []  # not a verdict on the payload
    if api_version != API_VERSION and error_code(exchange) == "InvalidProtocolVersion":
        return []  # decision older-api-versions
    report = validate(body, api_version=api_version)
    request = next((f for f in report.errors if RULES[f.rule].scope == "request"), None)
    got = exchange.json()
    result = got if isinstance(got, dict) and "isSuccessful" in got else None
    if request is not None:
        level = rejection_evidence(request.rule, entry_at(_entries(body), request))
        return _rejected(request.rule, request.code, level, exchange, result)
    if rejected_whole(exchange):
        level = accept_evidence(report, _entries(body), api_version)
        return [Problem("differential", f"the validator accepts the request; the endpoint "
                        f"rejected it as a whole (HTTP {exchange.status}, "
                        f"{error_code(exchange)})", level)]
    if result is None:
        return []
    reported = reported_errors(result)
    problems = []
    for finding in report.errors:
        index = int(finding.pointer.split("/")[1])
        entry = entry_at(_entries(body), finding)
        device = entry.get("id") if isinstance(entry, dict) else None
        if device not in reported:
            problems.append(Problem("differential", f"the validator fails entry {index} "
                                    f"({finding.rule}: {finding.code}); the endpoint applied it",
                                    rejection_evidence(finding.rule, entry)))
        elif code_name(reported[device]) != code_name(finding.code):
            problems.append(Problem("differential", f"the validator fails entry {index} "
                                    f"({finding.rule}: {finding.code}); the endpoint answered "
                                    f"{reported[device]}", weakest(
                                        rejection_evidence(finding.rule, entry),
                                        decisions.evidence("error-codes"))))
    return problems


def _rejected(rule: str, code: str | None, level: str, exchange: Exchange,
              result: dict[str, object] | None) -> list[Problem]:
    if result is not None:
        if result.get("isSuccessful") is False and reported_errors(result):
            return [Problem("differential", f"the validator rejects the request ({rule}); the "
                            f"endpoint failed entries instead", weakest(
                                level, decisions.evidence("request-or-entry")))]
        return [Problem("differential", f"the validator rejects the request ({rule}: {code}); "
                        f"the endpoint accepted it (HTTP {exchange.status})", level)]
    if exchange.status < 400:
        return [Problem("differential", f"the validator rejects the request ({rule}: {code}); "
                        f"the endpoint accepted it (HTTP {exchange.status})", level)]
    have = error_code(exchange)
    if code and have != code:
        return [Problem("differential", f"the validator predicts errorCode {code} ({rule}); the "
                        f"endpoint answered {have}", weakest(
                            level, decisions.evidence("error-codes")))]
    return []


def _entries(body: bytes) -> list[Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return []
    return value if isinstance(value, list) else []
