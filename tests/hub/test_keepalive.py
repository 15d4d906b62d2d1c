"""HTTP/1.1 keep-alive on a raw socket: several requests per connection, bodies unread by a
refusal drained, chunked bodies, Content-Length on every answer, Connection: close when asked."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import orjson

from bulkreg_conformance.hub.cli import BackgroundHub

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
