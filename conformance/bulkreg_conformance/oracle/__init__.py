"""The oracle: a pure registry model (no HTTP, no I/O) that predicts any endpoint's answers.

``Registry.predict(body)`` gives what a faithful hub in that state answers to ``POST /devices``
and the state after it, without side effects. The reference hub (``bulkreg_conformance.hub``) is
this model behind HTTP; the conformance runner uses the same model to predict what the endpoint
under test must answer.
"""

from __future__ import annotations

from .model import (
    API_VERSIONS,
    Changes,
    Checked,
    Outcome,
    Plan,
    Registry,
    check_bulk,
    device_etag,
    twin_etag,
)

__all__ = [
    "API_VERSIONS",
    "Changes",
    "Checked",
    "Outcome",
    "Plan",
    "Registry",
    "check_bulk",
    "device_etag",
    "twin_etag",
]
