"""What an endpoint must answer to one bulk call, each part with the evidence of that part.

:func:`expect` joins the oracle's prediction (status, body, next state), the validator's findings
on the body, the rule table and the behaviour decisions into an :class:`Expectation`:

- a request the oracle rejects as a whole carries the evidence that it must not be applied
  (``reject_evidence``: the rule's, or a decision linked to the rule) and, where the decisions
  allow an endpoint to fail only the invalid entries instead (decision request-or-entry), that
  alternative answer as an expectation of its own (``per_entry``): the invalid entries fail, the
  others are applied as the oracle predicts for them alone;
- a request processed entry by entry carries one :class:`EntryClaim` per entry (by index: an
  entry without an id is still an entry), each with the evidence that the entry succeeds or
  fails as predicted, weakened by what the prediction rests on (an omitted ``importMode``, a
  ``moduleId``, a warning, a device whose state the run cannot know).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import bulkreg_schema
from bulkreg_conformance import decisions
from bulkreg_conformance.answers import code_name, member
from bulkreg_conformance.evidence import CONTRACT, DOCUMENTED, Evidence, of_rule, weakest
from bulkreg_conformance.oracle import API_VERSIONS, Registry, check_bulk
from bulkreg_validator import RULES, Finding, Report, validate

__all__ = [
    "EntryClaim",
    "Expectation",
    "accept_evidence",
    "entry_ids",
    "expect",
    "index_of",
    "rejection_evidence",
    "validated",
]


@functools.lru_cache(maxsize=4)
def validated(body: bytes, api_version: str) -> Report:
    """The validator's report on a bulk body; the expectation and the differential comparison
    of one call ask for it in turn, so it is kept for the last four bodies (a Report is
    immutable)."""
    return validate(body, api_version=api_version)


API_VERSION = bulkreg_schema.API_VERSION
ANY_CODE = frozenset({"*"})  # an EntryClaim's alternatives: the entry fails, with any errorCode
_CONTRACT = bulkreg_schema.contract()
_KNOWN = bulkreg_schema.load("ExportImportDevice")["properties"]
_KNOWN_LOWER = frozenset(name.lower() for name in _KNOWN)
# importModes of import jobs the swagger's bulk enum lacks (createOrUpdate*)
_EXTENDED_MODES = frozenset(set(_CONTRACT.import_modes) - set(_CONTRACT.bulk_modes))
# SWG: "a device identity may appear only once" (the errorCode itself is only observed).
_CONTRACT_REJECTIONS = frozenset({"duplicate-id"})


class EntryClaim(NamedTuple):
    position: int  # the entry's index in the request
    device_id: str | None
    code: str | None  # the errorCode the oracle predicts for the entry; None: it succeeds
    evidence: Evidence  # that the entry succeeds or fails as predicted
    alternatives: frozenset[str] = frozenset()  # other codes as right (decision error-codes)
    mode: str | None = None  # the entry's importMode as the contract spells it
    module: bool = False  # the entry names a moduleId


@dataclass(frozen=True)
class Expectation:
    """What an endpoint must answer to one bulk call, each part with its evidence."""

    status: int
    body: Any  # the oracle's answer
    request_level: bool  # the oracle rejects the request as a whole
    rule: str | None  # the rule behind a request-level rejection (or the step's own rule)
    reject_evidence: Evidence  # request_level: that the endpoint must not apply the request
    per_entry_evidence: Evidence  # request_level: that failing its entries is not enough
    accept_evidence: Evidence  # otherwise: that the request must not be rejected as a whole
    entries: tuple[EntryClaim, ...]  # otherwise: one claim per entry
    ids: tuple[str | None, ...]  # the request's entry ids (None where an entry has none)
    api_version: str
    next_state: Registry  # the oracle after this answer
    per_entry: Expectation | None = None  # request_level: the per-entry answer allowed instead

    @property
    def code(self) -> str | None:
        message = member(self.body, "Message")
        if isinstance(message, str) and message.startswith("ErrorCode:"):
            return message[len("ErrorCode:"):].split(";", 1)[0]
        return None

    def claim(self, position: int) -> EntryClaim | None:
        return next((c for c in self.entries if c.position == position), None)


def index_of(finding: Finding | None) -> int | None:
    """The entry a finding points into, or None (the whole body)."""
    if finding is None or not finding.pointer.startswith("/"):
        return None
    head = finding.pointer.split("/")[1]
    return int(head) if head.isdigit() else None


def _entry(entries: list[Any], finding: Finding | None) -> Any:
    index = index_of(finding)
    return entries[index] if index is not None and index < len(entries) else None


def entry_ids(entries: Any) -> tuple[str | None, ...]:
    """The id of each entry of a parsed body (None where an entry has no usable id)."""
    listed = entries if isinstance(entries, list) else []
    return tuple(e["id"] if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"]
                 else None for e in listed)


def rejection_evidence(rule: str | None, entry: Any = None) -> Evidence:
    """Evidence that an endpoint must not accept what ``rule`` rejects (in ``entry``)."""
    if rule is None or rule not in RULES:
        return DOCUMENTED
    mode = member(entry, "importMode")
    if rule == "enum-value" and _CONTRACT.canonical_mode(mode) in _EXTENDED_MODES:
        return decisions.evidence("create-or-update-modes")
    decision = decisions.linked("rejection", rule)
    if decision is not None:
        return decisions.evidence(decision)
    if rule in _CONTRACT_REJECTIONS:
        return Evidence("contract", f"rule:{rule}")
    return of_rule(rule)


def _warning_evidence(rule: str, entry: Any) -> Evidence:
    if rule == "unknown-property" and isinstance(entry, dict) and any(
            isinstance(k, str) and k.lower() in _KNOWN_LOWER and k not in _KNOWN for k in entry):
        return decisions.evidence("member-casing")
    decision = decisions.linked("warning", rule)
    if decision is not None:
        return decisions.evidence(decision)
    return of_rule(rule) if rule in RULES else Evidence("inferred", f"rule:{rule}")


def accept_evidence(report: Report, entries: Any, api_version: str) -> Evidence:
    """Evidence that an endpoint must not reject this body as a whole: ``contract`` for a plain
    valid body, weaker when it relies on an older api-version, a warning (an omitted
    ``importMode``, an unknown member, …) or holds entries that fail on their own."""
    listed = entries if isinstance(entries, list) else []
    level = decisions.evidence("older-api-versions") if api_version != API_VERSION \
        else CONTRACT
    for finding in report.findings:
        index = index_of(finding)
        if finding.severity != "error" and index is not None and index < len(listed):
            level = weakest(level, _warning_evidence(finding.rule, listed[index]))
    if any(f.severity == "error" for f in report.findings):
        level = weakest(level, decisions.evidence("request-or-entry"))
    if any(isinstance(e, dict) and member(e, "importMode") is None for e in listed):
        level = weakest(level, decisions.evidence("omitted-import-mode"))
    return level


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None


def expect(oracle: Registry, body: bytes, api_version: str, *, step_rule: str | None = None,
           unknown: frozenset[str] = frozenset(),
           bounds: Mapping[str, Evidence] | None = None) -> Expectation:
    """The expectation for one bulk call ``body`` (as the oracle sees it) against ``oracle``'s
    state; ``unknown``: ids whose state at the endpoint the run cannot know; ``bounds``: the
    evidence of the rule whose valid side an entry (by id) exercises, which bounds the claims
    on that entry and on the request as a whole (an over-strict endpoint breaks only that)."""
    want = _expect(oracle, body, api_version, step_rule, unknown)
    if not bounds or want.request_level:
        return want
    claims = tuple(c._replace(evidence=weakest(c.evidence, bounds[c.device_id]))
                   if c.device_id is not None and c.device_id in bounds else c
                   for c in want.entries)
    return replace(want, entries=claims,
                   accept_evidence=weakest(want.accept_evidence, *bounds.values()))


def _expect(oracle: Registry, body: bytes, api_version: str, step_rule: str | None,
            unknown: frozenset[str]) -> Expectation:
    checked = check_bulk(body, api_version=api_version)
    report = validated(body, api_version)
    entries = checked.entries if checked.rejection is None else _parsed(body)
    if api_version not in API_VERSIONS:  # the HTTP layer refuses it before the model sees it
        error = oracle.error(400, "InvalidProtocolVersion", "BadRequest")
        return _request_level(report, entries, 400, error.body, oracle, api_version, step_rule)
    outcome = oracle.outcome(oracle.plan_bulk(checked))
    if not (isinstance(outcome.body, dict) and "isSuccessful" in outcome.body):
        want = _request_level(report, entries, outcome.status, outcome.body, oracle,
                              api_version, step_rule)
        alternative = _per_entry(oracle, report, entries, api_version, step_rule, unknown)
        return replace(want, per_entry=alternative) if alternative else want
    return _entry_level(report, entries, outcome.status, outcome.body, outcome.next_state,
                        api_version, step_rule, unknown, oracle)


def _request_level(report: Report, entries: Any, status: int, body: Any, oracle: Registry,
                   api_version: str, step_rule: str | None) -> Expectation:
    findings = list(report.findings)
    rejection = next((f for f in findings if f.severity == "error"
                      and RULES[f.rule].scope == "request"), None)
    rule = rejection.rule if rejection is not None else step_rule
    listed = entries if isinstance(entries, list) else []
    reject = rejection_evidence(rule, _entry(listed, rejection))
    per_entry = decisions.evidence(decisions.linked("per-entry", rule) or "request-or-entry")
    return Expectation(status, body, True, rule, reject, per_entry, CONTRACT, (),
                       entry_ids(listed), api_version, oracle)


def _per_entry(oracle: Registry, report: Report, entries: Any, api_version: str,
               step_rule: str | None, unknown: frozenset[str]) -> Expectation | None:
    """The answer that fails only the invalid entries (decision request-or-entry), when every
    error is an entry's and its rule leaves the choice open; None otherwise."""
    if not isinstance(entries, list) or api_version not in API_VERSIONS:
        return None
    invalid: dict[int, Finding] = {}
    for finding in report.errors:
        index = index_of(finding)
        if index is None or index >= len(entries) or \
                decisions.linked("per-entry", finding.rule) is not None:
            return None
        invalid.setdefault(index, finding)
    if not invalid:
        return None
    kept = [i for i in range(len(entries)) if i not in invalid]
    rest = json.dumps([entries[i] for i in kept], ensure_ascii=False).encode(
        "utf-8", "surrogatepass")
    if kept:
        alone = expect(oracle, rest, api_version, step_rule=step_rule, unknown=unknown)
        if alone.request_level:  # the valid entries alone would be refused: no such answer
            return None
    else:
        alone = None
    claims = [c._replace(position=kept[c.position]) for c in (alone.entries if alone else ())]
    for index, finding in invalid.items():
        entry = entries[index]
        device_id = entry.get("id") if isinstance(entry, dict) and \
            isinstance(entry.get("id"), str) and entry.get("id") else None
        # that it fails is the rule's claim; which errorCode a per-entry failure carries, no
        # source says (the codes of the rule table are request-level ones): any code
        claims.append(EntryClaim(index, device_id, finding.code,
                                 rejection_evidence(finding.rule, entry), ANY_CODE,
                                 _CONTRACT.canonical_mode(member(entry, "importMode")),
                                 bool(member(entry, "moduleId"))))
    claims.sort(key=lambda c: c.position)
    state = alone.next_state if alone else oracle
    return Expectation(400, None, False, step_rule, CONTRACT, CONTRACT,
                       decisions.evidence("request-or-entry"), tuple(claims), entry_ids(entries),
                       api_version, state)


def _entry_level(report: Report, entries: Any, status: int, body: Any, next_state: Registry,
                 api_version: str, step_rule: str | None, unknown: frozenset[str],
                 oracle: Registry) -> Expectation:
    listed = entries if isinstance(entries, list) else []
    findings = list(report.findings)
    per_index: dict[int, Evidence] = {}
    for finding in findings:
        index = index_of(finding)
        if finding.severity != "error" and index is not None and index < len(listed):
            level = _warning_evidence(finding.rule, listed[index])
            per_index[index] = weakest(per_index.get(index, DOCUMENTED), level)
    predicted = [(e.get("deviceId"), code_name(e.get("errorCode")))
                 for e in body.get("errors") or [] if isinstance(e, dict)]
    claims: list[EntryClaim] = []
    for index, entry in enumerate(listed):
        device_id = entry.get("id") if isinstance(entry, dict) and \
            isinstance(entry.get("id"), str) else None
        if device_id is None:
            continue
        code = next((c for i, c in predicted if i == device_id), None)
        level = per_index.get(index, DOCUMENTED)
        if device_id in unknown:
            level = Evidence("open", "unknown-state")
        mode = entry.get("importMode")
        if mode is None:
            level = weakest(level, decisions.evidence("omitted-import-mode"))
        elif _CONTRACT.canonical_mode(mode) in _EXTENDED_MODES:
            level = weakest(level, decisions.evidence("create-or-update-modes"))
        module = entry.get("moduleId") if isinstance(entry.get("moduleId"), str) else None
        if module:
            level = weakest(level, decisions.evidence("module-entries"))
        error = next((f for f in findings if f.severity == "error" and index_of(f) == index),
                     None)
        if error is not None:
            level = weakest(level, rejection_evidence(error.rule, entry))
        claims.append(EntryClaim(index, device_id, code, level,
                                 _alternatives(code, error, module, device_id, oracle),
                                 _CONTRACT.canonical_mode(mode), bool(module)))
    return Expectation(status, body, False, step_rule, CONTRACT, CONTRACT,
                       accept_evidence(report, listed, api_version), tuple(claims),
                       entry_ids(listed), api_version, next_state)


def _alternatives(code: str | None, error: Finding | None, module: str | None, device_id: str,
                  oracle: Registry) -> frozenset[str]:
    """Other errorCodes as right as the predicted one (decision error-codes): an entry with two
    problems may be answered for either (an IfMatch entry without its etag, for a device that
    does not exist); a module entry whose device or module is missing names either."""
    if code is None:
        return frozenset()
    out: set[str] = set()
    if error is not None and oracle.device(device_id, module) is None:
        out.add("ModuleNotFound" if module else "DeviceNotFound")
    if module and code in {"DeviceNotFound", "ModuleNotFound"}:
        out |= {"DeviceNotFound", "ModuleNotFound"}
    return frozenset(out - {code})
