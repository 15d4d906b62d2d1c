"""The stateful suite: sequences pass on the faithful hub, an ignored eTag is caught with a shrunk
minimal sequence, and a seed and prefix give the same sequence of calls."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request

from bulkreg_conformance.hub.app import Hub
from bulkreg_conformance.runner import Result, Settings, run

from .conftest import Served
from .test_broken_hubs import DEFECTS


def _run(served: Served, **kwargs: Any) -> Result:
    options: dict[str, Any] = {"max_examples": 6, "seed": 11, "time_budget": 20.0}
    options.update(kwargs)
    return run(Settings(endpoint=served.url, connection_string=served.connection_string,
                        suites=("stateful",), **options))


def test_faithful_hub_passes_every_sequence(serve: Callable[..., Served]) -> None:
    served = serve()
    result = _run(served)
    assert result.failures == [], [f.to_dict(False) for f in result.failures]
    assert result.exit_code() == 0
    assert result.tally["readback-twin"].passed > 0
    assert result.coverage.required == {"explore:stateful": "the stateful suite ran to its end"}
    assert result.coverage.reached()
    assert len(served.hub.registry) == 0


def test_ignored_etag_is_caught_with_a_minimal_sequence(serve: Callable[..., Served]) -> None:
    served = serve(DEFECTS["ignored eTag"][0])
    result = _run(served, max_examples=25)
    assert result.exit_code() == 1
    failures = [f for f in result.failures if f.suite == "stateful"]
    assert failures, result.tally
    assert {f.check for f in failures} & {"errors", "status", "is-successful"}
    message = failures[0].message
    assert "minimal sequence" in message
    steps = message.split("minimal sequence: ", 1)[1]
    assert "IfMatchETag" in steps
    assert steps.count(". [") <= 4, steps  # shrunk: a few steps, not the whole drawn sequence
    assert len(served.hub.registry) == 0


class _Recorder:
    """Records (importMode, id) of every bulk entry the hub is sent."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.calls: list[list[tuple[Any, Any]]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        data = request.get_data()
        if request.method == "POST":
            self.calls.append([(e.get("importMode"), e.get("id")) for e in json.loads(data)
                               if isinstance(e, dict)])
        environ = {k: v for k, v in environ.items() if not k.startswith("werkzeug.")}
        environ.update(CONTENT_LENGTH=str(len(data)), **{"wsgi.input": io.BytesIO(data)})
        return self.hub(environ, start_response)


def _recording(into: list[_Recorder]) -> Callable[[Hub], _Recorder]:
    def wrap(hub: Hub) -> _Recorder:
        into.append(_Recorder(hub))
        return into[-1]

    return wrap


def test_same_seed_and_prefix_send_the_same_sequence(serve: Callable[..., Served]) -> None:
    sent = []
    for _ in range(2):
        recorders: list[_Recorder] = []
        served = serve(_recording(recorders))
        assert _run(served, prefix="same-").exit_code() == 0
        sent.append(recorders[0].calls)
    assert sent[0] == sent[1]
    assert len(sent[0]) > 10
