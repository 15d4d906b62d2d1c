"""Hostile clients over real sockets: framing tricks, truncated requests, slowloris, connection
floods, amplification, deep bodies, a hub bug. Each probe checks what the registry holds
afterwards, not only the status line, so a request that was wrongly executed shows."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from bulkreg_conformance.hub import server
from bulkreg_conformance.hub.app import Hub
from bulkreg_conformance.hub.cli import BackgroundHub, start_background
from bulkreg_conformance.hub.server import Limits
from bulkreg_conformance.hub.tls import local_certificates, server_context

from .conftest import API, Client, token_for

QUICK = Limits(threads=2, connection_limit=24, request_timeout=1, idle_timeout=1)


@pytest.fixture
def quick() -> Iterator[BackgroundHub]:
    """A hub with small bounds, so deadlines and caps show within seconds."""
    with start_background(limits=QUICK) as running:
        yield running


def _connect(hub: BackgroundHub) -> socket.socket:
    return socket.create_connection((hub.server.host, hub.server.port), timeout=30)


def _head(hub: BackgroundHub, method: str, path: str, *lines: str) -> bytes:
    token = token_for(hub.connection_string)
    text = f"{method} {path}?api-version={API} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
    return (text + "".join(f"{line}\r\n" for line in lines)).encode()


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(1 << 16):
        received += chunk
    return received


def _exists(hub: BackgroundHub, device_id: str) -> bool:
    return Client(hub).call("GET", f"/devices/{device_id}").status_code == 200


def _create(hub: BackgroundHub, *ids: str) -> None:
    body = [{"id": i, "importMode": "create"} for i in ids]
    assert Client(hub).call("POST", "/devices", body).status_code == 200


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# --- framing -----------------------------------------------------------------------------------


def test_conflicting_content_lengths_are_refused_and_the_hidden_request_never_runs(
        hub: BackgroundHub) -> None:
    _create(hub, "keep")
    hidden = _head(hub, "DELETE", "/devices/keep", 'If-Match: "*"', "Content-Length: 0") + b"\r\n"
    body = b"[]"
    with _connect(hub) as sock:
        sock.sendall(_head(hub, "POST", "/devices", f"Content-Length: {len(body)}",
                           f"Content-Length: {len(body) + len(hidden)}") + b"\r\n" + body
                     + hidden)
        answer = _until_closed(sock)
    assert _status(answer) == 400 and answer.count(b"HTTP/1.1") == 1
    assert b"Connection: close" in answer and b"ErrorCode:GenericBadRequest" in answer
    assert _exists(hub, "keep")


def test_content_length_with_chunked_is_refused_and_closed(hub: BackgroundHub) -> None:
    entry = orjson.dumps([{"id": "smuggled", "importMode": "create"}])
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(entry), entry)
    with _connect(hub) as sock:
        sock.sendall(_head(hub, "POST", "/devices", "Content-Length: 4",
                           "Transfer-Encoding: chunked") + b"\r\n" + chunked)
        answer = _until_closed(sock)
    assert _status(answer) == 400 and answer.count(b"HTTP/1.1") == 1
    assert not _exists(hub, "smuggled")


def test_transfer_encoding_on_http_1_0_is_refused(hub: BackgroundHub) -> None:
    with _connect(hub) as sock:
        sock.sendall(_head(hub, "POST", "/devices").replace(b"HTTP/1.1", b"HTTP/1.0")
                     + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n[]")
        assert _status(_until_closed(sock)) == 400


def test_a_chunked_body_over_the_limit_gets_413_and_is_not_applied(hub: BackgroundHub) -> None:
    entry = b'[{"id": "oversize", "importMode": "create", "tags": {"pad": "'
    pad = b" " * (1 << 20)
    with _connect(hub) as sock:
        sock.sendall(_head(hub, "POST", "/devices", "Transfer-Encoding: chunked") + b"\r\n"
                     + b"%x\r\n%s\r\n" % (len(entry), entry))
        try:
            for _ in range(17):  # 17 MiB of string, past the 16 MiB bound
                sock.sendall(b"%x\r\n%s\r\n" % (len(pad), pad))
            sock.sendall(b'5\r\n"}}]\r\n0\r\n\r\n')
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close as soon as it has answered
        answer = _until_closed(sock)
    assert _status(answer) == 413 and b"MessageTooLarge" in answer
    assert not _exists(hub, "oversize")


# --- truncated requests ------------------------------------------------------------------------


def test_a_request_cut_mid_headers_is_never_executed(hub: BackgroundHub) -> None:
    """The issue's case: the client goes away before If-Match arrives; a DELETE that would get
    412 must not delete the device."""
    _create(hub, "guarded")
    with _connect(hub) as sock:
        sock.sendall(_head(hub, "DELETE", "/devices/guarded"))  # no blank line: headers unfinished
        sock.shutdown(socket.SHUT_WR)
        assert _until_closed(sock) == b""  # no answer: nothing ran
    assert _exists(hub, "guarded")


def test_a_request_cut_mid_body_is_never_executed(hub: BackgroundHub) -> None:
    body = orjson.dumps([{"id": "half", "importMode": "create"}])
    with _connect(hub) as sock:
        sock.sendall(_head(hub, "POST", "/devices", f"Content-Length: {len(body) + 10}")
                     + b"\r\n" + body)  # the whole JSON, but 10 bytes short of the length
        sock.shutdown(socket.SHUT_WR)
        assert _until_closed(sock) == b""
    assert not _exists(hub, "half")


# --- slow and many clients ---------------------------------------------------------------------


def test_a_header_block_dripped_slowly_is_cut_off(quick: BackgroundHub) -> None:
    """One byte every 0.25 s keeps an idle timeout from firing; the whole-request deadline
    (1 s here) closes the connection long before the ~60 s the drip would take."""
    head = _head(quick, "GET", "/devices/x") + b"X-Pad: " + b"p" * 100 + b"\r\n\r\n"
    with _connect(quick) as sock:
        sent = 0
        for byte in head:
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        assert sent < len(head), "the whole header block went through"
        assert _until_closed(sock) == b""  # cut, not answered


def test_an_idle_kept_alive_connection_is_closed(quick: BackgroundHub) -> None:
    with _connect(quick) as sock:
        sock.sendall(_head(quick, "GET", "/devices/x") + b"\r\n")
        answer = _until_closed(sock)  # kept alive: only the idle timeout (1 s) ends it
        assert _status(answer) == 404 and b"Connection: close" not in answer
        assert answer.endswith(b"}") and answer.count(b"HTTP/1.1") == 1


def test_a_connection_flood_holds_bounded_threads_and_connections(quick: BackgroundHub) -> None:
    """Thrice the connection limit (24) of requests begun and never finished: no thread per
    connection, never more than the limit open, and a real client gets through at once (each
    new arrival closes the connection that has waited longest), not after the deadline."""
    assert Client(quick).call("GET", "/devices/x").status_code == 404  # serving: workers up
    before = threading.active_count()
    socks = []
    try:
        for _ in range(72):
            sock = _connect(quick)
            sock.sendall(b"GET /devices/x HTTP/1.1\r\n")  # a request begun, never finished
            socks.append(sock)
        assert threading.active_count() <= before
        assert quick.server.connections <= QUICK.connection_limit
        client = Client(quick)
        assert client.call("GET", "/devices/x").status_code == 404
        assert quick.server.connections <= QUICK.connection_limit
        # the first ones made room: the server closed them without an answer (a reset when
        # it had not read what they sent yet)
        socks[0].settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert socks[0].recv(1) == b""
    finally:
        for sock in socks:
            sock.close()


# --- amplification, deep bodies, bugs ----------------------------------------------------------


def test_too_many_entries_are_refused_before_validation(client: Client) -> None:
    body = b"[" + b"1," * ((8 << 20) - 2) + b"1]"  # just under 16 MiB: 8 million entries
    response = client.call("POST", "/devices", data=body)
    assert response.status_code == 413
    assert response.headers["iothub-errorcode"] == "TooManyDevices"
    assert "more than 100 entries" in response.json()["Message"]


@pytest.mark.parametrize(("method", "path", "wrap"), [
    ("PATCH", "/twins/deep", lambda d: {"tags": d}),
    ("PUT", "/twins/deep", lambda d: {"properties": {"desired": d}}),
    ("PUT", "/devices/deep", lambda d: {"deviceId": "deep", "tags": d}),
])
def test_deep_bodies_get_iot_hub_errors(client: Client, method: str, path: str,
                                        wrap: Any) -> None:
    for levels in (300, 1000, 5000):
        assert client.call("PUT", "/devices/deep", {"deviceId": "deep"},
                           headers={"If-Match": '"*"'} if levels > 300 else None
                           ).status_code == 200
        nested = '{"a":' * levels + "1" + "}" * levels
        text = orjson.dumps(wrap("NESTED")).replace(b'"NESTED"', nested.encode())
        response = client.call(method, path, data=text, headers={
            "Content-Type": "application/json", "If-Match": '"*"'})
        if method == "PUT" and path == "/devices/deep" and levels <= 1000:  # parsed, ignored
            assert response.status_code == 200  # a device PUT leaves twin members alone
            continue
        assert response.status_code == 400, (levels, response.text)
        assert response.headers["iothub-errorcode"] in {"ArgumentInvalid", "IotHubFormatError"}
        assert response.json()["Message"].startswith("ErrorCode:")


class _Buggy(Hub):
    def _get_device(self, *args: Any) -> Any:
        raise RuntimeError("planted\nbug")


def test_a_hub_bug_answers_500_without_a_traceback_and_logs_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    from bulkreg_conformance.hub.cli import make_policies, serve  # noqa: PLC0415

    host, policies = make_policies(None, None)
    buggy = _Buggy(host_name=host, policies=policies)
    server = serve(buggy)
    running = BackgroundHub(buggy, server, "iothubowner")
    try:
        response = Client(running).call("GET", "/devices/x")
    finally:
        running.stop()
    assert response.status_code == 500
    assert response.headers["iothub-errorcode"] == "ServerError"
    assert "Traceback" not in response.text and "planted" not in response.text
    log = capsys.readouterr().err.strip().splitlines()
    assert len(log) == 1 and "500 on GET /devices/x" in log[0] and "planted" in log[0]


SIXTEEN = 16 * 1024 * 1024 - 64
HOSTILE = {
    "many entries": b"[" + b"1," * (SIXTEEN // 2 - 1) + b"1]",
    "one huge array": b'[{"id":"a","importMode":"create","tags":{"a":['
                      + b"1," * (SIXTEEN // 2 - 40) + b"1]}}]",
    "empty objects": b'[{"id":"a","tags":{"a":[' + b"{}," * (SIXTEEN // 3 - 20) + b"{}]}}]",
    "escapes": b'[{"id":"' + b'a\\"' * (SIXTEEN // 3 - 4) + b'"}]',
    "nesting": b"[" * (SIXTEEN // 2) + b"]" * (SIXTEEN // 2),
}


def _peak_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_16_mib_body_costs_a_few_times_its_size(name: str) -> None:
    """Refused before validation (413), and the server's peak memory grows by at most four
    times the body (it grew by gigabytes before). A fresh server per body: freed memory stays
    with the worker thread that used it, so a series would measure the thread pool."""
    process = subprocess.Popen([sys.executable, "-m", "bulkreg_conformance.hub.cli"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().partition("=")[2]
        cs = process.stdout.readline().strip().partition("=")[2]
        session = requests.Session()
        session.headers["Authorization"] = token_for(cs)
        assert session.get(f"{url}/devices/warm", params={"api-version": API},
                           timeout=60).status_code == 404
        before = _peak_mib(process.pid)
        answer = session.post(f"{url}/devices", params={"api-version": API},
                              data=HOSTILE[name], timeout=120)
        assert answer.status_code == 413, answer.text[:200]
        assert answer.headers["iothub-errorcode"] in {"TooManyDevices", "MessageTooLarge"}
        grown = _peak_mib(process.pid) - before
        assert grown <= 4 * 16, f"peak memory grew by {grown} MiB"
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


# --- the same over TLS -------------------------------------------------------------------------


@pytest.fixture
def quick_tls(tmp_path: Path) -> Iterator[tuple[BackgroundHub, ssl.SSLContext]]:
    found = local_certificates(tmp_path)
    with start_background(limits=QUICK, tls=server_context(found.cert, found.key)) as running:
        yield running, ssl.create_default_context(cafile=str(found.ca))


def test_a_tls_handshake_never_sent_is_cut(quick_tls: tuple[BackgroundHub, ssl.SSLContext]
                                           ) -> None:
    running, _ = quick_tls
    with _connect(running) as sock:
        sock.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, and no more
        assert _until_closed(sock) == b""


def test_over_tls_a_dripped_header_block_is_cut_and_a_cut_request_never_runs(
        quick_tls: tuple[BackgroundHub, ssl.SSLContext]) -> None:
    running, context = quick_tls
    _create_over(running, context, "kept")
    with context.wrap_socket(_connect(running), server_hostname="127.0.0.1") as tls:
        tls.sendall(_head(running, "DELETE", "/devices/kept"))  # headers never finished
        head = b"X-Pad: " + b"p" * 100
        sent = 0
        for byte in head:
            readable, _, _ = select.select([tls], [], [], 0.25)
            if readable:
                break
            try:
                tls.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        assert sent < len(head), "the whole header block went through"
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):  # no TLS goodbye: a cut
            assert tls.recv(1 << 16) == b""
    assert _status(_over_tls(running, context, _head(running, "GET", "/devices/kept",
                                                     "Connection: close") + b"\r\n")) == 200


def _over_tls(running: BackgroundHub, context: ssl.SSLContext, request: bytes) -> bytes:
    with context.wrap_socket(_connect(running), server_hostname="127.0.0.1") as tls:
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(1 << 16):
            answer += chunk
    return answer


def _create_over(running: BackgroundHub, context: ssl.SSLContext, device_id: str) -> None:
    body = orjson.dumps([{"id": device_id, "importMode": "create"}])
    answer = _over_tls(running, context, _head(running, "POST", "/devices",
                                               f"Content-Length: {len(body)}",
                                               "Connection: close") + b"\r\n" + body)
    assert _status(answer) == 200, answer


def test_a_server_bug_on_one_connection_drops_only_that_connection(
        monkeypatch: pytest.MonkeyPatch, hub: BackgroundHub,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The event loop serves every connection: a failure while handling one (planted here in
    the server's own parsing step) closes that one, logs a line, and the loop goes on."""
    original = server._Connection._feed

    def feed(self: server._Connection, data: bytes, ended: bool) -> None:
        if b"X-Planted" in data:
            raise RuntimeError("planted")
        original(self, data, ended)

    monkeypatch.setattr(server._Connection, "_feed", feed)
    with _connect(hub) as sock:
        sock.sendall(_head(hub, "GET", "/devices/x", "X-Planted: 1") + b"\r\n")
        assert _until_closed(sock) == b""
    assert Client(hub).call("GET", "/devices/x").status_code == 404
    assert "connection dropped: RuntimeError('planted')" in capsys.readouterr().err
