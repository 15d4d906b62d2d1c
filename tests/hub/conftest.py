"""Fixtures for the reference hub tests: a fixed clock, a hub on a thread, signed sessions; and
a summary section saying whether the Node.js SDK tests ran, and why not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from bulkreg_conformance.hub.cli import BackgroundHub, start_background
from bulkreg_conformance.oracle import Registry
from bulkreg_conformance.sas import generate_token, parse_connection_string

API = "2021-04-12"
FIXED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return FIXED


def registry() -> Registry:
    return Registry(seed=b"\x01" * 32, clock=fixed_clock)


def token_for(connection_string: str, resource: str | None = None, ttl: int = 3600) -> str:
    cs = parse_connection_string(connection_string)
    return generate_token(resource or cs.host_name, cs.key_name, cs.key, ttl=ttl)


class Client:
    """A requests.Session signed with one policy, speaking to one hub."""

    def __init__(self, hub: BackgroundHub, policy: str | None = None) -> None:
        self.hub = hub
        self.session = requests.Session()
        cs = hub.connection_string_for(policy) if policy else hub.connection_string
        self.session.headers["Authorization"] = token_for(cs)

    def call(self, method: str, path: str, body: Any = None, *, api: str | None = API,
             headers: dict[str, str] | None = None, data: bytes | None = None
             ) -> requests.Response:
        params = {"api-version": api} if api else {}
        return self.session.request(method, self.hub.url + path, params=params, json=body,
                                    data=data, headers=headers, timeout=30)


@pytest.fixture
def hub() -> Iterator[BackgroundHub]:
    with start_background() as running:
        yield running


@pytest.fixture
def client(hub: BackgroundHub) -> Client:
    return Client(hub)


NODE_TESTS = "test_node_sdk.py"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One section for the Node.js SDK tests: how many ran, or why they were skipped (the skip
    lines of -ra are easy to miss among the others)."""
    outcomes: dict[str, int] = {}
    reasons: set[str] = set()
    for outcome in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        for report in terminalreporter.stats.get(outcome, []):
            if not getattr(report, "nodeid", "").split("::")[0].endswith(NODE_TESTS):
                continue
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == "skipped" and isinstance(report.longrepr, tuple):
                reasons.add(report.longrepr[2].removeprefix("Skipped: "))
    if not outcomes:
        return
    terminalreporter.section("Node.js SDK tests")
    counts = ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items())
    if reasons:
        terminalreporter.line(f"{counts}, because {'; '.join(sorted(reasons))}", yellow=True)
    else:
        terminalreporter.line(counts)
