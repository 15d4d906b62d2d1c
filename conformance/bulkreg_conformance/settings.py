"""A run's settings and the names of its suites (light: the CLI and the pytest plugin read it).

``SUITES`` is the one list of suite names, in running order. ``auth``, ``property`` and ``jobs``
(import and export jobs, when the run has a blob container) carry the minimum-coverage plan
(``bulkreg_conformance.coverage``); ``property`` (its hypothesis part),
``stateful`` and ``schemathesis`` then explore with whatever budget is left. The differential
comparison with the offline validator is no suite: it observes every bulk call of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_TIME_BUDGET", "EXPLORERS", "PLANNED", "SUITES", "Settings"]

SUITES = ("auth", "property", "jobs", "stateful", "schemathesis")
PLANNED = ("auth", "property", "jobs")  # suites whose minimum coverage the plan reaches first
EXPLORERS = ("property", "stateful", "schemathesis")  # suites that explore at random afterwards
DEFAULT_TIME_BUDGET = 50.0  # seconds, unless --rate-limit needs more to fit the plan


@dataclass
class Settings:
    endpoint: str | None = None
    connection_string: str | None = None
    # a second connection string whose policy may only read (the auth suite checks writes are
    # refused with it); the built-in hub supplies its own registryRead policy
    read_connection_string: str | None = None
    suites: tuple[str, ...] = SUITES
    max_examples: int = 25
    seed: int | None = None
    strict: bool = False
    prefix: str | None = None
    rate_limit: float | None = None
    max_requests: int | None = None
    time_budget: float | None = None  # seconds; None: DEFAULT_TIME_BUDGET, grown to fit the plan
    readback_limit: int = 4  # ids read back per bulk call of the exploring suites
    replay: dict[str, Any] | None = None  # a replay file's content: send its payload only
    ca_cert: str | None = None  # CA bundle trusted for an https endpoint (--ca-cert)
    # a container SAS URI (read, write, delete, list) for the jobs suite; the built-in hub gets
    # one from Azurite when it is installed
    blob_container_uri: str | None = None
    # a WSGI application to run against in process, no socket in between (bulkreg_conformance.
    # wsgi); ``endpoint`` is then only the base of its URLs
    app: Any = None
