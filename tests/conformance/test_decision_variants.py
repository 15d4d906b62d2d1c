"""The behaviour-decisions table, executable row by row (issue 13).

For every alternative a row lists (``decisions.Decision.alternatives``) the reference hub is
served behind a variant making that choice (``variants.py``), and a run must:

- for an ``open`` row: pass with no failure and no deviation at all (PASS, exit 0);
- for an ``observed``/``inferred`` row: report deviations, every one of them resting on that row
  (or a rule the row names), and no failure.

Each variant must have made its choice during the run (it counts the answers it changed), and a
row without a variant fails a test. The combinable variants also run all together, every suite
(schemathesis and stateful included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bulkreg_conformance.decisions import DECISIONS
from bulkreg_conformance.runner import Result, Settings, run

from .conftest import Served
from .variants import VARIANTS, Variant, stack

ALTERNATIVES = [(d.key, a) for d in DECISIONS.values() for a in d.alternatives]
OPEN = {key for key, d in DECISIONS.items() if d.evidence == "open"}


def _run(served: Served, suites: tuple[str, ...] = ("auth", "property"), **kwargs: Any
         ) -> Result:
    # the variants' answers are judged, not their HTTP: the app in process
    options: dict[str, Any] = {"max_examples": 3, "seed": 5, "time_budget": 60.0,
                               "app": served.app}
    options.update(kwargs)
    return run(Settings(endpoint=served.url, connection_string=served.connection_string,
                        read_connection_string=served.read_connection_string, suites=suites,
                        **options))


def _serve(serve: Callable[..., Served], *keys: tuple[str, str]) -> tuple[Served, list[Variant]]:
    made: list[Variant] = []

    def wrap(hub: Any) -> Any:
        app, variants = stack(hub, *keys)
        made.extend(variants)
        return app

    return serve(wrap), made


def _allowed(keys: tuple[tuple[str, str], ...]) -> set[str]:
    bases = set()
    for key, _ in keys:
        bases.add(f"decision:{key}")
        bases |= {f"rule:{rule}" for _, rule in DECISIONS[key].rules}
    return bases


def _assert_accepted(result: Result, keys: tuple[tuple[str, str], ...]) -> None:
    failed = [f.to_dict(False) for f in result.failures if f.verdict(False) == "failed"]
    assert failed == [], failed
    deviations = {name: t.deviation for name, t in result.tally.items() if t.deviation}
    if all(key in OPEN for key, _ in keys):
        assert deviations == {}, [f.to_dict(False) for f in result.failures]
        assert result.failures == []
    else:
        bases = {f.basis for f in result.failures}
        assert deviations, "the run did not notice the deviation"
        assert bases <= _allowed(keys), [f.to_dict(False) for f in result.failures
                                         if f.basis not in _allowed(keys)]
        assert set(deviations) == {f.check for f in result.failures}  # none undocumented
    assert result.verdict == "PASS", (result.coverage.missing(), result.errors)
    assert result.exit_code() == 0


def test_every_alternative_of_the_table_has_a_variant() -> None:
    assert set(VARIANTS) == set(ALTERNATIVES)
    for key, decision in DECISIONS.items():
        assert decision.alternatives or decision.accepts.startswith("–"), key


@pytest.mark.parametrize(("key", "alternative"), ALTERNATIVES,
                         ids=[f"{k}:{a}" for k, a in ALTERNATIVES])
def test_an_alternative_the_table_accepts(serve: Callable[..., Served], key: str,
                                           alternative: str) -> None:
    served, made = _serve(serve, (key, alternative))
    result = _run(served)
    assert made[0].changed, f"the run never met the choice {key}: {alternative}"
    _assert_accepted(result, ((key, alternative),))


# Choices that combine (no two answer the same question): every open row at once, and every
# deviation at once; each with every suite.
OPEN_TOGETHER = (
    ("older-api-versions", "refuse-older"), ("etag-format", "opaque-strings"),
    ("responses-grow", "pascal-case"), ("responses-grow", "extra-members"),
    ("unset-members", "absent"), ("warnings", "absent"), ("error-body-format", "format-b"),
    ("error-headers", "none"), ("error-code-form", "numeric"),
    ("error-code-form", "operation-text"), ("etag-mismatch-code", "EtagDoesNotMatch"),
    ("update-replaces", "keep-keys"), ("update-omitted-members", "keep-device-members"),
    ("omitted-import-mode", "create"), ("create-or-update-modes", "entry-error"),
    ("unenforced-limits", "accept-long-status-reason"), ("request-or-entry", "entry-error"),
    ("null-in-twin", "keep-nulls"), ("member-casing", "exact-names-only"),
    ("auth-first", "route-before-auth"),  # (retry-after: absent runs alone: its waits add up)
)
DEVIATING_TOGETHER = (
    ("id-special-chars", "reject-plus-hash-semicolon"), ("enum-case", "reject-other-casing"),
    ("per-entry-status", "200-for-entry-failures"), ("too-many-status", "403"),
    ("duplicate-ids", "entry-error"), ("error-codes", "other-code"),
    ("twin-limits", "accept-null-in-arrays"), ("keys", "accept-short-keys"),
    ("module-entries", "accept-without-parent"),
)


@pytest.mark.parametrize("keys", [OPEN_TOGETHER, DEVIATING_TOGETHER], ids=["open", "deviating"])
def test_the_combinable_alternatives_together_in_every_suite(
        serve: Callable[..., Served], keys: tuple[tuple[str, str], ...]) -> None:
    served, made = _serve(serve, *keys)
    result = _run(served, ("auth", "property", "stateful", "schemathesis"), max_examples=5,
                  time_budget=40.0)
    assert all(v.changed for v in made), [k for k, v in zip(keys, reversed(made), strict=True)
                                          if not v.changed]
    _assert_accepted(result, keys)
