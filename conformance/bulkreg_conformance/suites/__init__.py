"""The suites of a conformance run, by name; ``run_all`` runs the selected ones in order.

Each suite is a module with ``run(ctx)`` over a :class:`~bulkreg_conformance.context.Context`.
``SUITES`` is the one registry (names in the order they run); this module stays light to import
(the pytest plugin reads the names) and loads a suite only when it runs. Environment problems
(unreachable endpoint, --max-requests reached) stop the run and are reported as errors, never as
findings about the endpoint.
"""

from __future__ import annotations

import atexit
import importlib
import shutil
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bulkreg_conformance.context import Context

__all__ = ["MODULES", "SUITES", "SuiteError", "hypothesis_home", "run_all"]

# name -> module, in running order; differential first: it installs a hook the other suites'
# bulk calls feed.
MODULES = {
    "differential": "differential",
    "auth": "auth",
    "property": "property",
    "stateful": "stateful",
    "schemathesis": "schemathesis_suite",
}
SUITES = tuple(MODULES)


class SuiteError(Exception):
    """A suite could not test what it should (a tool it drives failed): an error of the run,
    never a verdict on the endpoint, and never a silent pass."""


_HOME: list[str] = []


def hypothesis_home() -> str:
    """Point hypothesis' home (its constants cache, even with no example database) at a private
    temporary directory, once per process: a run leaves no ``.hypothesis/`` in the user's
    working directory (notes on schemathesis, gotcha 2)."""
    if not _HOME:
        from hypothesis import configuration  # noqa: PLC0415 - only the generating suites

        home = tempfile.mkdtemp(prefix="bulkreg-hypothesis-")
        atexit.register(shutil.rmtree, home, True)
        configuration.set_hypothesis_home_dir(home)
        _HOME.append(home)
    return _HOME[0]


def run_all(ctx: Context, errors: list[str]) -> None:
    from bulkreg_conformance.client import (  # noqa: PLC0415 - keeps this module light
        BudgetExceeded,
        EndpointUnreachable,
        OutOfTime,
        RequestCut,
    )

    for name, module_name in MODULES.items():
        if name not in ctx.settings.suites:
            continue
        module = importlib.import_module(f"{__name__}.{module_name}")
        ctx.suite = name
        ctx.progress(name)
        try:
            module.run(ctx)
        except OutOfTime as exc:
            if ctx.client.interrupted:
                raise KeyboardInterrupt from None
            if isinstance(exc, RequestCut):  # the endpoint held a request past the budget
                errors.append(f"{name}: {exc}; the run stopped early")
            return  # --time-budget spent: the run ends as it does between cases, no error
        except BudgetExceeded as exc:
            errors.append(f"{name}: {exc}; the run stopped early")
            return
        except EndpointUnreachable as exc:
            errors.append(f"{name}: endpoint unreachable: {exc}")
            return
        except SuiteError as exc:
            errors.append(f"{name}: {exc}")
