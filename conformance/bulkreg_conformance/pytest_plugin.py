"""The conformance kit as a pytest plugin: ``pytest --bulkreg-endpoint URL
--bulkreg-connection-string CS [--bulkreg-suite property,stateful,...]``.

Inert unless ``--bulkreg-endpoint`` is given: it only adds options, collects nothing and imports
nothing beyond pytest and the standard library (the runner, hypothesis, schemathesis and requests
load when the first conformance item runs). With an endpoint, it adds one item per selected
suite plus ``bulkreg::coverage`` and ``bulkreg::cleanup``; the first item to run performs the
whole conformance run once (the same run as ``bulkreg conform``, with the same cleanup), and
each item then passes or fails on its suite's failures. Deviations (observed/inferred behaviour)
fail an item only with ``--bulkreg-strict``. The verdict is the CLI's: a run that did not reach
its minimum coverage skips ``bulkreg::coverage`` naming what it missed, and the session exits 3
(INCOMPLETE) where it would have exited 0.

Registered as the ``pytest11`` entry point ``bulkreg``; without the entry point, load it with
``-p bulkreg_conformance.pytest_plugin``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from bulkreg_conformance.settings import SUITES

if TYPE_CHECKING:
    from bulkreg_conformance.runner import Result

__all__ = ["ConformanceItem", "pytest_addoption", "pytest_collection_modifyitems",
           "pytest_sessionfinish"]

INCOMPLETE = 3  # the exit status of a run that did not reach its minimum coverage (as the CLI)

_RESULT = pytest.StashKey["Result | BaseException"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bulkreg", "bulkreg conformance kit (inert without --bulkreg-endpoint)")
    group.addoption("--bulkreg-endpoint", metavar="URL",
                    help="run the conformance suites against this endpoint")
    group.addoption("--bulkreg-connection-string", metavar="CS",
                    help="service connection string (default: $BULKREG_CONNECTION_STRING)")
    group.addoption("--bulkreg-read-connection-string", metavar="CS",
                    help="a read-only policy's connection string: the auth suite checks it "
                         "cannot write (default: $BULKREG_READ_CONNECTION_STRING)")
    group.addoption("--bulkreg-ca-cert", metavar="FILE",
                    help="trust the CA certificate(s) in FILE (PEM) for an https endpoint "
                         "(default: $BULKREG_CA_CERT, else the system's or $REQUESTS_CA_BUNDLE)")
    group.addoption("--bulkreg-suite", default=",".join(SUITES),
                    help=f"comma-separated suites (default: {','.join(SUITES)})")
    group.addoption("--bulkreg-max-examples", type=int, default=25, metavar="N")
    group.addoption("--bulkreg-seed", type=int, default=None, metavar="N")
    group.addoption("--bulkreg-prefix", default=None, help="device id prefix of the run")
    group.addoption("--bulkreg-rate-limit", type=float, default=None, metavar="R")
    group.addoption("--bulkreg-max-requests", type=int, default=None, metavar="N")
    group.addoption("--bulkreg-time-budget", type=float, default=None, metavar="SECONDS",
                    help="stop drawing new cases after this long (default 50, grown under "
                         "--bulkreg-rate-limit to fit the minimum-coverage plan)")
    group.addoption("--bulkreg-strict", action="store_true",
                    help="deviations from observed/inferred behaviour fail too")


def _suites(config: pytest.Config) -> tuple[str, ...]:
    raw = str(config.getoption("bulkreg_suite"))
    # differential is no suite any more: it observes every bulk call of every run
    suites = tuple(s.strip() for s in raw.split(",") if s.strip() and s.strip() != "differential")
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        shown = ", ".join(unknown) or "(none)"
        raise pytest.UsageError(f"--bulkreg-suite: unknown suite(s) {shown}; known: "
                                f"{', '.join(SUITES)}")
    return suites


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not config.getoption("bulkreg_endpoint"):
        return
    suites = _suites(config)
    if not (config.getoption("bulkreg_connection_string")
            or os.environ.get("BULKREG_CONNECTION_STRING")):
        raise pytest.UsageError("--bulkreg-endpoint needs --bulkreg-connection-string "
                                "(or BULKREG_CONNECTION_STRING)")
    collector = ConformanceCollector.from_parent(session, name="bulkreg", nodeid="bulkreg")
    items.extend(collector.collect_suites(suites))


class ConformanceCollector(pytest.Collector):
    """Parent of the conformance items (they come from options, not from files)."""

    def collect(self) -> Iterator[pytest.Item]:  # pragma: no cover - items are added directly
        return iter(())

    def collect_suites(self, suites: tuple[str, ...]) -> list[pytest.Item]:
        names = [*suites, "coverage", "cleanup"]
        return [ConformanceItem.from_parent(self, name=name) for name in names]


class ConformanceItem(pytest.Item):
    """One suite's verdict from the shared conformance run (or the run's cleanup/errors)."""

    def runtest(self) -> None:
        result = _result(self.config)
        strict = bool(self.config.getoption("bulkreg_strict"))
        if self.name == "coverage":
            if not result.coverage.reached():
                from bulkreg_conformance.report import to_json  # noqa: PLC0415

                missing = to_json(result)["coverage"]["missing"]
                shown = "; ".join(f"{m['item']}: {m['why']}" for m in missing[:10])
                pytest.skip(f"INCOMPLETE: {len(missing)} coverage item(s) not reached: {shown}")
            return
        if self.name == "cleanup":
            problems = [f"device {leak!r} left behind" for leak in result.leaks]
            problems += result.errors
        else:
            problems = [_describe(f.to_dict(strict), self.config) for f in result.failures
                        if f.suite == self.name and f.verdict(strict) == "failed"]
        if problems:
            raise ConformanceFailure("\n\n".join(problems))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "bulkreg", None, f"bulkreg conform: {self.name}"


class ConformanceFailure(Exception):
    """An item's failures, already rendered (no traceback: the check's evidence is the story)."""


def _settings(config: pytest.Config) -> Any:
    from bulkreg_conformance.runner import Settings  # noqa: PLC0415 - inert until an item runs

    return Settings(
        endpoint=config.getoption("bulkreg_endpoint"),
        connection_string=config.getoption("bulkreg_connection_string")
        or os.environ.get("BULKREG_CONNECTION_STRING"),
        read_connection_string=config.getoption("bulkreg_read_connection_string")
        or os.environ.get("BULKREG_READ_CONNECTION_STRING"),
        ca_cert=config.getoption("bulkreg_ca_cert") or os.environ.get("BULKREG_CA_CERT"),
        suites=_suites(config),
        max_examples=config.getoption("bulkreg_max_examples"),
        seed=config.getoption("bulkreg_seed"),
        strict=bool(config.getoption("bulkreg_strict")),
        prefix=config.getoption("bulkreg_prefix"),
        rate_limit=config.getoption("bulkreg_rate_limit"),
        max_requests=config.getoption("bulkreg_max_requests"),
        time_budget=config.getoption("bulkreg_time_budget"),
    )


def _result(config: pytest.Config) -> Result:
    """The conformance run, performed once per session by the first item that needs it."""
    if _RESULT not in config.stash:
        from bulkreg_conformance import report  # noqa: PLC0415
        from bulkreg_conformance.client import ClientError  # noqa: PLC0415
        from bulkreg_conformance.runner import run  # noqa: PLC0415

        settings = _settings(config)
        try:
            outcome: Result | BaseException = run(settings)
        except ClientError as exc:
            outcome = ConformanceFailure(report.scrub(str(exc), _secrets(settings)))
        config.stash[_RESULT] = outcome
        if not isinstance(outcome, BaseException):
            terminal = config.pluginmanager.get_plugin("terminalreporter")
            if terminal is not None:
                text = report.summary(outcome, _secrets(settings))
                terminal.write_line("\n" + text.split("\n\n")[0])
    outcome = config.stash[_RESULT]
    if isinstance(outcome, BaseException):
        raise ConformanceFailure(f"bulkreg conform could not run: {outcome}")
    return outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that could not tell is no pass: the session exits 3 (INCOMPLETE), as the CLI."""
    outcome = session.config.stash.get(_RESULT, None)
    if outcome is not None and not isinstance(outcome, BaseException) and \
            outcome.verdict == "INCOMPLETE" and exitstatus == 0:
        session.exitstatus = INCOMPLETE


def _secrets(settings: Any) -> tuple[str, ...]:
    cs = settings.connection_string or ""
    key = cs.split("SharedAccessKey=", 1)[1].split(";", 1)[0] if "SharedAccessKey=" in cs else ""
    return tuple(s for s in (cs, key) if s)


def _describe(failure: dict[str, Any], config: pytest.Config) -> str:
    from bulkreg_conformance.report import detail, scrub  # noqa: PLC0415

    return scrub(detail(failure), _secrets(_settings(config)))
