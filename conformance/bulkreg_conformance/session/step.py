"""One step of a run: a bulk call checked against the oracle, then read back.

:class:`Mirror` pairs the endpoint (through the client) with the oracle, which mirrors the
endpoint's state inside the run's prefix. :meth:`Mirror.call` sends one bulk call: the oracle
predicts the answer (:func:`~bulkreg_conformance.expectation.expect`), the endpoint gives it,
the registered checks compare both, the observers (the differential comparison) see it, and the
oracle adopts what the endpoint did where the two may differ (:meth:`Mirror.resync`).
:meth:`Mirror.read` reads a device and its twin back and compares every stored member and the
etag transitions.

Etags in entries are placeholders the mirror fills in: ``CURRENT_ETAG`` (the etag the endpoint
showed last), ``PREVIOUS_ETAG`` (the one it showed before the last change: valid once, stale
now) and ``STALE_ETAG`` (one no device has); the oracle gets its own current etag, or a stale
one, so it predicts what the endpoint must answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import bulkreg_schema
from bulkreg_conformance.answers import (
    error_code,
    failed_entries,
    member,
    rejected_whole,
    reported_errors,
    result_of,
)
from bulkreg_conformance.checks import (
    BULK_CHECKS,
    READ_CHECKS,
    SHAPE_CHECKS,
    Read,
    Seen,
    all_failed,
    generated_keys,
    run_checks,
)
from bulkreg_conformance.client import ID_PATTERN, Client, Exchange, bulk_ids
from bulkreg_conformance.coverage import Coverage
from bulkreg_conformance.evidence import Evidence
from bulkreg_conformance.expectation import Expectation, expect
from bulkreg_conformance.oracle import Registry
from bulkreg_conformance.session.ledger import Ledger

__all__ = [
    "CURRENT_ETAG",
    "CURRENT_TWIN_ETAG",
    "PREVIOUS_ETAG",
    "PREVIOUS_TWIN_ETAG",
    "STALE_ETAG",
    "Mirror",
    "Observer",
]

CURRENT_ETAG = "<current-etag>"  # replaced by the device's current etag when sent
CURRENT_TWIN_ETAG = "<current-twin-etag>"
PREVIOUS_ETAG = "<previous-etag>"  # the device's etag before its last change
PREVIOUS_TWIN_ETAG = "<previous-twin-etag>"
STALE_ETAG = "c3RhbGU="  # base64 "stale": a well-formed etag no device has
_CONTRACT = bulkreg_schema.contract()
ID_MAX = _CONTRACT.id_max_length
_EXACT = frozenset(bulkreg_schema.load("ExportImportDevice")["properties"])

# (the mirror, the body sent, its api-version, the answer, the step's rule, the evidence that
# bounds the call's claims: see expectation.expect)
Observer = Callable[["Mirror", bytes, str, Exchange, "str | None", "Mapping[str, Evidence]"],
                    None]


class _Seen(NamedTuple):
    """What the run last saw of one device's etag (device or twin), and the oracle's then."""

    generation: str  # the oracle's generationId: a re-created device starts a new history
    oracle: str  # the oracle's etag
    endpoint: str  # the endpoint's etag
    before: str | None  # the endpoint's etag before the last change it showed


class Mirror:
    """The oracle's mirror of the endpoint; see the module docstring."""

    def __init__(self, client: Client, ledger: Ledger, coverage: Coverage, *,
                 readback_limit: int = 4) -> None:
        self.client = client
        self.ledger = ledger
        self.coverage = coverage
        self.readback_limit = readback_limit
        self.oracle = Registry()
        self.observers: list[Observer] = []
        self.unknown: set[str] = set()  # ids whose state at the endpoint the oracle cannot know
        self.explicit_keys: set[str] = set()  # ids whose keys the run chose
        self.explicit_scope: set[str] = set()  # ids whose deviceScope the run chose
        # members the last successful write of a device / twin carried (see _note_writes)
        self.device_carried: dict[str, frozenset[str]] = {}
        self.twin_carried: dict[str, frozenset[str]] = {}
        self._seen: dict[tuple[str, str], _Seen] = {}  # (kind, id) -> etags last read
        # id -> (the oracle's generation and device etag, the endpoint's keys) at the last read
        self._keys: dict[str, tuple[tuple[Any, Any], tuple[Any, Any]]] = {}
        self.deleted: set[str] = set()  # ids a bulk delete of the run removed (twins read too)
        self.last_read: dict[str, dict[str, Any]] = {}  # id -> the Device body last read

    # -- etags ------------------------------------------------------------------------------

    def etag(self, device_id: str, kind: str = "device", *, previous: bool = False) -> str | None:
        """The endpoint's etag of ``device_id`` as last read (``previous``: before its last
        change), or None."""
        seen = self._seen.get((kind, device_id))
        if seen is None:
            return None
        return seen.before if previous else seen.endpoint

    def _fill(self, entry: dict[str, Any], device_id: str, name: str, kind: str,
              sent: dict[str, Any], oracle: dict[str, Any]) -> None:
        placeholder = entry.get(name)
        current = CURRENT_TWIN_ETAG if kind == "twin" else CURRENT_ETAG
        previous = PREVIOUS_TWIN_ETAG if kind == "twin" else PREVIOUS_ETAG
        if placeholder not in {current, previous}:
            return
        seen = self._seen.get((kind, device_id))
        mine = self._oracle_etag(device_id, kind)
        if placeholder == current:
            sent[name] = seen.endpoint if seen else STALE_ETAG
            oracle[name] = mine if seen and mine == seen.oracle else STALE_ETAG
        else:  # valid before the last change: stale for both
            sent[name] = seen.before if seen and seen.before else STALE_ETAG
            oracle[name] = STALE_ETAG

    def _oracle_etag(self, device_id: str, kind: str) -> str | None:
        found = self.oracle.twin(device_id) if kind == "twin" else self.oracle.device(device_id)
        return found["etag"] if found else None

    def bodies(self, entries: Any) -> tuple[bytes, bytes]:
        """The body sent to the endpoint and the one given to the oracle (etags differ)."""
        if not isinstance(entries, list):
            data = _dump(entries)
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
            self._fill(entry, device_id, "eTag", "device", s, o)
            self._fill(entry, device_id, "twinETag", "twin", s, o)
            sent.append(s)
            oracle.append(o)
        return _dump(sent), _dump(oracle)

    # -- one bulk call ----------------------------------------------------------------------

    def call(self, entries: Any, *, rule: str | None = None, raw: bytes | None = None,
             api_version: str | None = None, covers: Iterable[str] = (),
             bounds: Mapping[str, Evidence] | None = None) -> tuple[Exchange, Expectation]:
        """Send one bulk call, judge it, and bring the oracle to what the endpoint did.
        ``covers``: the coverage items this call exercises, reached when its answer is judged
        (not 401, 429 or 5xx); ``bounds``: see :func:`~bulkreg_conformance.expectation.expect`.
        With ``raw``, that is the body sent and ``entries`` (if any) only says what it writes."""
        self.ledger.remember(entries if raw is None else None, raw, rule, True, api_version)
        sent, for_oracle = (raw, raw) if raw is not None else self.bodies(entries)
        version = api_version or self.client.api_version
        self.ledger.api_version = version
        want = expect(self.oracle, for_oracle, version, step_rule=rule,
                      unknown=frozenset(self.unknown), bounds=bounds)
        exchange = self.client.bulk(sent, api_version=version)
        payload = sent.decode("utf-8", "replace")
        self.shape(exchange, payload, rule)
        if want.request_level and want.per_entry is not None and \
                _fails_the_invalid(exchange, want.per_entry) and not all_failed(exchange, want):
            want = want.per_entry  # the endpoint failed only the invalid entries: allowed
        seen = Seen(exchange, want)
        for name, problems in run_checks(BULK_CHECKS, seen).items():
            if problems or _applies(name, want, exchange):
                self.ledger.judge(name, problems, payload=payload, exchanges=[exchange],
                                  rule=rule)
        for observer in self.observers:
            observer(self, sent, version, exchange, rule, bounds or {})
        if _judged(exchange):
            self.coverage.cover(*covers, *_cells(want))
        else:
            self.coverage.miss(_why(exchange), *covers, *_cells(want))
        keep, unknown = diverged(exchange, want)
        if not keep:
            self.oracle = want.next_state
            self._note_writes(entries, want)
        self.resync(unknown)
        return exchange, want

    def shape(self, exchange: Exchange, payload: str | None, rule: str | None) -> None:
        """Checks any answer must pass, whatever was asked."""
        for name, problems in run_checks(SHAPE_CHECKS, Seen(exchange)).items():
            self.ledger.judge(name, problems, payload=payload, exchanges=[exchange], rule=rule)
            if name == "server-error" and problems:
                return

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
        result = result_of(exchange)
        failed = reported_errors(result) if result is not None else None
        for device_id in ids:
            self._forget(device_id)
            gone = exchange.status == 200 or (
                failed is not None and failed.get(device_id) in {None, "DeviceNotFound"})
            if gone:
                self.unknown.discard(device_id)
            else:
                self.unknown.add(device_id)

    def _forget(self, device_id: str) -> None:
        self._keys.pop(device_id, None)
        self._seen.pop(("device", device_id), None)
        self._seen.pop(("twin", device_id), None)
        self.explicit_keys.discard(device_id)
        self.explicit_scope.discard(device_id)
        self.device_carried.pop(device_id, None)
        self.twin_carried.pop(device_id, None)

    def _note_writes(self, entries: Any, want: Expectation) -> None:
        """Remember, for each device an entry wrote successfully, which members the write
        carried and which generated members the run chose (keys, deviceScope): a member an
        update left out is replaced, kept or cleared as the endpoint reads "overwritten"
        (DOC-BULK), so read-backs do not hold it to the hub's choice (decision
        update-omitted-members)."""
        for index, entry in _device_entries(entries):
            claim = want.claim(index)
            if claim is None or claim.code is not None:
                continue
            device_id = entry["id"]
            canonical = _CONTRACT.canonical_mode(entry.get("importMode"))
            props = entry.get("properties")
            twin = frozenset(name for name, present in (
                ("tags", "tags" in entry),
                ("desired", isinstance(props, dict) and "desired" in props)) if present)
            if canonical in _CONTRACT.delete_modes:
                self._forget(device_id)
                self.deleted.add(device_id)
            elif canonical in _CONTRACT.twin_only_modes:
                self.twin_carried[device_id] = twin
            else:
                self.deleted.discard(device_id)
                # a member named in another case may be read either way (decision
                # member-casing): only exact names count as carried
                self.device_carried[device_id] = frozenset(
                    str(k).lower() for k in entry if k in _EXACT)
                self.twin_carried[device_id] = twin
                auth = entry.get("authentication")
                sym = member(auth, "symmetricKey")
                _mark(self.explicit_keys, device_id, bool(member(sym, "primaryKey")))
                # an edge device's scope is the endpoint's to generate, whatever the entry says
                edge = member(entry.get("capabilities"), "iotEdge") is True
                _mark(self.explicit_scope, device_id, bool(entry.get("deviceScope")) and not edge)

    # -- read-back --------------------------------------------------------------------------

    def read_back(self, ids: Iterable[str], payload: str | None, cause: Exchange) -> None:
        for device_id in dict.fromkeys(ids):
            if self.readable(device_id):
                self.read(device_id, payload, cause)

    def readable(self, device_id: str) -> bool:
        return isinstance(device_id, str) and device_id.startswith(self.client.prefix) and \
            0 < len(device_id) <= ID_MAX and device_id not in self.unknown

    def read(self, device_id: str, payload: str | None, cause: Exchange | None, *,
             twin: bool = True, device: bool = True) -> bool:
        """Read ``device_id`` and its twin back (``device``/``twin``: either only) and compare;
        True when the endpoint's answers were judged (not 401, 429 or 5xx)."""
        self.ledger.remember_read(device_id, device, twin)
        if not device:
            return self._read_twin(device_id, payload, cause, False)
        want = self.oracle.device(device_id)
        got = self.client.get_device(device_id)
        self.shape(got, payload, None)
        exchanges = [e for e in (cause, got) if e is not None]
        if not _judged(got):
            return False
        if want is None or got.status != 200:
            if want is None:
                self._seen.pop(("device", device_id), None)
                self._seen.pop(("twin", device_id), None)
            problem = [] if (want is None) == (got.status == 404) else [
                f"device {device_id!r} should {'not ' if want is None else ''}exist, GET "
                f"answered {got.status}"]
            if not self.ledger.judge("readback-device", problem, payload=payload,
                                     exchanges=exchanges):
                self.resync({device_id})  # later steps must not inherit the difference
            elif twin and want is None and device_id in self.deleted:
                return self._read_twin(device_id, payload, cause, False)  # gone with it
            return True
        body = got.json()
        if isinstance(body, dict):
            self.last_read[device_id] = body
        # only keys the endpoint generated are its own to choose: thumbprints, and the keys of
        # other authentication types, are compared
        generated = device_id not in self.explicit_keys and \
            member(want.get("authentication"), "type") == "sas"
        claim = Read("device", device_id, want, generated,
                     self.device_carried.get(device_id), None,
                     frozenset({"devicescope"} if device_id in self.explicit_scope else ()),
                     self._etag_before("device", device_id, want, body),
                     self._keys_before(device_id, want, body) if generated else None)
        if self._judge_read(claim, got, payload, exchanges):
            self.resync({device_id})  # even an open difference: later steps must not inherit it
            return True
        return self._read_twin(device_id, payload, cause, True) if twin else True

    def _read_twin(self, device_id: str, payload: str | None, cause: Exchange | None,
                   exists: bool) -> bool:
        want = self.oracle.device(device_id)
        got = self.client.get_twin(device_id)
        self.shape(got, payload, None)
        exchanges = [e for e in (cause, got) if e is not None]
        if not _judged(got):
            return False
        if want is None or got.status != 200:
            problem = [] if (want is None) == (got.status == 404) or (exists and want is None) \
                else [f"twin {device_id!r}: GET answered {got.status}"]
            if not self.ledger.judge("readback-twin", problem, payload=payload,
                                     exchanges=exchanges):
                self.resync({device_id})
            return True
        want_twin = self.oracle.twin(device_id) or {}
        claim = Read("twin", device_id, want_twin, True, self.twin_carried.get(device_id),
                     self.device_carried.get(device_id), frozenset(),
                     self._etag_before("twin", device_id, want, got.json(), want_twin))
        if self._judge_read(claim, got, payload, exchanges):
            self.resync({device_id})
        return True

    def _judge_read(self, read: Read, got: Exchange, payload: str | None,
                    exchanges: list[Exchange]) -> bool:
        differs = False
        for name, problems in run_checks(READ_CHECKS[read.kind], Seen(got, read=read)).items():
            self.ledger.judge(name, problems, payload=payload, exchanges=exchanges)
            differs |= bool(problems) and name != "etag-lifecycle"
        return differs

    def _keys_before(self, device_id: str, want: dict[str, Any],
                     body: Any) -> tuple[Any, Any] | None:
        """Remember the endpoint's generated keys; return them as last read when the oracle's
        device (generation and etag) has not changed since: nothing wrote it, so they must
        read the same (a twin update must not regenerate them)."""
        state = (want.get("generationId"), want.get("etag"))
        keys = generated_keys(member(body, "authentication"))
        last = self._keys.get(device_id)
        self._keys[device_id] = (state, keys)
        return last[1] if last is not None and last[0] == state else None

    def _etag_before(self, kind: str, device_id: str, device: dict[str, Any], body: Any,
                     twin: dict[str, Any] | None = None) -> str | None:
        """Remember what this read shows of the etag; return the endpoint's etag before a
        change the oracle says happened since the last read (it must differ now), or None."""
        oracle_etag = (twin or device)["etag"]
        endpoint = member(body, "etag")
        key = (kind, device_id)
        last = self._seen.get(key)
        generation = str(device.get("generationId"))
        if not isinstance(endpoint, str):
            self._seen.pop(key, None)
            return None
        if last is None or last.generation != generation:
            self._seen[key] = _Seen(generation, oracle_etag, endpoint, None)
            return None
        changed = oracle_etag != last.oracle
        before = last.endpoint if endpoint != last.endpoint else last.before
        self._seen[key] = _Seen(generation, oracle_etag, endpoint, before)
        return last.endpoint if changed else None


def diverged(exchange: Exchange, want: Expectation) -> tuple[bool, set[str]]:
    """(whether the oracle must keep its state, ids whose state at the endpoint is unknown).

    A request refused as a whole changed nothing; an answer the oracle did not predict leaves
    the named devices in a state the oracle does not know, so the run re-synchronises them.
    """
    ids = {i for i in want.ids if i} or set(bulk_ids(exchange.request_body))
    if exchange.status >= 500 or exchange.status < 200:
        return False, ids
    if rejected_whole(exchange):
        return True, set()
    result = result_of(exchange)
    if result is None:  # 2xx without a result body: applied, but how is unknown
        return want.request_level, ids
    failed = failed_entries(result, list(want.ids)).failed
    if want.request_level:
        named = [i for i in want.ids if i] or bulk_ids(exchange.request_body)
        return True, {i for n, i in enumerate(named) if n not in failed}
    return False, {c.device_id for c in want.entries
                   if c.device_id and (c.code is None) == (c.position in failed)}


def _fails_the_invalid(exchange: Exchange, alternative: Expectation) -> bool:
    """The answer is a result that fails every entry the alternative says must fail (an
    endpoint that applied an invalid entry is judged as one that accepted the request)."""
    result = result_of(exchange)
    if result is None:
        return False
    failed = failed_entries(result, list(alternative.ids)).failed
    return all(c.position in failed for c in alternative.entries if "*" in c.alternatives)


def _applies(check: str, want: Expectation, exchange: Exchange) -> bool:
    result = result_of(exchange) is not None
    if check in {"request-error-code", "status"}:
        return want.request_level and not result
    if check in {"is-successful", "errors"}:
        return result and not want.request_level
    return True


def _judged(exchange: Exchange) -> bool:
    """The answer is a verdict on the request (a 401, a 403 for the token, 429 or 5xx is
    not)."""
    if exchange.status == 403:
        return error_code(exchange) not in _REFUSED_TOKEN
    return exchange.status not in {401, 429} and exchange.status < 500


_REFUSED_TOKEN = frozenset({"IotHubUnauthorizedAccess", "IotHubUnauthorized", None})


def _why(exchange: Exchange) -> str:
    if exchange.status == 429:
        return "throttling (429 after the client's retries)"
    if exchange.status == 503:
        return "the endpoint was unavailable (503 after the client's retries)"
    if exchange.status in {401, 403}:
        return f"permissions ({exchange.status})"
    return f"the endpoint answered {exchange.status}"


def _cells(want: Expectation) -> Iterator[str]:
    """The importMode x outcome items the prediction exercises."""
    if want.request_level:
        return
    for claim in want.entries:
        if claim.mode is not None and not claim.module and "*" not in claim.alternatives:
            yield f"cell:{claim.mode}:{claim.code or 'ok'}"


def _device_entries(entries: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """The entries of a bulk body that write a device itself (not one of its modules)."""
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) \
                and not entry.get("moduleId"):
            yield index, entry


def _mark(ids: set[str], device_id: str, present: bool) -> None:
    if present:
        ids.add(device_id)
    else:
        ids.discard(device_id)


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
