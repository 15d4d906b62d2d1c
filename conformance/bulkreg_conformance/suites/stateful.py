"""Stateful suite: hypothesis-drawn sequences of bulk calls over a few devices, each call checked
against the oracle and read back.

A :class:`~hypothesis.stateful.RuleBasedStateMachine` applies createOrUpdate, create, update,
updateIfMatchETag, delete, deleteIfMatchETag, updateTwin and updateTwinIfMatchETag (alone or as a
batch of several entries) to a small pool of device names, so later steps meet devices earlier
steps created, changed or deleted. Every step goes through :meth:`Context.bulk_step`: the oracle
predicts the answer, the checks compare it, the touched devices are read back (``GET
/devices/{id}``, ``GET /twins/{id}``) and the etags the endpoint shows are captured there, so an
``IfMatchETag`` step sends either the endpoint's current etag or a stale one. A failing sequence is
shrunk by hypothesis and reported once, with its minimal steps.

Each example uses its own ids (``<prefix>st<n>-<name>``), so examples do not depend on each
other; the run's cleanup deletes them all. Examples, steps and shrinking are bounded by
``--max-examples`` and the run's time budget.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

import bulkreg_schema
from bulkreg_conformance.client import ClientError
from bulkreg_conformance.session import CURRENT_ETAG, CURRENT_TWIN_ETAG, STALE_ETAG, Failure
from bulkreg_conformance.suites import hypothesis_home

if TYPE_CHECKING:
    from bulkreg_conformance.session import Session

__all__ = ["run"]

NAMES = ("a", "b", "c")  # few names: steps keep meeting the same devices
STEPS = 6  # steps per sequence
_CONTRACT = bulkreg_schema.contract()
MODES = (_CONTRACT.default_mode, *_CONTRACT.bulk_modes)
_ETAG_MODES = _CONTRACT.etag_modes
_TWIN_ETAG_MODES = _CONTRACT.twin_etag_modes
_WRITES_DEVICE = {m for m in MODES if m not in _CONTRACT.delete_modes
                  and m not in _CONTRACT.twin_only_modes}

_names = st.sampled_from(NAMES)
_value = st.one_of(st.integers(0, 9), st.text("aé€", max_size=3), st.booleans())
_section = st.dictionaries(st.sampled_from(["site", "rack", "ünï"]), _value, max_size=2)
_status = st.sampled_from(["enabled", "disabled"])


def entry(device_id: str, mode: str, *, fresh: bool = True, status: str | None = None,
          tags: dict[str, Any] | None = None, desired: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    """One ExportImportDevice of ``mode``; ``fresh`` picks the current or a stale etag."""
    out: dict[str, Any] = {"id": device_id, "importMode": mode}
    if mode == _CONTRACT.default_mode:
        del out["importMode"]  # the default mode
    if mode in _ETAG_MODES:
        out["eTag"] = CURRENT_ETAG if fresh else STALE_ETAG
    if mode in _TWIN_ETAG_MODES:
        out["twinETag"] = CURRENT_TWIN_ETAG if fresh else STALE_ETAG
    if status is not None and mode in _WRITES_DEVICE:
        out["status"] = status
    if tags is not None and mode not in _CONTRACT.delete_modes:
        out["tags"] = tags
    if desired is not None and mode not in _CONTRACT.delete_modes:
        out["properties"] = {"desired": desired}
    return out


class _Bounds:
    """What the whole suite may spend: sequences started and bulk calls sent (with shrinking)."""

    def __init__(self, ctx: Session) -> None:
        self.ctx = ctx
        self.examples = 0
        self.calls = 0
        self.max_calls = STEPS * (2 * ctx.settings.max_examples + 10)

    def spent(self) -> bool:
        return self.ctx.out_of_time() or self.calls >= self.max_calls


Found = list[tuple[list[Failure], list[str]]]  # failures and the steps that showed them


def _machine(ctx: Session, bounds: _Bounds, last: Found, deviations: Found) -> type:
    class Registry(RuleBasedStateMachine):
        """Bulk calls over NAMES; see the module docstring."""

        def __init__(self) -> None:
            super().__init__()
            bounds.examples += 1
            self.tag = f"st{bounds.examples}-"
            ctx.episode()  # a failure's replay re-sends this sequence
            self.steps: list[str] = []
            self.failures: list[Failure] = []

        def device(self, name: str) -> str:
            return f"{ctx.client.prefix}{self.tag}{name}"

        def send(self, entries: list[dict[str, Any]]) -> None:
            if bounds.spent():
                return  # out of budget: the rest of the sequence is a no-op
            bounds.calls += 1
            self.steps.append(json.dumps(entries, ensure_ascii=False))
            with ctx.capture() as held:
                ctx.bulk_step(entries)
            # only failures drive shrinking: a deviation (observed/inferred behaviour) is kept
            # with the first sequence that showed it and must not hide a failure
            failing = [f for f in held if f.verdict(ctx.strict) == "failed"]
            if len(failing) < len(held) and not deviations:
                deviations[:] = [([f for f in held if f not in failing], list(self.steps))]
            self.failures += failing
            if self.failures:
                last[:] = [(list(self.failures), list(self.steps))]

        @initialize(names=st.sets(_names, min_size=1), tags=st.none() | _section)
        def populate(self, names: set[str], tags: dict[str, Any] | None) -> None:
            """Start with some devices, so the first steps already meet existing ones."""
            self.send([entry(self.device(n), "create", tags=tags) for n in sorted(names)])

        @rule(name=_names, status=st.none() | _status, tags=st.none() | _section)
        def create(self, name: str, status: str | None, tags: dict[str, Any] | None) -> None:
            self.send([entry(self.device(name), "create", status=status, tags=tags)])

        @rule(name=_names, status=_status)
        def create_or_update(self, name: str, status: str) -> None:
            self.send([entry(self.device(name), _CONTRACT.default_mode, status=status)])

        @rule(name=_names, status=_status)
        def update(self, name: str, status: str) -> None:
            self.send([entry(self.device(name), "update", status=status)])

        @rule(name=_names, fresh=st.booleans(), status=_status)
        def update_if_match(self, name: str, fresh: bool, status: str) -> None:
            self.send([entry(self.device(name), "updateIfMatchETag", fresh=fresh,
                             status=status)])

        @rule(name=_names)
        def delete(self, name: str) -> None:
            self.send([entry(self.device(name), "delete")])

        @rule(name=_names, fresh=st.booleans())
        def delete_if_match(self, name: str, fresh: bool) -> None:
            self.send([entry(self.device(name), "deleteIfMatchETag", fresh=fresh)])

        @rule(name=_names, tags=_section, desired=st.none() | _section)
        def update_twin(self, name: str, tags: dict[str, Any],
                        desired: dict[str, Any] | None) -> None:
            self.send([entry(self.device(name), "updateTwin", tags=tags, desired=desired)])

        @rule(name=_names, fresh=st.booleans(), tags=_section)
        def update_twin_if_match(self, name: str, fresh: bool, tags: dict[str, Any]) -> None:
            self.send([entry(self.device(name), "updateTwinIfMatchETag", fresh=fresh,
                             tags=tags)])

        @rule(steps=st.lists(st.tuples(_names, st.sampled_from(MODES), st.booleans()),
                             min_size=2, max_size=3, unique_by=lambda s: s[0]))
        def batch(self, steps: list[tuple[str, str, bool]]) -> None:
            self.send([entry(self.device(name), mode, fresh=fresh, tags={"batch": True})
                       for name, mode, fresh in steps])

        @invariant()
        def conforms(self) -> None:
            if self.failures:
                raise AssertionError(f"{len(self.failures)} check(s) failed")

    return Registry


def run(ctx: Session) -> bool:
    """Sequences until --max-examples or the budget; True when they ran to their end."""
    if ctx.out_of_time():
        return False
    hypothesis_home()
    bounds = _Bounds(ctx)
    last: Found = []
    deviations: Found = []
    machine = hypothesis_seed(ctx.seed)(_machine(ctx, bounds, last, deviations))
    config = settings(max_examples=ctx.settings.max_examples, stateful_step_count=STEPS,
                      database=None, deadline=None, derandomize=False,
                      phases=[Phase.explicit, Phase.generate, Phase.shrink],
                      suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                      print_blob=False, verbosity=Verbosity.quiet)
    try:
        run_state_machine_as_test(machine, settings=config)
    except (AssertionError, Flaky):
        pass  # the failures are in `last`
    except ExceptionGroup as group:  # several distinct failures, or a flaky one
        environment = group.subgroup(ClientError)
        if environment is not None:
            raise environment.exceptions[0] from None
    for failures, steps in last:  # the last failing replay is hypothesis' minimal sequence
        _report(ctx, failures, f"shrunk by hypothesis; minimal sequence: {_show(steps)}")
    for failures, steps in deviations:
        _report(ctx, failures, f"sequence: {_show(steps)}")
    return not ctx.out_of_time()


def _show(steps: list[str]) -> str:
    return "; ".join(f"{n}. {step}" for n, step in enumerate(steps, 1))


def _report(ctx: Session, failures: list[Failure], note: str) -> None:
    for failure in failures:
        failure.message += f" ({note})"
        ctx.fail(failure)
