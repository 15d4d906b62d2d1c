"""HTTP/1.1 keep-alive on a raw socket: several requests per connection, bodies unread by a
refusal drained, chunked bodies, Content-Length on every answer, Connection: close when asked."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import orjson

from bulkreg_conformance.hub.cli import BackgroundHub
from bulkreg_conformance.hub.framing import SPILL

from .conftest import API, token_for


class Raw:
    """One TCP connection; ``send`` writes a request, ``answer`` reads one response."""

    def __init__(self, hub: BackgroundHub) -> None:
        parts = urlsplit(hub.url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.token = token_for(hub.connection_string)

    def send(self, method: str, path: str, body: bytes = b"", *, token: str | None = None,
             extra: str = "", version: str = "HTTP/1.1", chunked: bool = False) -> None:
        head = (f"{method} {path}?api-version={API} {version}\r\nHost: x\r\n"
                f"Authorization: {self.token if token is None else token}\r\n{extra}")
        if chunked:
            payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                               for i in range(0, len(body), 7)) + b"0\r\n\r\n"
            head += "Transfer-Encoding: chunked\r\n"
        else:
            payload = body
            head += f"Content-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + payload)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        status = int(self.file.readline().split()[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        # RFC 9110 §8.6: no Content-Length on a 204; every other answer carries one
        body = b"" if status == 204 else self.file.read(int(headers["content-length"]))
        return status, headers, body

    def closed(self) -> bool:
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _devices(*ids: str) -> bytes:
    return orjson.dumps([{"id": i, "importMode": "create", "tags": {"t": 1}} for i in ids])


def test_many_requests_share_one_connection(hub: BackgroundHub) -> None:
    raw = Raw(hub)
    try:
        for n in range(5):
            raw.send("POST", "/devices", _devices(f"k{n}a", f"k{n}b"))
            status, headers, body = raw.answer()
            assert status == 200, body
            assert headers.get("connection", "").lower() != "close"
            assert int(headers["content-length"]) == len(body)
            assert orjson.loads(body)["isSuccessful"] is True
        raw.send("GET", "/devices/k4b")
        status, _, body = raw.answer()
        assert status == 200 and orjson.loads(body)["deviceId"] == "k4b"
    finally:
        raw.close()


def test_refused_body_is_drained_not_taken_for_the_next_request(hub: BackgroundHub) -> None:
    raw = Raw(hub)
    try:
        # a 401 answers before the body is read; the body must not be parsed as a request line
        raw.send("POST", "/devices", _devices("never") * 50, token="SharedAccessSignature x")
        status, headers, _ = raw.answer()
        assert status == 401 and headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"
        raw.send("DELETE", "/devices/absent", b"{}")  # a body nobody reads
        assert raw.answer()[0] == 404
        raw.send("POST", "/devices", _devices("after"))
        assert raw.answer()[0] == 200
        raw.send("GET", "/devices/never")
        assert raw.answer()[0] == 404
    finally:
        raw.close()


def test_chunked_request_bodies_keep_the_connection_in_sync(hub: BackgroundHub) -> None:
    raw = Raw(hub)
    try:
        raw.send("POST", "/devices", _devices("c1", "c2"), chunked=True)
        assert raw.answer()[0] == 200
        raw.send("POST", "/devices", _devices("c3"), chunked=True, token="bad")
        assert raw.answer()[0] == 401
        raw.send("GET", "/devices/c2")
        assert raw.answer()[0] == 200
    finally:
        raw.close()


def test_connection_close_and_http_1_0_close_after_the_answer(hub: BackgroundHub) -> None:
    for extra, version in (("Connection: close\r\n", "HTTP/1.1"), ("", "HTTP/1.0")):
        raw = Raw(hub)
        try:
            raw.send("GET", "/devices/none", extra=extra, version=version)
            status, headers, _ = raw.answer()
            assert status == 404
            assert headers["connection"].lower() == "close"
            assert raw.closed()
        finally:
            raw.close()


def test_an_empty_204_answer_keeps_the_connection_in_sync(hub: BackgroundHub) -> None:
    raw = Raw(hub)
    try:
        raw.send("POST", "/devices", _devices("gone"))
        assert raw.answer()[0] == 200
        raw.send("DELETE", "/devices/gone")
        status, headers, body = raw.answer()
        assert status == 204 and body == b"" and "transfer-encoding" not in headers
        raw.send("GET", "/devices/gone")  # still in sync after the empty answer
        assert raw.answer()[0] == 404
    finally:
        raw.close()


def test_an_unreadable_content_length_closes_the_connection(hub: BackgroundHub) -> None:
    raw = Raw(hub)
    try:
        raw.sock.sendall(f"POST /devices?api-version={API} HTTP/1.1\r\nHost: x\r\n"
                         f"Authorization: {raw.token}\r\nContent-Length: ten\r\n\r\n"
                         "GET /devices/x HTTP/1.1\r\n\r\n".encode())
        status, headers, _ = raw.answer()
        assert status == 400 and headers["connection"].lower() == "close"
        assert raw.closed()
    finally:
        raw.close()


def test_a_body_over_the_spill_threshold_arrives_whole(hub: BackgroundHub) -> None:
    """Bodies over 512 KiB wait on disk (framing.SPILL): sent with a length and chunked, each
    arrives byte for byte (every device of the seed is created) and the connection goes on."""
    raw = Raw(hub)
    try:
        for chunked in (False, True):
            entries = [{"id": f"spill{int(chunked)}-{n:05d}", "importMode": "create"}
                       for n in range(SPILL // 30)]
            body = orjson.dumps(entries)
            assert len(body) > SPILL
            raw.send("POST", "/_bulkreg/admin/seed", body, chunked=chunked)
            status, _, answer = raw.answer()
            assert status == 200, answer[:200]
            results = orjson.loads(answer)["results"]
            assert sum(len(r["errors"]) for r in results) == 0
            assert len(results) == -(-len(entries) // 100)
        raw.send("GET", f"/devices/spill1-{SPILL // 30 - 1:05d}")
        assert raw.answer()[0] == 200
    finally:
        raw.close()


def test_pipelined_requests_are_answered_in_order(hub: BackgroundHub) -> None:
    raw = Raw(hub)
    try:
        raw.send("POST", "/devices", _devices("p1"))
        raw.send("GET", "/devices/p1")  # sent before the first answer is read
        raw.send("GET", "/devices/p2")
        assert [raw.answer()[0] for _ in range(3)] == [200, 200, 404]
    finally:
        raw.close()


def test_expect_100_continue_gets_its_interim_answer(hub: BackgroundHub) -> None:
    """curl sends ``Expect: 100-continue`` before a large body and waits for the go-ahead."""
    raw = Raw(hub)
    try:
        body = _devices("cont")
        raw.sock.sendall(f"POST /devices?api-version={API} HTTP/1.1\r\nHost: x\r\n"
                         f"Authorization: {raw.token}\r\nExpect: 100-continue\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode())
        assert raw.file.readline().startswith(b"HTTP/1.1 100 ")
        assert raw.file.readline() == b"\r\n"
        raw.sock.sendall(body)
        assert raw.answer()[0] == 200
    finally:
        raw.close()


def test_a_header_block_over_64_kib_gets_431_and_a_close(hub: BackgroundHub) -> None:
    raw = Raw(hub)
    try:
        raw.send("GET", "/devices/x", extra=f"X-Pad: {'p' * 70_000}\r\n")
        status, headers, body = raw.answer()
        assert status == 431 and headers["connection"].lower() == "close"
        assert b"ErrorCode:GenericBadRequest" in body
        assert raw.closed()
    finally:
        raw.close()
