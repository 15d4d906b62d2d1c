"""Fixtures for conformance tests: a reference hub served over real HTTP (the hub's own server,
connections kept alive as a live hub keeps them), optionally behind a WSGI middleware that
plants one defect."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bulkreg_conformance.hub.app import Hub
from bulkreg_conformance.hub.cli import build_hub
from bulkreg_conformance.hub.server import make_server
from bulkreg_conformance.sas import make_connection_string

App = Callable[..., Any]


@dataclass
class Served:
    hub: Hub
    url: str
    connection_string: str
    key: str
    read_connection_string: str | None = None  # the hub's registryRead policy
    app: App | None = None  # what the server serves (the hub, or a middleware around it)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    stops: list[Callable[[], None]] = []

    def start(wrap: Callable[[Hub], App] | None = None) -> Served:
        hub = build_hub()
        app = wrap(hub) if wrap else hub
        server = make_server(app, error_body=hub.error_body)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            thread.join()
            server.server_close()

        stops.append(stop)
        owner, reader = hub.policies["iothubowner"], hub.policies["registryRead"]
        return Served(hub, f"http://127.0.0.1:{server.port}",
                      make_connection_string(hub.host_name, owner.name, owner.key), owner.key,
                      make_connection_string(hub.host_name, reader.name, reader.key), app)

    yield start
    for stop in stops:
        stop()


def call_hub(hub: Hub, environ: dict[str, Any],
             data: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """Hand ``data`` (the request body, read or rewritten by a test middleware) to the hub and
    return its (status, headers, body)."""
    environ = {k: v for k, v in environ.items() if not k.startswith("werkzeug.")}
    environ.update(CONTENT_LENGTH=str(len(data)), **{"wsgi.input": io.BytesIO(data)})
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        captured.update(status=status, headers=headers)
        return lambda _: None

    body = b"".join(hub(environ, capture))
    return captured["status"], captured["headers"], body
