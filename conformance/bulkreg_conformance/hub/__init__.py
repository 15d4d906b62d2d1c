"""The reference hub behind ``bulkreg serve``: a faithful local IoT Hub registry.

It is the oracle (``bulkreg_conformance.oracle``: state + per-mode semantics) behind HTTP:
``app`` the WSGI layer (routing, auth, locking, faults), ``store`` memory or SQLite
persistence, ``identity`` the keys and port ``serve --db`` keeps across restarts, ``server``
the HTTP/1.1 server (one event loop, a worker pool, deadlines and caps) with ``framing`` (h11
and the hub's guards) and ``transport`` (plain or TLS bytes), ``tls`` the local CA, ``cli`` the
command and ``start_background`` for running a hub on a thread.
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
