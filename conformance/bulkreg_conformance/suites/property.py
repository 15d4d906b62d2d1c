"""Property suite: drawn payloads, every answer checked against the oracle's prediction, then
read back.

What the suite must cover (every rule on both sides, every stored member, every importMode with
every outcome, the etag transitions, id identity) the minimum-coverage plan reaches first
(``suites/plan.py``). This module is the exploration that follows, with whatever budget is left:
hypothesis draws valid payloads and single-rule mutations (``bulkreg_conformance.strategies``),
some of whose ids are created first so update and delete modes meet existing devices. A failing
example is shrunk and its minimal form reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky

import bulkreg_schema
from bulkreg_conformance.client import ClientError
from bulkreg_conformance.session import CURRENT_ETAG, CURRENT_TWIN_ETAG, ID_MAX, STALE_ETAG
from bulkreg_conformance.suites import hypothesis_home

if TYPE_CHECKING:
    from bulkreg_conformance.session import Session

__all__ = ["run"]

ID_CHARS = "-:.+%_#*?!(),=@;$'"
_IF_MATCH = bulkreg_schema.contract().etag_modes | bulkreg_schema.contract().twin_etag_modes


def run(s: Session) -> bool:
    """Drawn payloads, once the plan has run; True when the examples ran to their end
    (``max_examples`` 0: the plan alone)."""
    if s.out_of_time():
        return False
    return drawn(s) if s.settings.max_examples > 0 else True


# -- hypothesis --------------------------------------------------------------------------------

def _own_entries() -> st.SearchStrategy[list[dict[str, Any]]]:
    """A small fallback for ``strategies.valid_bulk_payloads``: valid entries of every mode."""
    name = st.text(alphabet="abcXYZ019" + ID_CHARS.replace("+", "").replace("#", "")
                   .replace(";", ""), min_size=1, max_size=12)
    scalar = st.one_of(st.booleans(), st.integers(*bulkreg_schema.contract().twin_integer_range),
                       st.text("abcé€🙂 ", max_size=8))
    key = st.text("abcdé€", min_size=1, max_size=6)
    section = st.recursive(st.dictionaries(key, scalar, max_size=3),
                           lambda inner: st.dictionaries(key, inner, max_size=2), max_leaves=6)
    entry = st.fixed_dictionaries(
        {"id": name, "importMode": st.sampled_from(bulkreg_schema.contract().bulk_modes)},
        optional={"status": st.sampled_from(["enabled", "disabled"]),
                  "statusReason": st.text("abc ", max_size=20),
                  "tags": section,
                  "properties": st.fixed_dictionaries({"desired": section}),
                  "capabilities": st.fixed_dictionaries({"iotEdge": st.booleans()})})
    return st.lists(entry, min_size=1, max_size=5, unique_by=lambda e: e["id"])


def _payloads() -> st.SearchStrategy[Any]:
    try:
        from bulkreg_conformance import strategies  # noqa: PLC0415 - written alongside; optional
    except Exception:  # a half-written or broken strategies module must not stop a run
        return _own_entries()
    valid = getattr(strategies, "valid_bulk_payloads", None)
    return valid(max_size=5) if callable(valid) else _own_entries()


def _scoped(s: Session, payload: Any, tag: str) -> Any:
    """``payload`` with every id moved into the run's prefix and etags made meaningful."""
    if not isinstance(payload, list):
        return payload
    out = []
    for original in payload:
        entry = original
        if isinstance(original, dict) and isinstance(original.get("id"), str) and original["id"]:
            entry = {**original, "id": s.scoped(f"{tag}{original['id']}")}
            if "eTag" in entry or entry.get("importMode") in _IF_MATCH:
                entry["eTag"] = CURRENT_ETAG if len(entry["id"]) % 2 else STALE_ETAG
                entry["twinETag"] = CURRENT_TWIN_ETAG if len(entry["id"]) % 3 else STALE_ETAG
        out.append(entry)
    return out


def drawn(s: Session) -> bool:
    hypothesis_home()  # no .hypothesis/ in the user's working directory
    serial = iter(range(1, 10**9))
    captured: list[Any] = []
    calls: list[int] = []
    cut: list[bool] = []  # the bound stopped the shrinking

    @hypothesis_seed(s.seed)
    @settings(max_examples=s.settings.max_examples, database=None, deadline=None,
              derandomize=False, phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(payload=_payloads(), existing=st.lists(st.booleans(), min_size=5, max_size=5))
    def example(payload: Any, existing: list[bool]) -> None:
        calls.append(1)
        if s.out_of_time() or len(calls) > 4 * s.settings.max_examples + 20:
            # shrinking against a live endpoint is bounded in calls and time: past the bound
            # nothing is sent, and a failure found stands (the replay must not pass it)
            if captured:
                cut.append(True)
                raise AssertionError("the last failing example stands")
            return
        tag = f"h{next(serial)}-"
        s.episode()
        entries = _scoped(s, payload, tag)
        with s.capture() as failures:
            ids = [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]
            pre = [{"id": i, "importMode": "create"} for i, make in zip(ids, existing, strict=False)
                   if make and len(i) <= ID_MAX]
            if pre:
                s.bulk_step(pre, readback=False)
            s.bulk_step(entries)
        if failures:  # the last failing example's failures (a passing one keeps them)
            captured[:] = [failures]
            raise AssertionError(f"{len(failures)} check(s) failed")

    try:
        example()
    except (AssertionError, Flaky):
        pass  # the failures are in `captured`
    except ExceptionGroup as group:  # several distinct failures, or a flaky one
        environment = group.subgroup(ClientError)
        if environment is not None:
            raise environment.exceptions[0] from None
    if captured and captured[0]:
        note = " (the last failing example: shrinking was cut by the run's bound)" if cut \
            else " (shrunk by hypothesis)"
        for failure in captured[0]:  # the last failing example: hypothesis' minimal one
            failure.message += note
            s.fail(failure)
    return not s.out_of_time()
