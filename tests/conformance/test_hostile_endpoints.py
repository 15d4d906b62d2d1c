"""``bulkreg conform`` against hostile endpoints on real sockets: the run ends within its budget,
stays small, never writes the token in any form, and says in one line what it cannot test.

Each run is a child process (as a CI job runs it); its peak RSS is measured from inside."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkreg_conformance.client import bulk_ids
from bulkreg_conformance.hub.cli import build_hub, start_background
from bulkreg_conformance.hub.server import make_server
from bulkreg_conformance.sas import make_connection_string

from . import hostile
from .hostile import conform, new_connection_string

LIMIT = 15.0  # the issue's bound: a run ends within its budget plus this


def _one_line(run: hostile.Conform, *says: str) -> None:
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout == "", run.stdout  # no table, no verdict
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("bulkreg conform: error: ")
    for text in says:
        assert text in lines[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- a run always ends ---------------------------------------------------------------------------


def test_a_dripping_endpoint_is_cut_and_the_run_ends_within_budget() -> None:
    cs, _ = new_connection_string()
    with hostile.serve(hostile.drip_posts) as endpoint:
        run = conform("--endpoint", endpoint.url, "--connection-string", cs, "--suite",
                      "property", "--seed", "1", "--time-budget", "1")
        posts = endpoint.seen.posts()
    assert run.seconds < 1 + LIMIT, run.seconds
    assert run.returncode == 1, run.stdout + run.stderr
    assert posts, "the run never reached a dripping request"
    assert "Traceback" not in run.stdout + run.stderr
    assert "time ran out" in run.stdout
    # the dripping cleanup could not confirm the devices gone: they are listed
    assert "LEAKED devices" in run.stdout
    assert "cleanup stopped" in run.stdout


def test_a_preflight_that_drips_is_one_line() -> None:
    cs, _ = new_connection_string()
    with hostile.serve(hostile.drip) as endpoint:
        run = conform("--endpoint", endpoint.url, "--connection-string", cs,
                      "--time-budget", "1")
    assert run.seconds < 1 + LIMIT, run.seconds
    _one_line(run, endpoint.url, "no complete answer")


def test_sigterm_during_a_dripping_request_exits_within_10s_listing_what_is_left() -> None:
    cs, _ = new_connection_string()
    with hostile.serve(hostile.drip_posts) as endpoint, subprocess.Popen(
            hostile.conform_cmd("--endpoint", endpoint.url, "--connection-string", cs,
                                "--suite", "property", "--seed", "2", "--time-budget", "120"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=hostile.env()) as proc:
        try:
            deadline = time.monotonic() + 60
            while not endpoint.seen.posts() and time.monotonic() < deadline \
                    and proc.poll() is None:
                time.sleep(0.05)
            posts = endpoint.seen.posts()
            assert posts, "the run sent no POST before the deadline"
            time.sleep(0.5)  # the POST is dripping now
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
            seconds = time.monotonic() - signalled
        finally:  # on any failure above: no process or pipe outlives the test
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert seconds < 10, seconds
    assert proc.returncode == 130, out + err  # INTERRUPTED, after the cleanup
    assert "Traceback" not in out + err
    assert "interrupted" in out
    ids = bulk_ids(posts[0])
    assert ids
    leaked = next(line for line in out.splitlines() if line.startswith("LEAKED devices"))
    for device_id in ids:
        assert device_id in leaked


# -- a run stays small ----------------------------------------------------------------------------


def test_ten_mib_answers_keep_memory_and_reports_small(tmp_path: Path) -> None:
    cs, _ = new_connection_string()
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    with hostile.serve(hostile.huge) as endpoint:
        run = conform("--endpoint", endpoint.url, "--connection-string", cs, "--seed", "3",
                      "--max-examples", "3", "--time-budget", "3", "--report-json", str(report),
                      "--junit-xml", str(junit))
        requests = len(endpoint.seen.requests)
    assert run.returncode == 1, run.stdout + run.stderr
    assert requests > 20  # many 10 MiB answers, not one
    assert run.seconds < 3 + LIMIT, run.seconds
    assert 0 < run.peak_rss_kib < 300 * 1024, run.peak_rss_kib
    assert report.stat().st_size < 10 * 1024 * 1024
    assert junit.stat().st_size < 10 * 1024 * 1024
    data = json.loads(report.read_text(encoding="utf-8"))
    kept = [e["response"] for f in data["failures"] for e in f["exchanges"]]
    assert kept and all(r["truncated"] for r in kept), [
        (r["status"], r.get("size"), r["body"][:80]) for r in kept if not r["truncated"]]
    assert all(len(r["body"]) <= 64 * 1024 for r in kept)


# -- the token never appears ----------------------------------------------------------------------


def test_an_endpoint_echoing_the_token_in_every_encoding_never_gets_it_written(
        tmp_path: Path) -> None:
    cs, key = new_connection_string()
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    with hostile.serve(hostile.echo) as endpoint:
        run = conform("--endpoint", endpoint.url, "--connection-string", cs, "--seed", "4",
                      "--suite", "auth,property,schemathesis", "--max-examples", "3",
                      "--time-budget", "8", "--report-json", str(report),
                      "--junit-xml", str(junit))
        tokens = sorted({t for t in endpoint.seen.tokens if hostile.signed_with(t, key)})
    assert run.returncode == 1, run.stdout + run.stderr
    assert tokens, "the endpoint saw no token signed with the run's key"
    texts = hostile.outputs(run, tmp_path)
    assert any(name.startswith("bulkreg-replays") for name in texts)  # replay files too
    data = json.loads(texts["r.json"])
    echoed = [e for f in data["failures"] for e in f["exchanges"] if "echo" in e["response"]
              ["body"]]
    assert echoed, "no answer with the echo reached the report: the test would prove nothing"
    for name, text in texts.items():
        assert key not in text, name
        for token in tokens:
            for encoding, value in hostile.encodings(token).items():
                assert value not in text, (name, encoding)


# -- what cannot be tested is one line ------------------------------------------------------------


def test_a_wrong_key_is_one_line_naming_the_cause() -> None:
    with start_background() as hub:
        cs, _ = new_connection_string(hub.hub.host_name)
        run = conform("--endpoint", hub.url, "--connection-string", cs)
    _one_line(run, "rejected the run's SAS token (401 IotHubUnauthorizedAccess)",
              "check the connection string")


def test_an_unreachable_endpoint_is_one_line() -> None:
    cs, _ = new_connection_string()
    url = f"http://127.0.0.1:{_free_port()}"
    run = conform("--endpoint", url, "--connection-string", cs)
    _one_line(run, f"cannot reach the endpoint {url} (connection refused)")


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """The reference hub over https with a certificate from a private CA; (url, cs, CA file)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    hub = build_hub()
    server = make_server(hub, tls=context, error_body=hub.error_body)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    owner = hub.policies["iothubowner"]
    yield (f"https://127.0.0.1:{server.port}",
           make_connection_string(hub.host_name, owner.name, owner.key), str(ca_file))
    server.shutdown()
    thread.join()
    server.server_close()


def test_an_untrusted_certificate_is_one_line_naming_the_remedy(
        tls_hub: tuple[str, str, str]) -> None:
    url, cs, _ = tls_hub
    run = conform("--endpoint", url, "--connection-string", cs)
    _one_line(run, "certificate verify failed", "--ca-cert FILE", "REQUESTS_CA_BUNDLE")


def test_ca_cert_is_honoured_by_the_client_and_schemathesis(
        tls_hub: tuple[str, str, str]) -> None:
    url, cs, ca_file = tls_hub
    run = conform("--endpoint", url, "--connection-string", cs, "--ca-cert", ca_file,
                  "--suite", "auth,schemathesis", "--max-examples", "2", "--seed", "5",
                  "--time-budget", "10")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "schemathesis:" in run.stdout and "verdict: PASS" in run.stdout


def test_requests_ca_bundle_is_honoured(tls_hub: tuple[str, str, str]) -> None:
    url, cs, ca_file = tls_hub
    run = conform("--endpoint", url, "--connection-string", cs, "--suite", "auth",
                  REQUESTS_CA_BUNDLE=ca_file)
    assert run.returncode == 0, run.stdout + run.stderr


# -- --max-requests counts every request ----------------------------------------------------------


class Counting:
    """WSGI middleware counting every request that reaches the hub."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.lock:
            self.count += 1
        return self.app(environ, start_response)


@pytest.mark.parametrize(("suites", "limit"), [
    ("differential,auth,property,stateful", 40),
    ("schemathesis", 30),
])
def test_max_requests_is_never_exceeded_cleanup_included(
        serve: Callable[..., Any], suites: str, limit: int) -> None:
    counter: list[Counting] = []
    served = serve(lambda hub: counter.append(Counting(hub)) or counter[0])
    run = conform("--endpoint", served.url, "--connection-string", served.connection_string,
                  "--suite", suites, "--max-requests", str(limit), "--seed", "6",
                  "--prefix", "maxreq-")
    assert counter[0].count <= limit, (counter[0].count, run.stdout)
    # the budget, not something else, stopped it: the requests left are the cleanup's reserve
    assert f"--max-requests {limit} reached" in run.stdout
    assert run.returncode == 3, run.stdout  # nothing failed, but the plan was cut: INCOMPLETE
    assert "verdict: INCOMPLETE" in run.stdout
    assert [d for d, _ in served.hub.registry.records() if d.startswith("maxreq-")] == []
