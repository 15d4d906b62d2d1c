"""The differential comparison: the offline validator's verdict on every bulk call a run sends
agrees with the endpoint's (accept or reject, then the errorCode).

An observer of the session's bulk calls (:func:`observe`), not a suite: it sends nothing of its
own. Each claim carries its own evidence: that a payload the validator rejects is not accepted
has the rule's rejection evidence; that the endpoint names the same errorCode is at most
``observed`` (decision error-codes); whether an invalid entry fails alone or takes its request
with it is open (decision request-or-entry), and a per-entry failure of an entry the validator
rejects at request level may carry any code. Errors that depend on the registry's state (not
found, already exists, etag mismatch) are the oracle's business, not the validator's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bulkreg_conformance import decisions
from bulkreg_conformance.answers import (
    code_name,
    error_code,
    failed_entries,
    rejected_whole,
    result_of,
)
from bulkreg_conformance.checks import Problem
from bulkreg_conformance.evidence import Evidence, blamed, weakest
from bulkreg_conformance.expectation import (
    API_VERSION,
    accept_evidence,
    entry_ids,
    index_of,
    rejection_evidence,
    validated,
)
from bulkreg_validator import RULES

if TYPE_CHECKING:
    from bulkreg_conformance.client import Exchange
    from bulkreg_conformance.session.step import Mirror

__all__ = ["compare", "observe"]


def observe(mirror: Mirror, body: bytes, api_version: str, exchange: Exchange,
            rule: str | None, bounds: Mapping[str, Evidence] | None = None) -> None:
    """Judge one bulk call (``bounds``: the evidence of the rules whose valid side the call's
    entries exercise, which bounds the claim that the endpoint must accept them)."""
    problems = compare(body, api_version, exchange)
    if bounds:
        problems = [p._replace(evidence=weakest(p.evidence, *bounds.values()))
                    if "the validator accepts" in p.message else p for p in problems]
    mirror.ledger.judge("differential", problems, payload=body.decode("utf-8", "replace"),
                        exchanges=[exchange], rule=rule)


def compare(body: bytes, api_version: str, exchange: Exchange) -> list[Problem]:
    """Where the endpoint's answer to ``body`` contradicts the validator's verdict."""
    if exchange.status in {401, 403, 429} or exchange.status >= 500:
        return []  # not a verdict on the payload
    if api_version != API_VERSION and error_code(exchange) == "InvalidProtocolVersion":
        return []  # decision older-api-versions
    report = validated(body, api_version)
    entries = _entries(body)
    request = next((f for f in report.errors if RULES[f.rule].scope == "request"), None)
    result = result_of(exchange)
    if request is not None and (result is None or index_of(request) is None):
        return _rejected(request.rule, request.code, rejection_evidence(
            request.rule, _at(entries, index_of(request))), exchange, result is not None)
    if rejected_whole(exchange):
        level = accept_evidence(report, entries, api_version)
        return [Problem("differential", f"the validator accepts the request; the endpoint "
                        f"rejected it as a whole (HTTP {exchange.status}, "
                        f"{error_code(exchange)})", level)]
    if result is None:
        return []
    failed = failed_entries(result, list(entry_ids(entries))).failed
    if request is not None and len(failed) == len(entries):
        return []  # every entry failed: the request-level answer as a result (request-or-entry)
    problems = []
    for finding in report.errors:
        index = index_of(finding)
        if index is None:
            continue
        entry = _at(entries, index)
        what = f"the validator fails entry {index} ({finding.rule}: {finding.code})"
        if index not in failed:
            problems.append(Problem("differential", f"{what}; the endpoint applied it",
                                    rejection_evidence(finding.rule, entry)))
        elif RULES[finding.rule].scope == "entry" and \
                code_name(failed[index]) != code_name(finding.code):
            problems.append(Problem("differential", f"{what}; the endpoint answered "
                                    f"{failed[index]}", blamed(
                                        rejection_evidence(finding.rule, entry),
                                        decisions.evidence("error-codes"))))
    return problems


def _rejected(rule: str, code: str | None, level: Any, exchange: Exchange,
              result: bool) -> list[Problem]:
    if result or exchange.status < 400:
        return [Problem("differential", f"the validator rejects the request ({rule}: {code}); "
                        f"the endpoint accepted it (HTTP {exchange.status})", level)]
    have = error_code(exchange)
    if code and have != code:
        return [Problem("differential", f"the validator predicts errorCode {code} ({rule}); the "
                        f"endpoint answered {have}", blamed(
                            level, decisions.evidence("error-codes")))]
    return []


def _at(entries: list[Any], index: int | None) -> Any:
    return entries[index] if index is not None and index < len(entries) else None


def _entries(body: bytes) -> list[Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return []
    return value if isinstance(value, list) else []
