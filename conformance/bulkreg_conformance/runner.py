"""One conformance run: pick the endpoint, check it answers, run the suites, clean up, verdict.

``run`` picks the endpoint (the built-in hub on 127.0.0.1 when none is given), sends one
:func:`preflight` read (an endpoint that cannot be reached, is not trusted or refuses the run's
token ends the run there, with one line and exit 2), runs the selected suites
(``bulkreg_conformance.suites``) over one :class:`~bulkreg_conformance.context.Context`, and
always cleans up (also on failure, Ctrl-C and SIGTERM). ``report`` renders the result.

A run always ends: no request outlives ``--time-budget`` by more than :data:`GRACE` seconds (the
client cuts requests in flight), and the cleanup has its own deadline (:data:`SIGNAL_CLEANUP`
seconds after a signal, so the process exits within 10 s of it).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bulkreg_conformance import replay as replay_calls
from bulkreg_conformance import suites
from bulkreg_conformance.checks import Failure
from bulkreg_conformance.client import (
    CleanupStopped,
    Client,
    ClientError,
    EndpointUnreachable,
    Exchange,
    OutOfTime,
)
from bulkreg_conformance.context import Context, Coverage, Settings, Tally
from bulkreg_conformance.suites import SUITES, differential

__all__ = ["SUITES", "PreflightFailed", "Result", "Settings", "preflight", "run"]

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
    errors: list[str]  # environment problems (unreachable endpoint, budget reached)
    interrupted: bool = False
    suppressed: Counter[str] = field(default_factory=Counter)
    secrets: tuple[str, ...] = ()  # key, tokens, signatures: never written, in any form

    @property
    def failed(self) -> bool:
        strict = self.settings.strict
        return bool(self.leaks) or any(f.verdict(strict) == "failed" for f in self.failures) \
            or any(t.failed for t in self.tally.values()) or bool(self.errors)

    def exit_code(self) -> int:
        if self.errors and not self.failures and not self.tally:
            return 2
        return 1 if self.failed else 0



# -- the run -------------------------------------------------------------------------------------

@contextlib.contextmanager
def _endpoint(settings: Settings) -> Iterator[tuple[str, str, bool]]:
    if settings.endpoint:
        if not settings.connection_string:
            raise ClientError("an endpoint needs a connection string (--connection-string or "
                              "BULKREG_CONNECTION_STRING)")
        yield settings.endpoint, settings.connection_string, False
        return
    from bulkreg_conformance.hub import cli as hub_cli  # noqa: PLC0415 - only for the built-in hub

    with hub_cli.start_background() as hub:
        yield hub.url, hub.connection_string, True


@contextlib.contextmanager
def _signals_interrupt(client: Client) -> Iterator[None]:
    """SIGINT and SIGTERM (a CI runner's) cut the requests in flight, then raise
    KeyboardInterrupt: the run cleans up within its signal deadline."""
    def handler(signum: int, frame: Any) -> None:
        client.interrupt()
        raise KeyboardInterrupt

    previous: dict[signal.Signals, Any] = {}
    try:
        for which in (signal.SIGINT, signal.SIGTERM):
            previous[which] = signal.signal(which, handler)
    except ValueError:  # not the main thread (pytest-xdist, a plugin): nothing to install
        pass
    try:
        yield
    finally:
        for which, old in previous.items():
            signal.signal(which, old)


def _grace(settings: Settings) -> float:
    # a rate-limited step (a bulk call and its read-backs) may finish after the budget
    return GRACE + (10.0 / settings.rate_limit if settings.rate_limit else 0.0)


def run(settings: Settings, *, progress: Callable[[str], None] | None = None) -> Result:
    """Run the selected suites against the endpoint; never raises for endpoint behaviour.

    Raises :class:`PreflightFailed` (a ClientError) when the endpoint cannot be tested at all.
    """
    started = time.monotonic()
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    prefix = settings.prefix or f"bulkreg-{secrets.token_hex(4)}-"
    errors: list[str] = []
    interrupted = False
    with _endpoint(settings) as (url, cs, builtin):
        client = Client(url, cs, prefix=prefix, rate_limit=settings.rate_limit,
                        max_requests=settings.max_requests, ca_cert=settings.ca_cert)
        client.deadline = started + settings.time_budget + _grace(settings)
        leaks: list[str] = []
        with _signals_interrupt(client):
            try:
                preflight(client)
            except BaseException:
                client.close()
                raise
            ctx = Context(client, settings, seed)
            client.deadline = ctx.deadline + _grace(settings)
            if progress:
                ctx.progress = progress
                if hasattr(progress, "stats"):  # a live display reads the counts while it draws
                    progress.stats = lambda: _live_stats(ctx)
            try:
                if settings.replay is not None:
                    _replay(ctx, settings.replay, errors)
                else:
                    suites.run_all(ctx, errors)
            except KeyboardInterrupt:
                interrupted = True
                errors.append("interrupted: cleaned up and stopped")
            finally:
                leaks = _cleanup(ctx, errors, interrupted)
                client.close()
    return Result(settings, url, builtin, prefix, seed, ctx.tally, ctx.failures, ctx.coverage,
                  client.sent, time.monotonic() - started, leaks, errors, interrupted,
                  ctx.suppressed, client.secrets())


def preflight(client: Client) -> None:
    """One authenticated read inside the run's prefix, before any suite.

    200 or 404 (or anything else the endpoint answers) means reachable and authorised; a 401 or
    403, no connection, an untrusted certificate or no answer in time raise
    :class:`PreflightFailed` with one line naming the cause and the remedy.
    """
    try:
        exchange = client.get_device(client.prefix + PREFLIGHT_ID)
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


def _unreachable(endpoint: str, exc: EndpointUnreachable) -> str:
    if exc.kind == "tls":
        return (f"cannot verify the TLS certificate of {endpoint} ({exc.reason}); pass "
                "--ca-cert FILE with the CA that signed it, or set REQUESTS_CA_BUNDLE")
    if exc.kind == "timeout":
        return f"the endpoint {endpoint} did not answer ({exc.reason})"
    return f"cannot reach the endpoint {endpoint} ({exc.reason}); check the endpoint URL"


_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")


def _error_code(exchange: Exchange) -> str:
    """A space and the errorCode of an IoT Hub error answer, when it names one plainly."""
    code = exchange.header("iothub-errorcode") or ""
    body = exchange.json()
    if not code and isinstance(body, dict):
        raw = body.get("ErrorCode") or body.get("errorCode") or ""
        found = re.search(r"ErrorCode:(\w+)", str(body.get("Message", "")))
        code = str(raw) if raw else (found.group(1) if found else "")
    return f" {code}" if _CODE.match(code) else ""


def _live_stats(ctx: Context) -> str:
    tallies = list(ctx.tally.values())
    failed = sum(t.failed for t in tallies)
    deviations = sum(t.deviation for t in tallies)
    return (f"{ctx.client.sent} requests, {sum(t.passed for t in tallies)} checks passed, "
            f"{failed} failed, {deviations} deviation(s)")


def _replay(ctx: Context, replay: dict[str, Any], errors: list[str]) -> None:
    """Re-send a replay file's sequence in this run's fresh prefix, every check applied."""
    differential.run(ctx)
    try:
        replay_calls.run(ctx, replay)
    except OutOfTime:
        if ctx.client.interrupted:
            raise KeyboardInterrupt from None
        errors.append("replay: --time-budget spent before the sequence ended")


def _cleanup(ctx: Context, errors: list[str], interrupted: bool) -> list[str]:
    """Delete what the run touched, within the cleanup's own deadline; the ids not confirmed
    gone are returned (and fail the run)."""
    ctx.progress("cleanup")
    client = ctx.client
    rate = ctx.settings.rate_limit
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
    ctx.judge("cleanup", [f"device {i!r} is still there after cleanup" for i in leaks])
    return leaks
