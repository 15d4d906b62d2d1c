"""One conformance run: pick the endpoint, check it can be tested, run the minimum-coverage plan
and the suites, clean up, verdict.

``run`` picks the endpoint (the built-in hub on 127.0.0.1 when none is given), runs the
:func:`preflight` (an authenticated read, then the creation, twin read and deletion of one
device inside the run's prefix: an endpoint that cannot be reached, is not trusted, refuses the
run's token, lets it only read or not read twins ends the run there, with one line and exit 2),
runs the plan and the selected
suites (``bulkreg_conformance.suites``) over one :class:`~bulkreg_conformance.session.Session`,
and always cleans up (also on failure, Ctrl-C and SIGTERM). The verdict: PASS (0) when nothing
failed and the run reached its minimum coverage (``bulkreg_conformance.coverage``), FAIL (1),
INCOMPLETE (3) when nothing failed but the minimum was not reached, INTERRUPTED (130) after
Ctrl-C or SIGTERM. ``report`` renders the result.

A run always ends: no request outlives ``--time-budget`` by more than :data:`GRACE` seconds (the
client cuts requests in flight), and the cleanup has its own deadline (:data:`SIGNAL_CLEANUP`
seconds after a signal, so the process exits within 10 s of it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulkreg_conformance import differential, suites
from bulkreg_conformance import replay as replay_calls
from bulkreg_conformance.answers import error_code as _error_code_name
from bulkreg_conformance.client import (
    CleanupStopped,
    Client,
    ClientError,
    EndpointUnreachable,
    Exchange,
    OutOfTime,
)
from bulkreg_conformance.coverage import Coverage, minimum
from bulkreg_conformance.session import Failure, Session, Tally
from bulkreg_conformance.settings import DEFAULT_TIME_BUDGET, SUITES, Settings
from bulkreg_conformance.suites import plan
from bulkreg_conformance.suites.jobs import sas_signature

__all__ = ["SUITES", "PreflightFailed", "Result", "Settings", "preflight", "run", "time_budget"]

GRACE = 2.0  # seconds a request in flight may outlive --time-budget (more with --rate-limit)
CLEANUP = 10.0  # seconds a cleanup after a finished run gets, plus CLEANUP_PER_DEVICE for
CLEANUP_PER_DEVICE = 0.5  # each device it confirms gone (progress earns time; no progress ends)
CLEANUP_REQUEST = 8.0  # seconds one cleanup request may take: longer, and the endpoint is gone
SIGNAL_CLEANUP = 7.0  # seconds the cleanup after SIGINT/SIGTERM gets, whatever is left
PREFLIGHT_ID = "preflight"  # GET {prefix}preflight: inside the prefix, never created


class PreflightFailed(ClientError):
    """The endpoint cannot be tested: unreachable, untrusted, or it refuses the run's token."""


@dataclass
class Result:
    settings: Settings
    endpoint: str
    builtin: bool
    prefix: str
    seed: int
    tally: dict[str, Tally]
    failures: list[Failure]
    coverage: Coverage
    requests: int
    elapsed: float
    leaks: list[str]
    errors: list[str]  # problems of the run (unreachable endpoint, a suite that could not run)
    interrupted: bool = False
    suppressed: Counter[str] = field(default_factory=Counter)
    secrets: tuple[str, ...] = ()  # key, tokens, signatures: never written, in any form

    notes: list[str] = field(default_factory=list)  # what the run decided that a user may not
    # expect (a time budget grown to fit the plan), one line each

    @property
    def failed(self) -> bool:
        strict = self.settings.strict
        return bool(self.leaks) or any(f.verdict(strict) == "failed" for f in self.failures) \
            or any(t.failed for t in self.tally.values()) or bool(self.errors)

    @property
    def verdict(self) -> str:
        """PASS, FAIL, INCOMPLETE or INTERRUPTED (see the module docstring)."""
        if self.interrupted:
            return "INTERRUPTED"
        if self.failed:
            return "FAIL"
        return "PASS" if self.coverage.reached() else "INCOMPLETE"

    def exit_code(self) -> int:
        return {"PASS": 0, "FAIL": 1, "INCOMPLETE": 3, "INTERRUPTED": 130}[self.verdict]


# -- the run -------------------------------------------------------------------------------------

@contextlib.contextmanager
def _endpoint(settings: Settings) -> Iterator[tuple[str, str, str | None, bool]]:
    """(url, connection string, a read-only policy's connection string, built-in)."""
    if settings.endpoint:
        if not settings.connection_string:
            raise ClientError("an endpoint needs a connection string (--connection-string or "
                              "BULKREG_CONNECTION_STRING)")
        yield settings.endpoint, settings.connection_string, None, False
        return
    from bulkreg_conformance.hub import cli as hub_cli  # noqa: PLC0415 - only for the built-in hub

    with hub_cli.start_background() as hub:
        yield hub.url, hub.connection_string, hub.connection_string_for("registryRead"), True


@contextlib.contextmanager
def _signals_interrupt(client: Client) -> Iterator[None]:
    """SIGINT and SIGTERM (a CI runner's) cut the requests in flight, then raise
    KeyboardInterrupt: the run cleans up within its signal deadline."""
    def handler(signum: int, frame: Any) -> None:
        client.interrupt()
        raise KeyboardInterrupt

    unraisable = sys.unraisablehook

    def hook(info: Any) -> None:
        # a KeyboardInterrupt raised inside a gc callback or a __del__ is dropped by Python,
        # with a traceback on stderr; the client's flag carries it (see run), so drop it quietly
        if info.exc_type is not KeyboardInterrupt:
            unraisable(info)

    previous: dict[signal.Signals, Any] = {}
    try:
        for which in (signal.SIGINT, signal.SIGTERM):
            previous[which] = signal.signal(which, handler)
    except ValueError:  # not the main thread (pytest-xdist, a plugin): nothing to install
        pass
    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = unraisable
        for which, old in previous.items():
            signal.signal(which, old)


@contextlib.contextmanager
def _blobs(settings: Settings) -> Iterator[str | None]:
    """A container SAS URI for the jobs suite of a built-in hub run: Azurite (when installed),
    started in a temporary folder and stopped at the end; None when the run has its own
    (``--blob-container-uri``), does not run the jobs suite, or has no Azurite."""
    if settings.endpoint or settings.blob_container_uri or "jobs" not in settings.suites:
        yield None
        return
    from bulkreg_conformance.azurite import find_azurite, start_azurite  # noqa: PLC0415

    program = find_azurite()
    if program is None:
        if settings.suites == ("jobs",):
            raise ClientError("the jobs suite needs a blob store: --blob-container-uri, or "
                              "Azurite for the built-in hub (npm ci in tests/azurite, or "
                              "BULKREG_AZURITE)")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bulkreg-azurite-") as folder:
        try:
            azurite = start_azurite(Path(folder), executable=program)
        except RuntimeError as exc:
            raise ClientError(f"Azurite did not start: {exc}") from None
        with azurite:
            yield azurite.container_uri("bulkreg-conform")


def _grace(settings: Settings) -> float:
    # a rate-limited step (a bulk call and its read-backs) may finish after the budget
    return GRACE + (10.0 / settings.rate_limit if settings.rate_limit else 0.0)


def time_budget(settings: Settings) -> tuple[float, str | None]:
    """The run's time budget, and a note when it is not the one asked for: without
    ``--time-budget``, a ``--rate-limit`` too slow to send the minimum-coverage plan within the
    default budget grows it to fit (the plan's requests at that rate, plus a quarter)."""
    if settings.time_budget is not None:
        return settings.time_budget, None
    if not settings.rate_limit:
        return DEFAULT_TIME_BUDGET, None
    requests = plan.estimate(settings)
    needed = requests / settings.rate_limit * 1.25 + 10.0
    if needed <= DEFAULT_TIME_BUDGET:
        return DEFAULT_TIME_BUDGET, None
    return needed, (f"time budget: {needed:.0f} s, grown from {DEFAULT_TIME_BUDGET:.0f} s to fit "
                    f"the minimum-coverage plan (about {requests} requests at --rate-limit "
                    f"{settings.rate_limit:g}); --time-budget sets it")


def run(settings: Settings, *, progress: Callable[[str], None] | None = None) -> Result:
    """Run the plan and the selected suites against the endpoint; never raises for endpoint
    behaviour.

    Raises :class:`PreflightFailed` (a ClientError) when the endpoint cannot be tested at all.
    """
    started = time.monotonic()
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    prefix = settings.prefix or f"bulkreg-{secrets.token_hex(4)}-"
    budget, note = time_budget(settings)
    errors: list[str] = []
    interrupted = False
    with _endpoint(settings) as (url, cs, read_cs, builtin), _blobs(settings) as blobs:
        if read_cs and not settings.read_connection_string:
            settings = dataclasses.replace(settings, read_connection_string=read_cs)
        if blobs and not settings.blob_container_uri:
            settings = dataclasses.replace(settings, blob_container_uri=blobs)
        coverage = Coverage(minimum(settings.suites,
                                    read_only=bool(settings.read_connection_string),
                                    jobs=bool(settings.blob_container_uri)))
        transport = None
        if settings.app is not None:
            from bulkreg_conformance.wsgi import WsgiTransport  # noqa: PLC0415

            transport = WsgiTransport(settings.app)
        client = Client(url, cs, prefix=prefix, rate_limit=settings.rate_limit,
                        max_requests=settings.max_requests, ca_cert=settings.ca_cert,
                        transport=transport)
        signature = sas_signature(settings.blob_container_uri or "")
        if signature:
            client.redactor.add(signature)
        client.deadline = started + budget + _grace(settings)
        leaks: list[str] = []
        with _signals_interrupt(client):
            try:
                preflight(client)
            except BaseException:
                client.close()
                raise
            coverage.cover("auth:write")
            session = Session(client, settings, seed, coverage, deadline=started + budget)
            session.mirror.observers.append(differential.observe)
            client.deadline = session.deadline + _grace(settings)
            if progress:
                session.progress = progress
                if hasattr(progress, "stats"):  # a live display reads the counts while it draws
                    progress.stats = lambda: _live_stats(session)
            try:
                if settings.replay is not None:
                    _replay(session, settings.replay, errors)
                else:
                    suites.run_all(session, errors)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                # the handler's KeyboardInterrupt can be lost (raised inside a gc callback or a
                # __del__, which Python ignores); the client's flag is not: the run stopped
                # sending the moment the signal came, and says so
                interrupted = interrupted or client.interrupted
                if interrupted:
                    errors.append("interrupted: cleaned up and stopped")
                leaks = _cleanup(session, errors, interrupted)
                client.close()
    ledger = session.ledger
    return Result(settings, url, builtin, prefix, seed, ledger.tally, ledger.failures, coverage,
                  client.sent, time.monotonic() - started, leaks, errors, interrupted,
                  ledger.suppressed, client.secrets(), [note] if note else [])


def preflight(client: Client) -> None:
    """Before any suite: one authenticated read inside the run's prefix, then one device
    created there (the run needs to write), its twin read (the run reads twins back), a query
    that learns whether the endpoint lists it (the cleanup can then confirm with one query),
    and its deletion.

    200 or 404 (or anything else the endpoint answers) to the read means reachable and
    authorised to read; a 401 or 403 to the read or to the write, no connection, an untrusted
    certificate or no answer in time raise :class:`PreflightFailed` with one line naming the
    cause and the remedy.
    """
    device = client.prefix + PREFLIGHT_ID
    try:
        exchange = client.get_device(device)
        if exchange.status not in {401, 403}:
            write = client.bulk([{"id": device, "importMode": "create"}])
            twin = None
            if write.status not in {401, 403}:
                twin = client.get_twin(device)
                client.probe_query(device)
                client.bulk([{"id": device, "importMode": "delete"}])
    except EndpointUnreachable as exc:
        raise PreflightFailed(_unreachable(client.endpoint, exc)) from None
    except OutOfTime:
        raise PreflightFailed(f"the endpoint {client.endpoint} gave no complete answer within "
                              "the run's time budget") from None
    if exchange.status == 401:
        raise PreflightFailed(f"the endpoint rejected the run's SAS token "
                              f"(401{_error_code(exchange)}); check the connection string")
    if exchange.status == 403:
        raise PreflightFailed(f"the endpoint refused the run's SAS token "
                              f"(403{_error_code(exchange)}); the connection string's policy "
                              "needs registry read and write permissions")
    if write.status in {401, 403}:
        raise PreflightFailed(f"the connection string's policy may not write: creating "
                              f"{device!r} was refused ({write.status}{_error_code(write)}); "
                              "the run needs registry write permission (registryReadWrite or "
                              "iothubowner)")
    if twin is not None and twin.status in {401, 403}:
        raise PreflightFailed(f"the connection string's policy may not read twins: reading "
                              f"{device!r}'s twin was refused ({twin.status}"
                              f"{_error_code(twin)}); the run reads every twin back and needs "
                              "serviceConnect too (iothubowner, or a policy with "
                              "registryReadWrite and serviceConnect)")


def _unreachable(endpoint: str, exc: EndpointUnreachable) -> str:
    if exc.kind == "tls":
        return (f"cannot verify the TLS certificate of {endpoint} ({exc.reason}); pass "
                "--ca-cert FILE (pytest: --bulkreg-ca-cert) with the CA that signed it, or set "
                "BULKREG_CA_CERT or REQUESTS_CA_BUNDLE")
    if exc.kind == "timeout":
        return f"the endpoint {endpoint} did not answer ({exc.reason})"
    return f"cannot reach the endpoint {endpoint} ({exc.reason}); check the endpoint URL"


_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")


def _error_code(exchange: Exchange) -> str:
    """A space and the errorCode of an IoT Hub error answer, when it names one plainly."""
    code = _error_code_name(exchange) or ""
    return f" {code}" if _CODE.match(code) else ""


def _live_stats(session: Session) -> str:
    tallies = list(session.ledger.tally.values())
    failed = sum(t.failed for t in tallies)
    deviations = sum(t.deviation for t in tallies)
    return (f"{session.client.sent} requests, {sum(t.passed for t in tallies)} checks passed, "
            f"{failed} failed, {deviations} deviation(s)")


def _replay(session: Session, replay: dict[str, Any], errors: list[str]) -> None:
    """Re-send a replay file's sequence in this run's fresh prefix, every check applied; a
    replay's coverage is its sequence."""
    session.coverage.required.clear()
    try:
        replay_calls.run(session, replay)
    except OutOfTime:
        if session.client.interrupted:
            raise KeyboardInterrupt from None
        errors.append("replay: --time-budget spent before the sequence ended")


def _cleanup(session: Session, errors: list[str], interrupted: bool) -> list[str]:
    """Delete what the run touched, within the cleanup's own deadline; the ids not confirmed
    gone are returned (and fail the run)."""
    session.progress("cleanup")
    client = session.client
    rate = session.settings.rate_limit
    if interrupted:
        client.begin_cleanup(SIGNAL_CLEANUP, CLEANUP_REQUEST)
    else:  # --rate-limit: the time the cleanup's requests need at that rate too
        client.begin_cleanup(CLEANUP + (client.cleanup_cost() / rate if rate else 0.0),
                             CLEANUP_REQUEST, CLEANUP_PER_DEVICE)
    try:
        leaks = client.cleanup()
    except CleanupStopped as exc:
        left = f"; {len(exc.remaining)} device(s) not cleaned up" if exc.remaining else ""
        errors.append(f"cleanup stopped: {exc}{left}")
        return exc.remaining
    session.judge("cleanup", [f"device {i!r} is still there after cleanup" for i in leaks])
    return leaks
