"""The mutation catalogue (``catalogue.py``): every broken hub fails the run naming the right
check and nothing else; every rule of the rule table has a lax and a strict defect unless the
catalogue says why not; the faithful hub passes the same run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bulkreg_conformance.coverage import BULK_RULES
from bulkreg_conformance.runner import Result, Settings, run
from bulkreg_validator import RULES

from .catalogue import CATALOGUE, UNTESTABLE, Mutant
from .conftest import Served


def _run(served: Served) -> Result:
    # the hub's answers are judged, not its HTTP: the app in process (bulkreg_conformance.wsgi)
    return run(Settings(endpoint=served.url, connection_string=served.connection_string,
                        read_connection_string=served.read_connection_string,
                        suites=("auth", "property"), max_examples=0, seed=4,
                        time_budget=60.0, app=served.app))


def test_the_faithful_hub_passes_the_catalogue_run(serve: Callable[..., Served]) -> None:
    result = _run(serve())
    assert result.failures == [], [f.to_dict(False) for f in result.failures]
    assert result.verdict == "PASS", result.coverage.missing()


def _rule(mutant: Mutant) -> str:
    return mutant.name.split(":", 1)[0]


def test_every_rule_has_a_lax_and_a_strict_defect() -> None:
    errors = {r for r in BULK_RULES if RULES[r].severity == "error"}
    lax = {_rule(m) for m in CATALOGUE if m.kind == "lax"}
    strict = {_rule(m) for m in CATALOGUE if m.kind == "strict"}
    assert errors - lax <= set(UNTESTABLE), sorted(errors - lax - set(UNTESTABLE))
    assert (lax | strict) - set(RULES) == set()
    # the valid side: every limit the issue names, and the rules of every class of evidence
    assert {"twin-depth", "twin-key-length", "twin-string-length", "twin-section-size",
            "device-id-format", "too-many-devices", "twin-integer-range",
            "status-reason-length"} <= strict


@pytest.mark.parametrize("mutant", CATALOGUE, ids=[m.name for m in CATALOGUE])
def test_a_broken_hub_fails_naming_the_check(serve: Callable[..., Served],
                                             mutant: Mutant) -> None:
    made: list[Any] = []

    def wrap(hub: Any) -> Any:
        app = mutant.make(hub, hub)
        made.append(app)
        return app

    result = _run(serve(wrap))
    broken = {name for name, t in result.tally.items()
              if (t.failed if mutant.verdict == "failed" else t.deviation)}
    others = {name for name, t in result.tally.items() if t.failed or t.deviation} - broken
    assert broken & mutant.checks, (broken, [f.to_dict(False) for f in result.failures])
    assert broken <= mutant.checks, f"also {sorted(broken - mutant.checks)}"
    assert others <= mutant.checks, f"also {sorted(others - mutant.checks)}"
    if mutant.verdict == "failed":
        assert result.verdict == "FAIL"
    else:
        assert not any(t.failed for t in result.tally.values())
