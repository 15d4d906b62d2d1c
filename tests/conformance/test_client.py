"""The conformance client's rails over real HTTP: prefix guard, retries, caps, redaction."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from bulkreg_conformance import sas
from bulkreg_conformance.client import (
    BudgetExceeded,
    Client,
    ClientError,
    EndpointUnreachable,
    PrefixViolation,
    bulk_ids,
)

Handler = Callable[[Request], Response]


class Recorder:
    """A tiny WSGI app over real HTTP that records requests and answers via ``handler``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.handler: Handler = lambda r: Response('{"isSuccessful":true,"errors":[]}',
                                                   content_type="application/json")

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append((request.method, request.full_path, dict(request.headers),
                              request.get_data()))
        return self.handler(request)(environ, start_response)


@pytest.fixture
def server() -> Iterator[tuple[Recorder, str]]:
    app = Recorder()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join()


@pytest.fixture
def key() -> str:
    return sas.new_key()


def client_for(url: str, key: str, **kwargs: Any) -> Client:
    cs = sas.make_connection_string("myhub.azure-devices.net", "iothubowner", key)
    return Client(url, cs, prefix="run1-", **kwargs)


def test_token_signs_the_connection_string_host_not_the_endpoint(
        server: tuple[Recorder, str], key: str) -> None:
    app, url = server
    client = client_for(url, key)
    client.bulk([{"id": "run1-a", "importMode": "create"}])
    _, path, headers, _ = app.requests[0]
    assert path == "/devices?api-version=2021-04-12"
    token = headers["Authorization"]
    assert "sr=myhub.azure-devices.net&" in token
    policies = {"iothubowner": sas.Policy("iothubowner", key, sas.ALL_PERMISSIONS)}
    sas.verify_token(token, policies=policies, host="myhub.azure-devices.net",
                     path="/devices", now=time.time())


def test_token_is_refreshed_before_expiry(key: str, server: tuple[Recorder, str]) -> None:
    client = client_for(server[1], key, token_ttl=1)
    first = client.token()
    assert client.token() == first
    # se has whole seconds: past the refresh point and into the next second, a new token differs
    time.sleep(1.1)
    assert client.token() != first


@pytest.mark.parametrize("body", [
    [{"id": "run1-a"}, {"id": "other-b", "importMode": "delete"}],
    b'[{"id": "run1-a"}, {"id": "other-b", "importMode": "delete"} oops',
    {"id": "other"},
])
def test_prefix_guard_refuses_before_sending(server: tuple[Recorder, str], key: str,
                                             body: Any) -> None:
    app, url = server
    client = client_for(url, key)
    with pytest.raises(PrefixViolation, match="other"):
        client.bulk(body)
    with pytest.raises(PrefixViolation):
        client.get_device("other")
    with pytest.raises(PrefixViolation):
        client.cleanup(["run1-x", "other"])
    assert app.requests == []


def test_bulk_ids_reads_ids_from_json_and_from_broken_text() -> None:
    assert bulk_ids(b'[{"id":"a"},{"id":3},"x",{"id":"b\\u0041"}]') == ["a", "bA"]
    assert bulk_ids(b'[{"id":"a"},{"id" : "b"') == ["a", "b"]


def test_retries_429_honouring_retry_after(server: tuple[Recorder, str], key: str) -> None:
    app, url = server
    answers = iter([Response("{}", status=429, headers={"Retry-After": "0.3"}),
                    Response("{}", status=503), Response("{}", status=200)])
    app.handler = lambda r: next(answers)
    client = client_for(url, key)
    started = time.monotonic()
    exchange = client.bulk([{"id": "run1-a", "importMode": "create"}])
    assert exchange.status == 200
    assert len(app.requests) == 3
    assert time.monotonic() - started >= 0.3
    assert client.waited >= 0.3


def test_retry_budget_is_bounded(server: tuple[Recorder, str], key: str) -> None:
    app, url = server
    app.handler = lambda r: Response("{}", status=429, headers={"Retry-After": "100"})
    client = client_for(url, key, retry_budget=1.0)
    started = time.monotonic()
    assert client.bulk([{"id": "run1-a"}]).status == 429
    assert time.monotonic() - started < 1.0
    assert len(app.requests) == 1


def test_rate_limit_and_max_requests(server: tuple[Recorder, str], key: str) -> None:
    app, url = server
    client = client_for(url, key, rate_limit=20.0, max_requests=5)
    started = time.monotonic()
    for _ in range(5):
        client.get_device("run1-a")
    assert time.monotonic() - started >= 4 / 20 - 0.01
    with pytest.raises(BudgetExceeded):
        client.get_device("run1-a")
    assert len(app.requests) == 5


def test_unreachable_endpoint_is_a_clear_error(key: str) -> None:
    client = client_for("http://127.0.0.1:9", key)
    with pytest.raises(EndpointUnreachable, match="/devices"):
        client.get_device("run1-a")


def test_bad_setup_is_a_clear_error(key: str) -> None:
    with pytest.raises(ClientError, match="connection string"):
        Client("http://127.0.0.1:1", f"HostName=h;SharedAccessKey={key}", prefix="p-")
    with pytest.raises(ClientError, match="prefix"):
        client_for("http://127.0.0.1:1", key).__class__(
            "http://127.0.0.1:1", sas.make_connection_string("h", "n", key), prefix="a b")
    with pytest.raises(ClientError, match="http"):
        Client("ftp://x", sas.make_connection_string("h", "n", key), prefix="p-")


def test_exchanges_never_hold_the_key_or_token(server: tuple[Recorder, str], key: str) -> None:
    _, url = server
    seen = []
    client = client_for(url, key, on_exchange=seen.append)
    exchange = client.bulk([{"id": "run1-a", "importMode": "create"}])
    text = json.dumps(exchange.to_dict()) + exchange.curl() + repr(exchange)
    assert key not in text
    assert client.token() not in text
    assert "$SAS" in exchange.curl()
    assert seen == [exchange]


def test_cleanup_deletes_in_bulk_and_reports_leaks(server: tuple[Recorder, str],
                                                   key: str) -> None:
    app, url = server
    stored = {"run1-a", "run1-b"}

    def handler(request: Request) -> Response:
        if request.method == "POST":
            for entry in json.loads(request.get_data()):
                if entry["id"] != "run1-b":  # this endpoint's delete does not delete run1-b
                    stored.discard(entry["id"])
            return Response('{"isSuccessful":true,"errors":[]}')
        device = request.path.rsplit("/", 1)[-1]
        if request.method == "GET":
            return Response("{}", status=200 if device in stored else 404)
        return Response("", status=204)

    app.handler = handler
    client = client_for(url, key)
    client.touched.update({"run1-a", "run1-b", "run1-c d"})
    assert client.cleanup() == ["run1-b"]
    posts = [r for r in app.requests if r[0] == "POST"]
    assert len(posts) == 1
    assert {e["id"] for e in json.loads(posts[0][3])} == {"run1-a", "run1-b"}


def test_an_interrupted_request_leaves_no_connection_for_the_next(
        key: str, server: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C mid-request may leave half a body on a kept-alive connection: the client must not
    # send cleanup requests after it on the same connection.
    client = client_for(server[1], key)
    before = client._session

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(before, "request", interrupted)
    with pytest.raises(KeyboardInterrupt):
        client.bulk([{"id": "run1-a", "importMode": "create"}])
    assert client._session is not before
    assert client.get_device("run1-a").status in (200, 404)  # a fresh connection works


# -- the transport's rails: deadlines, caps, budgets, redaction --------------------------------


def test_every_encoding_of_a_token_is_scrubbed_from_bytes_and_text(key: str) -> None:
    from bulkreg_conformance.redact import Redactor, secrets_of_token  # noqa: PLC0415

    from .hostile import encodings  # noqa: PLC0415

    token = sas.generate_token("h.azure-devices.net", "iothubowner", key)
    redactor = Redactor(secrets_of_token(token))
    for name, value in encodings(token).items():
        text = f"before {value} after"
        assert value not in redactor.text(text), name
        assert value.encode() not in redactor.bytes(text.encode()), name
        assert redactor.text(text).startswith("before ") and redactor.text(text).endswith(" after")
    assert redactor.text("an ordinary sentence") == "an ordinary sentence"


def test_a_huge_answer_is_read_only_up_to_the_cap(key: str) -> None:
    from bulkreg_conformance.client import KEEP_BYTES, READ_CAP  # noqa: PLC0415

    from .hostile import HUGE, huge, serve  # noqa: PLC0415

    with serve(huge) as endpoint:
        exchange = client_for(endpoint.url, key).get_device("run1-a")
    assert exchange.truncated and exchange.size == HUGE
    assert len(exchange.response_body) == READ_CAP
    kept = exchange.kept()
    assert len(kept.response_body) == KEEP_BYTES and kept.truncated
    response = exchange.to_dict()["response"]
    assert response["truncated"] and len(response["body"]) <= KEEP_BYTES


def test_a_dripping_answer_is_cut_at_the_request_deadline(key: str) -> None:
    from bulkreg_conformance.client import OutOfTime  # noqa: PLC0415

    from .hostile import drip, serve  # noqa: PLC0415

    with serve(drip) as endpoint:
        client = client_for(endpoint.url, key, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(EndpointUnreachable) as caught:
            client.get_device("run1-a")
        assert caught.value.kind == "timeout"
        assert time.monotonic() - started < 10  # it drips for 600 s
        client = client_for(endpoint.url, key)
        client.deadline = time.monotonic() + 1.0  # the run's deadline comes first
        with pytest.raises(OutOfTime, match="time ran out"):
            client.get_device("run1-a")
        with pytest.raises(OutOfTime, match="time is spent"):  # not even sent past it
            client.get_device("run1-a")
        assert len(endpoint.seen.requests) == 2


def test_interrupt_cuts_a_request_in_flight(key: str) -> None:
    from .hostile import drip, serve  # noqa: PLC0415

    with serve(drip) as endpoint:
        client = client_for(endpoint.url, key)
        threading.Timer(0.5, client.interrupt).start()
        started = time.monotonic()
        with pytest.raises(ClientError):
            client.get_device("run1-a")
    assert time.monotonic() - started < 10


def _absent_on_read(app: Recorder) -> None:
    app.handler = lambda r: (Response('{"isSuccessful":true,"errors":[]}') if r.method == "POST"
                             else Response("{}", status=404))


def test_max_requests_keeps_room_for_the_cleanup_of_what_was_touched(
        server: tuple[Recorder, str], key: str) -> None:
    app, url = server
    _absent_on_read(app)
    client = client_for(url, key, max_requests=5)
    client.touched.update({"run1-a", "run1-b"})  # cleanup: 1 bulk delete + 2 read-backs
    client.get_device("run1-x")
    client.get_device("run1-x")
    with pytest.raises(BudgetExceeded, match="3 kept for cleanup"):
        client.get_device("run1-x")
    client.cleaning = True
    assert client.cleanup() == []
    assert len(app.requests) == 5


def test_cleanup_past_max_requests_stops_and_lists_what_is_left(
        server: tuple[Recorder, str], key: str) -> None:
    from bulkreg_conformance.client import CleanupStopped  # noqa: PLC0415

    app, url = server
    _absent_on_read(app)
    client = client_for(url, key, max_requests=2)
    client.touched.update({"run1-a", "run1-b"})
    client.cleaning = True
    with pytest.raises(CleanupStopped, match="--max-requests 2 reached") as caught:
        client.cleanup()
    assert caught.value.remaining == ["run1-b"]  # run1-a was read back absent
    assert len(app.requests) == 2
