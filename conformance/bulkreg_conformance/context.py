"""What one conformance run shares: settings, the oracle's mirror of the endpoint, tallies.

``Context`` pairs the endpoint (through :class:`~bulkreg_conformance.client.Client`) with the
oracle (``oracle.Registry``), which mirrors the endpoint's state inside the run's prefix. A suite
sends a bulk call with :meth:`Context.bulk_step`: the oracle predicts the answer, the endpoint
gives it, the registered checks compare both, the touched devices are read back, and the tally,
failures and coverage are updated. Suites import this module, never the runner.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bulkreg_schema
from bulkreg_conformance import checks
from bulkreg_conformance.checks import Expectation, Failure, Problem
from bulkreg_conformance.client import ID_PATTERN, Client, Exchange, bulk_ids
from bulkreg_conformance.oracle import API_VERSIONS, Registry, check_bulk
from bulkreg_conformance.suites import SUITES
from bulkreg_validator import RULES, validate

__all__ = ["CURRENT_ETAG", "CURRENT_TWIN_ETAG", "STALE_ETAG", "Context", "Coverage", "Settings",
           "Tally"]

CURRENT_ETAG = "<current-etag>"  # replaced by the device's current etag when sent
CURRENT_TWIN_ETAG = "<current-twin-etag>"
STALE_ETAG = "c3RhbGU="  # base64 "stale": a well-formed etag no device has
MAX_DETAILED = 3  # failures kept in full per check; the rest are counted
MODES = bulkreg_schema.contract().bulk_modes
ID_MAX = bulkreg_schema.contract().id_max_length


@dataclass
class Settings:
    endpoint: str | None = None
    connection_string: str | None = None
    suites: tuple[str, ...] = SUITES
    max_examples: int = 25
    seed: int | None = None
    strict: bool = False
    prefix: str | None = None
    rate_limit: float | None = None
    max_requests: int | None = None
    time_budget: float = 50.0  # seconds; suites stop generating new cases past it
    readback_limit: int = 4  # ids read back per bulk call
    replay: dict[str, Any] | None = None  # a replay file's content: send its payload only
    ca_cert: str | None = None  # CA bundle trusted for an https endpoint (--ca-cert)


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    deviation: int = 0


@dataclass
class Coverage:
    rules: set[str] = field(default_factory=set)  # rules exercised negatively
    cells: set[tuple[str, str]] = field(default_factory=set)  # (importMode, outcome)

    def expected_cells(self) -> set[tuple[str, str]]:
        cells = {(m, "ok") for m in (*MODES, "createOrUpdate")}
        cells |= {(m, "DeviceNotFound") for m in MODES if m != "create"}
        cells |= {("create", "DeviceAlreadyExists")}
        if_match = bulkreg_schema.contract().etag_modes | bulkreg_schema.contract().twin_etag_modes
        cells |= {(m, "PreconditionFailed") for m in MODES if m in if_match}
        return cells

    def missing_rules(self) -> list[str]:
        return sorted(r for r in RULES if r not in self.rules and r not in IMPORT_ONLY_RULES)

    def missing_cells(self) -> list[tuple[str, str]]:
        return sorted(self.expected_cells() - self.cells)


IMPORT_ONLY_RULES = frozenset({"import-blank-line"})  # a bulk body cannot carry them


class Context:
    """What every suite shares; see the module docstring."""

    def __init__(self, client: Client, settings: Settings, seed: int) -> None:
        self.client = client
        self.settings = settings
        self.seed = seed
        self.strict = settings.strict
        self.oracle = Registry()
        self.tally: dict[str, Tally] = {}
        self.failures: list[Failure] = []
        self.suppressed: Counter[str] = Counter()
        self.coverage = Coverage()
        self.etags: dict[str, str] = {}  # endpoint's device etag per id, from read-backs
        self.twin_etags: dict[str, str] = {}  # endpoint's twin etag per id, from read-backs
        self.explicit_keys: set[str] = set()  # ids whose keys the run chose
        self.unknown: set[str] = set()  # ids whose state at the endpoint the oracle cannot know
        # members the last successful write of a device / twin carried (see _note_writes)
        self.device_carried: dict[str, set[str]] = {}
        self.twin_carried: dict[str, set[str]] = {}
        self._contract = bulkreg_schema.contract()
        self.trail: list[dict[str, Any]] = []  # this episode's bulk calls (for replays)
        self.deadline = time.monotonic() + settings.time_budget
        self.suite = ""
        self._serial = 0
        self._held: list[Failure] | None = None
        self._version = client.api_version
        self.progress: Callable[[str], None] = lambda _: None
        # called after every bulk step (the differential suite compares verdicts there)
        self.after_bulk: list[Callable[[Context, bytes, str, Exchange, str | None], None]] = []

    # -- ids and time -----------------------------------------------------------------------

    def fresh_id(self, label: str = "d") -> str:
        self._serial += 1
        return f"{self.client.prefix}{label}{self._serial}"

    def scoped(self, device_id: str) -> str:
        """``device_id`` moved into the run's prefix (kept within the id length limit)."""
        return (self.client.prefix + device_id)[:ID_MAX] if device_id else device_id

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

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

    def judge(self, check: str, problems: list[Problem] | list[str], *, evidence: str | None = None,
              payload: str | None = None, exchanges: list[Exchange] | None = None,
              rule: str | None = None) -> bool:
        """Record ``check`` as passed, or one failure per distinct check among ``problems``.

        A problem whose claim is ``open`` (a choice the spec leaves open) counts as passed.
        """
        found = [p if isinstance(p, Problem) else Problem(
            check, p, evidence or checks.CHECKS[check].evidence) for p in problems]
        found = [p for p in found if p.evidence != "open"]
        if not found:
            self.passed(check)
            return True
        by_check: dict[str, list[Problem]] = {}
        for problem in found:
            by_check.setdefault(problem.check, []).append(problem)
        for name, group in by_check.items():
            worst = max(group, key=lambda g: checks.LEVELS.index(g.evidence))
            self.fail(Failure(name, worst.evidence, "; ".join(g.message for g in group),
                              payload=payload, exchanges=list(exchanges or []), rule=rule,
                              replay=self.replay_of(rule, name)))
        return False

    # -- episodes: what a replay re-sends ---------------------------------------------------

    def episode(self) -> None:
        """Start a new episode: the bulk calls from here on are what a failure's replay re-sends
        (in a fresh prefix), so an episode must use ids of its own."""
        self.trail = []

    def replay_of(self, rule: str | None, check: str) -> dict[str, Any]:
        return {"version": 2, "check": check, "rule": rule, "prefix": self.client.prefix,
                "api_version": self._version, "steps": [dict(s) for s in self.trail],
                "payload": self.trail[-1].get("raw") if self.trail else None}

    def _remember(self, entries: Any, raw: bytes | None, rule: str | None, readback: bool,
                  api_version: str | None) -> None:
        step: dict[str, Any] = {"rule": rule, "readback": readback, "api_version": api_version}
        if raw is not None:
            step["raw"] = raw.decode("utf-8", "surrogateescape")
        else:
            step["entries"] = entries
        self.trail.append(step)

    # -- the shared bulk step ---------------------------------------------------------------

    def bodies(self, entries: Any) -> tuple[bytes, bytes]:
        """The body sent to the endpoint and the one given to the oracle (etags differ)."""
        if not isinstance(entries, list):
            data = json.dumps(entries, ensure_ascii=False).encode("utf-8", "surrogatepass")
            return data, data
        sent, oracle = [], []
        for entry in entries:
            if not isinstance(entry, dict):
                sent.append(entry)
                oracle.append(entry)
                continue
            s, o = dict(entry), dict(entry)
            raw_id = entry.get("id")
            device_id = raw_id if isinstance(raw_id, str) else ""
            if entry.get("eTag") == CURRENT_ETAG:
                known = self.oracle.device(device_id)
                s["eTag"] = self.etags.get(device_id, STALE_ETAG)
                o["eTag"] = known["etag"] if known and device_id in self.etags else STALE_ETAG
            if entry.get("twinETag") == CURRENT_TWIN_ETAG:
                # the endpoint gets the twin etag it showed last; the oracle its own for the
                # same twin (stale for both when the twin was never read back)
                twin = self.oracle.twin(device_id)
                s["twinETag"] = self.twin_etags.get(device_id, STALE_ETAG)
                o["twinETag"] = twin["etag"] if twin and device_id in self.twin_etags \
                    else STALE_ETAG
            sent.append(s)
            oracle.append(o)
        dump = json.dumps
        return (dump(sent, ensure_ascii=False).encode("utf-8", "surrogatepass"),
                dump(oracle, ensure_ascii=False).encode("utf-8", "surrogatepass"))

    def expect(self, body: bytes, version: str, rule: str | None) -> tuple[Expectation, Any]:
        """What the endpoint must answer to ``body`` (with evidence), and the oracle's next
        state if it answers so."""
        checked = check_bulk(body, api_version=version)
        outcome = self.oracle.outcome(self.oracle.plan_bulk(checked))
        report = validate(body, api_version=version)
        entries = checked.entries if checked.rejection is None else _parsed(body)
        if version not in API_VERSIONS:  # the HTTP layer refuses it before the model sees it
            error = self.oracle.error(400, "InvalidProtocolVersion", "BadRequest")
            want = checks.expect(report, entries, 400, error.body, api_version=version,
                                 step_rule=rule, unknown=frozenset(self.unknown))
            return want, self.oracle
        want = checks.expect(report, entries, outcome.status, outcome.body, api_version=version,
                             step_rule=rule, unknown=frozenset(self.unknown),
                             exists=self._existed)
        return want, outcome.next_state

    def _existed(self, device_id: str, module_id: str | None) -> bool:
        return self.oracle.device(device_id, module_id) is not None

    def bulk_step(self, entries: Any, *, rule: str | None = None, raw: bytes | None = None,
                  readback: bool = True, api_version: str | None = None) -> Exchange:
        """Send one bulk call, compare it with the expectation, re-synchronise the oracle with
        what the endpoint did where the two may differ, and read the devices back."""
        self._remember(entries, raw, rule, readback, api_version)
        sent, for_oracle = (raw, raw) if raw is not None else self.bodies(entries)
        version = api_version or self.client.api_version
        self._version = version
        want, next_state = self.expect(for_oracle, version, rule)
        exchange = self.client.bulk(sent, api_version=version)
        payload = sent.decode("utf-8", "replace")
        self.shape_checks(exchange, payload, rule)
        for name, problems in checks.compare_bulk(exchange, want).items():
            if problems or self._applies(name, want, exchange):
                self.judge(name, problems, payload=payload, exchanges=[exchange], rule=rule)
        self.note_coverage(for_oracle, want.body, rule)
        for hook in self.after_bulk:
            hook(self, sent, version, exchange, rule)
        keep, unknown = checks.diverged(exchange, want)
        if not keep:
            self.oracle = next_state
            self._note_keys(entries)
            self._note_writes(entries, want)
        self.resync(unknown)
        if readback:
            ids = [i for i in bulk_ids(sent) if i not in unknown]
            self.read_back(ids[: self.settings.readback_limit], payload, exchange)
        return exchange

    def resync(self, ids: set[str]) -> None:
        """Delete ``ids`` at the endpoint and in the oracle: their state at the endpoint is one
        the oracle did not predict (an open choice, or a failure already reported), and later
        steps must not inherit the difference. Ids the endpoint fails to delete stay unknown."""
        ids = {i for i in ids if i.startswith(self.client.prefix) and 0 < len(i) <= ID_MAX
               and ID_PATTERN.match(i)}
        if not ids:
            return
        body = json.dumps([{"id": i, "importMode": "delete"} for i in sorted(ids)]).encode()
        exchange = self.client.bulk(body)
        self.oracle = self.oracle.predict(body).next_state
        failed = checks.reported_errors(exchange.json() or {}) if isinstance(
            exchange.json(), dict) else None
        for device_id in ids:
            self.etags.pop(device_id, None)
            self.twin_etags.pop(device_id, None)
            self.explicit_keys.discard(device_id)
            gone = exchange.status == 200 or (
                failed is not None and failed.get(device_id) in {None, "DeviceNotFound"})
            if gone:
                self.unknown.discard(device_id)
            else:
                self.unknown.add(device_id)

    @staticmethod
    def _applies(check: str, want: Expectation, exchange: Exchange) -> bool:
        result = isinstance(exchange.json(), dict) and "isSuccessful" in exchange.json()
        if check in {"request-error-code", "status"}:
            return want.request_level and not result
        if check in {"is-successful", "errors"}:
            return result and not want.request_level
        return True

    def shape_checks(self, exchange: Exchange, payload: str | None, rule: str | None) -> None:
        """Checks any answer must pass, whatever was asked."""
        for name in checks.SHAPE_CHECKS:
            problems = checks.CHECKS[name].function(exchange)  # type: ignore[misc]
            self.judge(name, problems, payload=payload, exchanges=[exchange], rule=rule)
            if name == "server-error" and problems:
                return

    def note_coverage(self, body: bytes, predicted: Any, rule: str | None) -> None:
        if rule:
            self.coverage.rules.add(rule)
        try:
            entries = json.loads(body)
        except (ValueError, RecursionError):
            return
        if not (isinstance(predicted, dict) and "isSuccessful" in predicted) or \
                not isinstance(entries, list):
            return
        failed = {(e.get("deviceId"), e.get("operation")): e.get("errorCode")
                  for e in predicted.get("errors", [])}
        for entry in entries:
            mode = entry.get("importMode") if isinstance(entry, dict) else None
            canonical = next((m for m in MODES if isinstance(mode, str)
                              and m.lower() == mode.lower()), None)
            canonical = canonical or ("createOrUpdate" if mode is None else None)
            if canonical:
                code = failed.get((entry.get("id"), canonical), "ok")
                self.coverage.cells.add((canonical, code or "ok"))

    def _note_keys(self, entries: Any) -> None:
        """Track which devices carry keys the run chose (their keys are compared on read-back).

        Only an entry for the device itself sets or clears them: an entry with a ``moduleId``
        writes the module identity, and the device keeps its own keys.
        """
        for entry in _device_entries(entries):
            auth = entry.get("authentication")
            sym = auth.get("symmetricKey") if isinstance(auth, dict) else None
            if isinstance(sym, dict) and sym.get("primaryKey"):
                self.explicit_keys.add(entry["id"])
            elif _canonical_mode(entry) not in self._contract.twin_only_modes:
                self.explicit_keys.discard(entry["id"])

    def _note_writes(self, entries: Any, want: Expectation) -> None:
        """Remember which members the last successful write of each device and twin carried:
        a member an update left out is replaced, kept or cleared as the endpoint reads
        "overwritten" (DOC-BULK), so read-backs do not hold it to the hub's choice (decision
        update-omitted-members)."""
        for entry in _device_entries(entries):
            claim = want.entries.get(entry["id"])
            if claim is None or claim.code is not None:
                continue
            canonical = _canonical_mode(entry)
            props = entry.get("properties")
            twin = {name for name, present in (
                ("tags", "tags" in entry),
                ("desired", isinstance(props, dict) and "desired" in props)) if present}
            if canonical in self._contract.delete_modes:
                self.device_carried.pop(entry["id"], None)
                self.twin_carried.pop(entry["id"], None)
            elif canonical in self._contract.twin_only_modes:
                self.twin_carried[entry["id"]] = twin
            else:
                self.device_carried[entry["id"]] = {str(k).lower() for k in entry}
                self.twin_carried[entry["id"]] = twin

    def read_back(self, ids: list[str], payload: str | None, cause: Exchange) -> None:
        for device_id in dict.fromkeys(ids):
            if not isinstance(device_id, str) or not device_id.startswith(self.client.prefix):
                continue
            if len(device_id) > ID_MAX or not device_id or device_id in self.unknown:
                continue
            self.read_device(device_id, payload, cause)

    def read_device(self, device_id: str, payload: str | None, cause: Exchange) -> None:
        want = self.oracle.device(device_id)
        got = self.client.get_device(device_id)
        self.shape_checks(got, payload, None)
        exchanges = [cause, got]
        if got.status in {401, 429} or got.status >= 500:
            return  # no verdict on the device: the shape checks and the auth suite judge these
        if want is None or got.status != 200:
            if want is None:
                self.etags.pop(device_id, None)
                self.twin_etags.pop(device_id, None)
            problem = [] if (want is None) == (got.status == 404) else [
                f"device {device_id!r} should {'not ' if want is None else ''}exist, GET "
                f"answered {got.status}"]
            if not self.judge("readback-device", problem, payload=payload, exchanges=exchanges):
                self.resync({device_id})  # later steps must not inherit the difference
            return
        body = got.json()
        etag = checks.member(body, "etag") if isinstance(body, dict) else None
        if isinstance(etag, str):
            self.etags[device_id] = etag
        device_diffs = checks.readback_device(
            body, want, generated_keys=device_id not in self.explicit_keys,
            carried=self.device_carried.get(device_id))
        self.judge("readback-device", [p._replace(message=f"device {device_id!r}: {p.message}")
                                       for p in device_diffs], payload=payload,
                   exchanges=exchanges)
        twin = self.client.get_twin(device_id)
        self.shape_checks(twin, payload, None)
        if twin.status in {401, 429} or twin.status >= 500:
            if device_diffs:
                self.resync({device_id})
            return
        if twin.status != 200:
            self.judge("readback-twin", [f"twin {device_id!r}: GET answered {twin.status}"],
                       payload=payload, exchanges=[cause, twin])
            return
        twin_body = twin.json()
        twin_etag = checks.member(twin_body, "etag") if isinstance(twin_body, dict) else None
        if isinstance(twin_etag, str):
            self.twin_etags[device_id] = twin_etag
        want_twin = self.oracle.twin(device_id) or {}
        twin_diffs = checks.readback_twin(twin_body, want_twin,
                                          carried=self.twin_carried.get(device_id),
                                          device_carried=self.device_carried.get(device_id))
        self.judge("readback-twin", [p._replace(message=f"twin {device_id!r}: {p.message}")
                                     for p in twin_diffs], payload=payload,
                   exchanges=[cause, twin])
        if device_diffs or twin_diffs:  # even an open difference: later steps must not inherit it
            self.resync({device_id})


def _device_entries(entries: Any) -> Iterator[dict[str, Any]]:
    """The entries of a bulk body that write a device itself (not one of its modules)."""
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) \
                and not entry.get("moduleId"):
            yield entry


def _canonical_mode(entry: dict[str, Any]) -> str:
    mode = entry.get("importMode")
    mode = mode if isinstance(mode, str) else "createOrUpdate"
    return next((m for m in MODES if m.lower() == mode.lower()), mode)


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
