"""The reference hub behind ``bulkreg serve``: a faithful local IoT Hub registry.

It is the oracle (``bulkreg_conformance.oracle``: state + per-mode semantics) behind HTTP:
``app`` the WSGI layer (routing, auth, locking, faults), ``store`` memory or SQLite
persistence, ``server`` the HTTP/1.1 keep-alive request handler, ``cli`` the command and
``start_background`` for running a hub on a thread.
"""

from __future__ import annotations

from typing import Any

from bulkreg_conformance.oracle import Outcome, Registry

__all__ = ["Outcome", "Registry", "start_background"]


def __getattr__(name: str) -> Any:
    # cli stays unimported until asked for, so `python -m bulkreg_conformance.hub.cli` runs clean
    if name == "start_background":
        from .cli import start_background  # noqa: PLC0415 - lazy on purpose, see above

        return start_background
    raise AttributeError(name)
