"""What one conformance run shares: the endpoint, the oracle's mirror of it, the ledger, coverage.

A :class:`Session` is what every suite works through: :meth:`Session.bulk_step` sends one bulk
call (the mirror judges it and brings the oracle along, see :mod:`.step`) and reads the devices
it touched back; the ledger (:mod:`.ledger`) tallies the checks and keeps the failures with
their replays; the coverage (:mod:`bulkreg_conformance.coverage`) records what the run reached.
Suites import this package, never the runner.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import bulkreg_schema
from bulkreg_conformance.answers import rejected_whole
from bulkreg_conformance.checks import Problem
from bulkreg_conformance.client import Client, Exchange, bulk_ids
from bulkreg_conformance.coverage import Coverage
from bulkreg_conformance.evidence import Evidence
from bulkreg_conformance.session.ledger import Failure, Ledger, Tally
from bulkreg_conformance.session.step import (
    CURRENT_ETAG,
    CURRENT_TWIN_ETAG,
    PREVIOUS_ETAG,
    PREVIOUS_TWIN_ETAG,
    STALE_ETAG,
    Mirror,
)
from bulkreg_conformance.settings import Settings

__all__ = [
    "CURRENT_ETAG",
    "CURRENT_TWIN_ETAG",
    "ID_MAX",
    "PREVIOUS_ETAG",
    "PREVIOUS_TWIN_ETAG",
    "STALE_ETAG",
    "Failure",
    "Session",
    "Tally",
]

ID_MAX = bulkreg_schema.contract().id_max_length


class Session:
    """What every suite shares; see the module docstring."""

    def __init__(self, client: Client, settings: Settings, seed: int, coverage: Coverage, *,
                 deadline: float, read_client: Client | None = None) -> None:
        self.client = client
        self.read_client = read_client  # signs with a read-only policy (auth suite)
        self.settings = settings
        self.seed = seed
        self.strict = settings.strict
        self.coverage = coverage
        self.ledger = Ledger(strict=settings.strict, prefix=client.prefix,
                             api_version=client.api_version)
        self.mirror = Mirror(client, self.ledger, coverage,
                             readback_limit=settings.readback_limit)
        self.deadline = deadline
        self._serial = 0
        self.progress: Callable[[str], None] = lambda _: None

    # -- ids and time -----------------------------------------------------------------------

    def fresh_id(self, label: str = "d") -> str:
        self._serial += 1
        return f"{self.client.prefix}{label}{self._serial}"

    def scoped(self, device_id: str) -> str:
        """``device_id`` moved into the run's prefix (kept within the id length limit)."""
        return (self.client.prefix + device_id)[:ID_MAX] if device_id else device_id

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    @property
    def suite(self) -> str:
        return self.ledger.suite

    @suite.setter
    def suite(self, name: str) -> None:
        self.ledger.suite = name

    # -- verdicts (the ledger's) ------------------------------------------------------------

    def judge(self, check: str, problems: Sequence[Problem | str], *,
              evidence: Evidence | None = None, payload: str | None = None,
              exchanges: Sequence[Exchange] = (), rule: str | None = None) -> bool:
        return self.ledger.judge(check, problems, evidence=evidence, payload=payload,
                                 exchanges=exchanges, rule=rule)

    def fail(self, failure: Failure) -> None:
        self.ledger.fail(failure)

    def passed(self, check: str) -> None:
        self.ledger.passed(check)

    def capture(self) -> contextlib.AbstractContextManager[list[Failure]]:
        return self.ledger.capture()

    def episode(self) -> None:
        self.ledger.episode()

    # -- steps ------------------------------------------------------------------------------

    def bulk_step(self, entries: Any, *, rule: str | None = None, raw: bytes | None = None,
                  readback: bool = True, api_version: str | None = None,
                  covers: Iterable[str] = (),
                  bounds: Mapping[str, Evidence] | None = None) -> Exchange:
        """One bulk call, judged, then the first ids it names read back; a call refused as a
        whole, as predicted, changed nothing: of it, only the first entry's device is read
        (when it names more than one), which must not have been applied."""
        exchange, want = self.mirror.call(entries, rule=rule, raw=raw, api_version=api_version,
                                          covers=covers, bounds=bounds)
        if not readback:
            return exchange
        ids = [i for i in dict.fromkeys(bulk_ids(exchange.request_body))
               if i not in self.mirror.unknown]
        if want.request_level and rejected_whole(exchange):
            if len(ids) > 1:  # nothing of it may have been applied: its first entry is not
                self.read(ids[0], exchange, twin=False)
        else:
            self.read_back(ids[: self.settings.readback_limit], exchange)
        return exchange

    def read_back(self, ids: Iterable[str], cause: Exchange | None) -> None:
        payload = cause.request_body.decode("utf-8", "replace") if cause else None
        for device_id in dict.fromkeys(ids):
            if self.mirror.readable(device_id):
                self.mirror.read(device_id, payload, cause)

    def read(self, device_id: str, cause: Exchange | None, *, twin: bool = True,
             device: bool = True) -> bool:
        """Read one device and its twin back (or either only); True when the answers were
        judged."""
        if not self.mirror.readable(device_id):
            return False
        payload = cause.request_body.decode("utf-8", "replace") if cause else None
        return self.mirror.read(device_id, payload, cause, twin=twin, device=device)

    def resync(self, ids: set[str]) -> None:
        self.mirror.resync(ids)

    def shape(self, exchange: Exchange, payload: str | None) -> None:
        self.mirror.shape(exchange, payload, None)

    @contextlib.contextmanager
    def suite_named(self, name: str) -> Iterator[None]:
        previous, self.suite = self.suite, name
        try:
            yield
        finally:
            self.suite = previous
