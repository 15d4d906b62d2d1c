"""The suites of a conformance run, by name; ``run_all`` runs the plan, then the explorers.

``SUITES`` (``bulkreg_conformance.settings``) is the one list of names. A run first executes the
minimum-coverage plan of its suites (``suites/plan.py``: ``auth`` and ``property`` carry plan
units), then each selected exploring suite (``property``'s hypothesis draws, ``stateful``,
``schemathesis``), each a module with ``run(session) -> bool`` (True when it ran to its end),
with whatever budget is left. This module stays light to import (the pytest plugin reads the
names) and loads a suite only when it runs. A budget that runs out ends the run quietly and
says what it left uncovered (the verdict is INCOMPLETE unless the minimum was reached); an
unreachable endpoint is an error of the run; a suite that could not run (a tool it drives
failed) is no verdict on the endpoint and never a silent pass: the run is INCOMPLETE, naming it.
"""

from __future__ import annotations

import atexit
import importlib
import shutil
import tempfile
from typing import TYPE_CHECKING

from bulkreg_conformance.settings import EXPLORERS, PLANNED, SUITES

if TYPE_CHECKING:
    from bulkreg_conformance.session import Session

__all__ = ["MODULES", "SUITES", "SuiteError", "hypothesis_home", "run_all"]

# exploring suite -> module
MODULES = {"property": "property", "stateful": "stateful", "schemathesis": "schemathesis_suite"}


class SuiteError(Exception):
    """A suite could not test what it should (a tool it drives failed): never a verdict on the
    endpoint, and never a silent pass (its item joins the minimum, unreached)."""


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


def run_all(s: Session, errors: list[str]) -> None:
    from bulkreg_conformance.client import (  # noqa: PLC0415 - keeps this module light
        BudgetExceeded,
        EndpointUnreachable,
        OutOfTime,
        RequestCut,
    )

    phases = []
    if set(s.settings.suites) & set(PLANNED):
        phases.append(("plan", f"{__name__}.plan"))
    phases += [(name, f"{__name__}.{MODULES[name]}") for name in EXPLORERS
               if name in s.settings.suites]
    for name, module_name in phases:
        module = importlib.import_module(module_name)
        s.suite = name
        s.progress(name)
        try:
            finished = module.run(s)
        except OutOfTime as exc:
            if s.client.interrupted:
                raise KeyboardInterrupt from None
            if isinstance(exc, RequestCut):  # the endpoint held a request past the budget
                errors.append(f"{name}: {exc}; the run stopped early")
            s.coverage.stop = f"the time budget ran out during {name}"
            return
        except BudgetExceeded as exc:
            s.coverage.stop = f"{exc} during {name}"
            return
        except EndpointUnreachable as exc:
            errors.append(f"{name}: endpoint unreachable: {exc}")
            return
        except SuiteError as exc:
            item = f"explore:{name}"
            s.coverage.required.setdefault(item, f"the {name} suite ran to its end")
            s.coverage.miss(f"the {name} suite could not run ({exc})", item)
            continue
        if name == "plan" and s.coverage.missing() == [
                i for i in s.coverage.required if i.startswith("explore:")]:
            s.coverage.requests = s.client.sent
        if finished is not False and name != "plan":
            s.coverage.cover(f"explore:{name}")
        elif name != "plan":
            s.coverage.miss(f"the time budget ran out during {name}", f"explore:{name}")
