"""The in-process transport (``Settings(app=...)``, ``bulkreg_conformance.wsgi``): a run against
the app in process judges exactly as the same run over a socket does, so the tests that judge
answers (the catalogue, the decision variants, the broken hubs) may skip the network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulkreg_conformance.runner import Result, Settings, run

from .conftest import Served


def _run(served: Served, suites: tuple[str, ...], **kwargs: Any) -> Result:
    return run(Settings(endpoint=served.url, connection_string=served.connection_string,
                        read_connection_string=served.read_connection_string, suites=suites,
                        max_examples=3, seed=11, prefix="wsgi-", time_budget=60.0, **kwargs))


def _tally(result: Result) -> dict[str, tuple[int, int, int]]:
    return {name: (t.passed, t.failed, t.deviation) for name, t in result.tally.items()}


def test_in_process_and_over_a_socket_judge_alike(serve: Callable[..., Served]) -> None:
    suites = ("auth", "property", "stateful", "schemathesis")
    network, in_process = serve(), serve()
    over_http = _run(network, suites)
    direct = _run(in_process, suites, app=in_process.app)
    assert over_http.verdict == direct.verdict == "PASS"
    assert direct.requests == over_http.requests
    assert _tally(direct) == _tally(over_http)
    assert not in_process.hub.registry.records() and not network.hub.registry.records()


def test_a_broken_app_fails_in_process_as_over_http(serve: Callable[..., Served]) -> None:
    def renamed(hub: Any) -> Any:  # the member misspelt, the length kept (Content-Length)
        def app(environ: dict[str, Any], start_response: Any) -> Any:
            body = b"".join(hub(environ, start_response))
            return [body.replace(b'"isSuccessful"', b'"isSuccessfuI"')]
        return app

    served = serve(renamed)
    over_http = _run(served, ("property",))
    direct = _run(served, ("property",), app=served.app)
    assert direct.verdict == over_http.verdict == "FAIL"
    assert direct.tally["is-successful"].failed
    assert _tally(direct) == _tally(over_http)
