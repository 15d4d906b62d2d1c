"""Evidence levels and the verdict calculus of a conformance run.

Every claim a check makes carries the evidence of *that* claim: its level, and the basis the level
rests on (a rule of the rule table, a row of the behaviour-decisions table, or the check's own
claim). The levels are the validator's (``bulkreg_validator.EVIDENCE_LEVELS``: contract,
documented, observed, inferred) plus ``open``, a choice the published definition leaves to the
service. Breaking a ``contract`` or ``documented`` claim fails the run; an ``observed`` or
``inferred`` one is a deviation (failing only with ``--strict``); an ``open`` one passes.

A claim is only as strong as its weakest part (:func:`weakest`); the basis travels with the level,
so a deviation always names the rule or decision that made it one.
"""

from __future__ import annotations

from typing import NamedTuple

from bulkreg_validator import EVIDENCE_LEVELS, RULES

__all__ = ["FAILING", "LEVELS", "Evidence", "blamed", "of_rule", "verdict", "weakest"]

LEVELS = ("open", *reversed(EVIDENCE_LEVELS))  # weakest first
FAILING = frozenset(EVIDENCE_LEVELS[:2])  # contract, documented


class Evidence(NamedTuple):
    """How sure a claim is (``level``) and what says so (``basis``: ``rule:<id>``,
    ``decision:<key>``, or empty for the check's own claim)."""

    level: str
    basis: str = ""

    @property
    def rank(self) -> int:
        return LEVELS.index(self.level)


CONTRACT = Evidence("contract")
DOCUMENTED = Evidence("documented")


def of_rule(rule: str) -> Evidence:
    """The evidence of rule ``rule`` of the rule table."""
    return Evidence(RULES[rule].evidence, f"rule:{rule}")


def weakest(*claims: Evidence) -> Evidence:
    """The weakest of ``claims`` (the first of equals), basis included."""
    return min(claims, key=lambda e: e.rank)


def blamed(claim: Evidence, part: Evidence) -> Evidence:
    """A claim with a part that broke: as strong as the weaker of the two, resting on the part
    (an errorCode that differs is the errorCode's deviation, however sure the rejection was)."""
    return Evidence(weakest(claim, part).level, part.basis)


def verdict(level: str, strict: bool) -> str:
    """``passed``, ``deviation`` or ``failed`` for a broken claim of ``level``."""
    if level == "open":
        return "passed"
    return "failed" if strict or level in FAILING else "deviation"
