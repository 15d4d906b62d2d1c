"""One conformance run: pick the endpoint, run the suites, clean up, give the verdict.

``run`` picks the endpoint (the built-in hub on 127.0.0.1 when none is given), runs the selected
suites (``bulkreg_conformance.suites``) over one :class:`~bulkreg_conformance.context.Context`,
and always cleans up (also on failure, Ctrl-C and SIGTERM). ``report`` renders the result.
"""

from __future__ import annotations

import contextlib
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
from bulkreg_conformance.client import Client, ClientError
from bulkreg_conformance.context import Context, Coverage, Settings, Tally
from bulkreg_conformance.suites import SUITES, differential

__all__ = ["SUITES", "Result", "Settings", "run"]


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
            raise ClientError("--endpoint needs --connection-string (or "
                              "BULKREG_CONNECTION_STRING)")
        yield settings.endpoint, settings.connection_string, False
        return
    from bulkreg_conformance.hub import cli as hub_cli  # noqa: PLC0415 - only for the built-in hub

    with hub_cli.start_background() as hub:
        yield hub.url, hub.connection_string, True


@contextlib.contextmanager
def _sigint_as_interrupt() -> Iterator[None]:
    # A SIGTERM from a CI runner gets the same cleanup as Ctrl-C.
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (pytest-xdist, a plugin): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(settings: Settings, *, progress: Callable[[str], None] | None = None) -> Result:
    """Run the selected suites against the endpoint; never raises for endpoint behaviour."""
    started = time.monotonic()
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    prefix = settings.prefix or f"bulkreg-{secrets.token_hex(4)}-"
    errors: list[str] = []
    interrupted = False
    with _endpoint(settings) as (url, cs, builtin):
        client = Client(url, cs, prefix=prefix, rate_limit=settings.rate_limit,
                        max_requests=settings.max_requests)
        ctx = Context(client, settings, seed)
        if progress:
            ctx.progress = progress
            if hasattr(progress, "stats"):  # a live display reads the counts while it draws
                progress.stats = lambda: _live_stats(ctx)
        leaks: list[str] = []
        try:
            with _sigint_as_interrupt():
                if settings.replay is not None:
                    _replay(ctx, settings.replay)
                else:
                    suites.run_all(ctx, errors)
        except KeyboardInterrupt:
            interrupted = True
            errors.append("interrupted: cleaned up and stopped")
        finally:
            leaks = _cleanup(ctx, errors)
            client.close()
    return Result(settings, url, builtin, prefix, seed, ctx.tally, ctx.failures, ctx.coverage,
                  client.sent, time.monotonic() - started, leaks, errors, interrupted,
                  ctx.suppressed)


def _live_stats(ctx: Context) -> str:
    tallies = list(ctx.tally.values())
    failed = sum(t.failed for t in tallies)
    deviations = sum(t.deviation for t in tallies)
    return (f"{ctx.client.sent} requests, {sum(t.passed for t in tallies)} checks passed, "
            f"{failed} failed, {deviations} deviation(s)")


def _replay(ctx: Context, replay: dict[str, Any]) -> None:
    """Re-send a replay file's sequence in this run's fresh prefix, every check applied."""
    differential.run(ctx)
    replay_calls.run(ctx, replay)


def _cleanup(ctx: Context, errors: list[str]) -> list[str]:
    ctx.progress("cleanup")
    try:
        leaks = ctx.client.cleanup()
    except ClientError as exc:
        errors.append(f"cleanup: {exc}")
        return sorted(ctx.client.touched)
    except KeyboardInterrupt:  # a second Ctrl-C: report what may be left
        errors.append("cleanup interrupted")
        return sorted(ctx.client.touched)
    ctx.judge("cleanup", [f"device {i!r} is still there after cleanup" for i in leaks])
    return leaks
