"""The ledger of a run: tallies per check, failures with their reproducers, the replay trail.

:meth:`Ledger.judge` turns a check's problems into a pass or into failures: a problem whose
claim is ``open`` passes; the others are grouped per check, the weakest evidence of a group
deciding its verdict (failed, or a deviation unless ``--strict``). Hypothesis-driven suites hold
failures back while an example runs (:meth:`Ledger.capture`) and report only the shrunk one.
The trail is the current episode's bulk calls: what a failure's replay re-sends.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkreg_conformance.checks import Problem, evidence_of
from bulkreg_conformance.client import Exchange
from bulkreg_conformance.evidence import Evidence, verdict

__all__ = ["MAX_DETAILED", "Failure", "Ledger", "Tally"]

MAX_DETAILED = 3  # failures kept in full per check; the rest are counted
REPLAY_VERSION = 2


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    deviation: int = 0


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
    replay: dict[str, Any] | None = None  # what --replay needs
    basis: str = ""  # what the evidence rests on: rule:<id>, decision:<key> or the check's own

    def __post_init__(self) -> None:  # a failure keeps at most KEEP_BYTES of each body
        self.exchanges = [e.kept() for e in self.exchanges]

    def verdict(self, strict: bool) -> str:
        return verdict(self.evidence, strict)

    def to_dict(self, strict: bool) -> dict[str, Any]:
        return {
            "check": self.check,
            "verdict": self.verdict(strict),
            "evidence": self.evidence,
            "basis": self.basis,
            "rule": self.rule,
            "suite": self.suite,
            "message": self.message,
            "payload": self.payload,
            "exchanges": [e.to_dict() for e in self.exchanges],
            "curl": [e.curl() for e in self.exchanges],
        }


class Ledger:
    """Tallies, failures and the replay trail of one run."""

    def __init__(self, *, strict: bool, prefix: str, api_version: str) -> None:
        self.strict = strict
        self.prefix = prefix
        self.tally: dict[str, Tally] = {}
        self.failures: list[Failure] = []
        self.suppressed: Counter[str] = Counter()
        self.suite = ""
        self.trail: list[dict[str, Any]] = []  # this episode's bulk calls (for replays)
        self.api_version = api_version  # of the episode's last call
        self._held: list[Failure] | None = None

    # -- verdicts ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[Failure]]:
        """Hold back failures (hypothesis reports only the shrunk example's); passes count."""
        held: list[Failure] = []
        self._held = held
        try:
            yield held
        finally:
            self._held = None

    def passed(self, check: str) -> None:
        self.tally.setdefault(check, Tally()).passed += 1

    def fail(self, failure: Failure) -> None:
        failure.suite = failure.suite or self.suite
        if self._held is not None:
            self._held.append(failure)
            return
        tally = self.tally.setdefault(failure.check, Tally())
        if failure.verdict(self.strict) == "failed":
            tally.failed += 1
        else:
            tally.deviation += 1
        if sum(1 for f in self.failures if f.check == failure.check) >= MAX_DETAILED:
            self.suppressed[failure.check] += 1
            return
        self.failures.append(failure)

    def judge(self, check: str, problems: Sequence[Problem | str], *,
              evidence: Evidence | None = None, payload: str | None = None,
              exchanges: Sequence[Exchange] = (), rule: str | None = None) -> bool:
        """Record ``check`` as passed, or one failure per distinct check among ``problems``
        (plain strings are claims of ``check`` with ``evidence``, by default its strongest).
        A problem whose claim is ``open`` (a choice the spec leaves open) counts as passed."""
        default = evidence or Evidence(evidence_of(check) or "contract")
        found = [p if isinstance(p, Problem) else Problem(check, p, default) for p in problems]
        found = [p for p in found if p.evidence.level != "open"]
        if not found:
            self.passed(check)
            return True
        by_check: dict[str, list[Problem]] = {}
        for problem in found:
            by_check.setdefault(problem.check, []).append(problem)
        for name, group in by_check.items():
            worst = max(group, key=lambda g: g.evidence.rank)
            self.fail(Failure(name, worst.evidence.level, "; ".join(g.message for g in group),
                              payload=payload, exchanges=list(exchanges), rule=rule,
                              replay=self.replay_of(rule, name), basis=worst.evidence.basis))
        return False

    # -- episodes: what a replay re-sends ---------------------------------------------------

    def episode(self) -> None:
        """Start a new episode: the bulk calls from here on are what a failure's replay re-sends
        (in a fresh prefix), so an episode must use ids of its own."""
        self.trail = []

    def replay_of(self, rule: str | None, check: str) -> dict[str, Any]:
        return {"version": REPLAY_VERSION, "check": check, "rule": rule, "prefix": self.prefix,
                "api_version": self.api_version, "steps": [dict(s) for s in self.trail],
                "payload": self.trail[-1].get("raw") if self.trail else None}

    def remember_read(self, device_id: str, device: bool, twin: bool) -> None:
        """A read-back after the episode's last call: a replay reads the same."""
        if self.trail:
            self.trail[-1].setdefault("reads", []).append([device_id, device, twin])

    def remember(self, entries: Any, raw: bytes | None, rule: str | None, readback: bool,
                 api_version: str | None) -> None:
        step: dict[str, Any] = {"rule": rule, "readback": readback, "api_version": api_version}
        if raw is not None:
            step["raw"] = raw.decode("utf-8", "surrogateescape")
        else:
            step["entries"] = entries
        self.trail.append(step)
