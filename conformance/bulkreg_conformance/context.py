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
from bulkreg_conformance.checks import Failure, Problem
from bulkreg_conformance.client import Client, Exchange, bulk_ids
from bulkreg_conformance.oracle import API_VERSIONS, Registry
from bulkreg_conformance.suites import SUITES
from bulkreg_validator import RULES

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
        cells |= {(m, "PreconditionFailed") for m in MODES if m.endswith("IfMatchETag")}
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
        """Record ``check`` as passed, or one failure per distinct check among ``problems``."""
        if not problems:
            self.passed(check)
            return True
        by_check: dict[str, list[Problem]] = {}
        for p in problems:
            problem = p if isinstance(p, Problem) else Problem(
                check, p, evidence or checks.CHECKS[check].evidence)
            by_check.setdefault(problem.check, []).append(problem)
        for name, group in by_check.items():
            worst = min(group, key=lambda g: g.evidence not in checks.FAILING_EVIDENCE)
            self.fail(Failure(name, worst.evidence, "; ".join(g.message for g in group),
                              payload=payload, exchanges=list(exchanges or []), rule=rule,
                              replay=self.replay_of(payload, rule, name)))
        return False

    def replay_of(self, payload: str | None, rule: str | None, check: str) -> dict[str, Any]:
        return {"version": 1, "check": check, "rule": rule, "payload": payload,
                "prefix": self.client.prefix, "api_version": self._version}

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

    def bulk_step(self, entries: Any, *, rule: str | None = None, raw: bytes | None = None,
                  readback: bool = True, api_version: str | None = None) -> Exchange:
        """Send one bulk call, compare it with the oracle, read back, update the mirror."""
        sent, for_oracle = (raw, raw) if raw is not None else self.bodies(entries)
        version = api_version or self.client.api_version
        self._version = version
        outcome = self.oracle.predict(for_oracle, api_version=version)
        if version not in API_VERSIONS:  # the HTTP layer refuses it before the model sees it
            outcome = outcome._replace(status=400, next_state=self.oracle, body=self.oracle.error(
                400, "InvalidProtocolVersion", "BadRequest").body)
        exchange = self.client.bulk(sent, api_version=version)
        payload = sent.decode("utf-8", "replace")
        self.shape_checks(exchange, payload, rule)
        problems = checks.compare_bulk(exchange, outcome.status, outcome.body, rule)
        self.judge("status", [p for p in problems if p.check == "status"], payload=payload,
                   exchanges=[exchange], rule=rule)
        for name in ("request-error-code", "is-successful", "errors", "error-operation"):
            mine = [p for p in problems if p.check == name]
            if mine or self._applies(name, outcome.body):
                self.judge(name, mine, payload=payload, exchanges=[exchange], rule=rule)
        self.note_coverage(for_oracle, outcome.body, rule)
        for hook in self.after_bulk:
            hook(self, sent, version, exchange, rule)
        self.oracle = outcome.next_state
        self._note_keys(entries, outcome.body)
        if readback:
            self.read_back(bulk_ids(sent)[: self.settings.readback_limit], payload, exchange)
        return exchange

    @staticmethod
    def _applies(check: str, body: Any) -> bool:
        result = isinstance(body, dict) and "isSuccessful" in body
        return not result if check == "request-error-code" else result

    def shape_checks(self, exchange: Exchange, payload: str | None, rule: str | None) -> None:
        """Checks any answer must pass, whatever was asked."""
        if exchange.status >= 500:
            self.judge("server-error", [f"HTTP {exchange.status} from {exchange.method}"],
                       payload=payload, exchanges=[exchange], rule=rule)
            return
        self.passed("server-error")
        declared = checks.declared_statuses(exchange)
        self.judge("status-declared",
                   [] if not declared or exchange.status in declared else
                   [f"HTTP {exchange.status} is not declared (declared: {sorted(declared)})"],
                   payload=payload, exchanges=[exchange], rule=rule)
        self.judge("response-schema", checks.response_schema_problems(exchange),
                   payload=payload, exchanges=[exchange], rule=rule)
        if exchange.method == "POST":
            self.judge("error-code-form", checks.error_code_form_problems(exchange),
                       payload=payload, exchanges=[exchange], rule=rule)

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

    def _note_keys(self, entries: Any, predicted: Any) -> None:
        if not isinstance(entries, list):
            return
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                auth = entry.get("authentication")
                sym = auth.get("symmetricKey") if isinstance(auth, dict) else None
                if isinstance(sym, dict) and sym.get("primaryKey"):
                    self.explicit_keys.add(entry["id"])
                elif entry.get("importMode") not in {"updateTwin", "updateTwinIfMatchETag"}:
                    self.explicit_keys.discard(entry["id"])

    def read_back(self, ids: list[str], payload: str | None, cause: Exchange) -> None:
        for device_id in dict.fromkeys(ids):
            if not isinstance(device_id, str) or not device_id.startswith(self.client.prefix):
                continue
            if len(device_id) > ID_MAX or not device_id:
                continue
            self.read_device(device_id, payload, cause)

    def read_device(self, device_id: str, payload: str | None, cause: Exchange) -> None:
        want = self.oracle.device(device_id)
        got = self.client.get_device(device_id)
        self.shape_checks(got, payload, None)
        exchanges = [cause, got]
        if want is None:
            self.etags.pop(device_id, None)
            self.twin_etags.pop(device_id, None)
            self.judge("readback-device", [] if got.status == 404 else
                       [f"device {device_id!r} should not exist, GET answered {got.status}"],
                       payload=payload, exchanges=exchanges)
            return
        if got.status != 200:
            self.judge("readback-device", [f"device {device_id!r} should exist, GET answered "
                                           f"{got.status}"], payload=payload, exchanges=exchanges)
            return
        body = got.json()
        if isinstance(body, dict) and isinstance(body.get("etag"), str):
            self.etags[device_id] = body["etag"]
        self.judge("readback-device", [f"device {device_id!r}: {d}" for d in checks.compare_device(
            body, want, generated_keys=device_id not in self.explicit_keys)],
            payload=payload, exchanges=exchanges)
        twin = self.client.get_twin(device_id)
        self.shape_checks(twin, payload, None)
        if twin.status != 200:
            self.judge("readback-twin", [f"twin {device_id!r}: GET answered {twin.status}"],
                       payload=payload, exchanges=[cause, twin])
            return
        twin_body = twin.json()
        if isinstance(twin_body, dict) and isinstance(twin_body.get("etag"), str):
            self.twin_etags[device_id] = twin_body["etag"]
        self.judge("readback-twin", [f"twin {device_id!r}: {d}" for d in checks.compare_twin(
            twin_body, self.oracle.twin(device_id))], payload=payload,
            exchanges=[cause, twin])
