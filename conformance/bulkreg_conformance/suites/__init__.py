"""The suites of a conformance run, by name; ``run_all`` runs the selected ones in order.

Each suite is ``run(ctx)`` over a :class:`~bulkreg_conformance.runner.Context`. Environment
problems (unreachable endpoint, --max-requests reached) stop the run and are reported as errors,
never as findings about the endpoint.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bulkreg_conformance.client import BudgetExceeded, EndpointUnreachable

if TYPE_CHECKING:
    from bulkreg_conformance.runner import Context

__all__ = ["SUITES", "run_all"]

# differential first: it installs a hook the other suites' bulk calls feed.
SUITES = {
    "differential": "differential",
    "auth": "auth",
    "property": "property",
    "stateful": "stateful",
    "schemathesis": "schemathesis_suite",
}


def run_all(ctx: Context, errors: list[str]) -> None:
    for name, module_name in SUITES.items():
        if name not in ctx.settings.suites:
            continue
        module = importlib.import_module(f"{__name__}.{module_name}")
        ctx.suite = name
        ctx.progress(name)
        try:
            module.run(ctx)
        except BudgetExceeded as exc:
            errors.append(f"{name}: {exc}; the run stopped early")
            return
        except EndpointUnreachable as exc:
            errors.append(f"{name}: endpoint unreachable: {exc}")
            return
