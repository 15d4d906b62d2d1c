"""HTTP/1.1 framing for one connection: h11's parser with the hub's guards, and the answers.

h11 (a sans-I/O HTTP/1.1 state machine, used through its public API only) parses strictly: a
malformed request line or header, conflicting Content-Length values, a Content-Length that is
not a number, a transfer coding other than chunked, a malformed chunk or a header block over
the limit are protocol errors. What it leaves to the caller, and this module adds:

- Content-Length together with Transfer-Encoding is refused (RFC 9112 §6.3 lets chunked win; a
  gateway in front might pick the other one), and so is Transfer-Encoding on HTTP/1.0;
- a body over ``max_body`` is refused as soon as that is known (a declared length at once, a
  chunked body once it grows past it);
- a request is handed on only once it is complete, body included: a client that goes away
  mid-headers or mid-body never has its request executed;
- a body over ``SPILL`` bytes waits in a temporary file, not in memory: many clients sending
  large bodies slowly cost disk, and the application's own copy is the only one in memory.

Every refusal closes the connection after the answer.
"""

from __future__ import annotations

import email.utils
import io
import tempfile
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import BinaryIO

import h11

__all__ = ["Complete", "Reader", "Refusal", "plain_answer"]

MAX_HEAD = 64 * 1024  # request line and headers
SPILL = 512 * 1024  # a body larger than this waits on disk


@dataclass
class Complete:
    """A whole request: h11's request event and the body (de-chunked), to be read once."""

    request: h11.Request
    body: BinaryIO
    size: int

    def close(self) -> None:
        self.body.close()


@dataclass
class Refusal:
    """A request the server answers itself, then closes the connection."""

    status: int
    text: str


@dataclass
class Reader:
    """One connection's requests, one at a time (``next_cycle`` after each answer)."""

    max_body: int
    interim: bytearray = field(default_factory=bytearray)  # 100 Continue, to send at once
    _h11: h11.Connection = field(init=False)
    _request: h11.Request | None = field(default=None, init=False)
    _body: bytearray = field(default_factory=bytearray, init=False)
    _spilled: BinaryIO | None = field(default=None, init=False)
    _size: int = field(default=0, init=False)
    _ended: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    def receive(self, data: bytes, ended: bool = False) -> None:
        if data:
            self._h11.receive_data(data)
        if ended and not self._ended:
            self._ended = True
            self._h11.receive_data(b"")

    def has_buffered(self) -> bool:
        """Bytes received and not parsed yet (a pipelined request), or the peer's end."""
        data, closed = self._h11.trailing_data
        return bool(data) or closed

    def next(self) -> Complete | Refusal | None:
        """The next whole request, a refusal, or None: more bytes needed, or (``closed``) the
        peer went away before a request was complete."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self._ended:
                    return None  # cut off mid-request: nothing to answer, nothing ran
                return Refusal(exc.error_status_hint, str(exc) or "malformed request")
            if event is h11.NEED_DATA or event is h11.PAUSED or \
                    isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                refused = self._check(event)
                if refused is not None:
                    return refused
                self._request, self._body, self._size = event, bytearray(), 0
                if self._h11.they_are_waiting_for_100_continue:
                    self.interim += self._h11.send(
                        h11.InformationalResponse(status_code=HTTPStatus.CONTINUE, headers=[]))
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > self.max_body:
                    self.discard()
                    return Refusal(413, f"the body exceeds {self.max_body} bytes")
                self._keep(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert self._request is not None
                body: BinaryIO = io.BytesIO(self._body) if self._spilled is None \
                    else self._spilled
                body.seek(0)
                self._body, self._spilled = bytearray(), None
                return Complete(self._request, body, self._size)

    def _keep(self, data: bytes) -> None:
        if self._spilled is None and self._size > SPILL:
            self._spilled = tempfile.TemporaryFile()  # noqa: SIM115 - handed on, closed after
            self._spilled.write(self._body)
            self._body = bytearray()
        if self._spilled is not None:
            self._spilled.write(data)
        else:
            self._body += data

    def discard(self) -> None:
        """Drop a body being received (the connection closes)."""
        if self._spilled is not None:
            self._spilled.close()
        self._body, self._spilled = bytearray(), None

    @property
    def closed(self) -> bool:
        """The peer ended its side (nothing more will arrive)."""
        return self._ended

    def _check(self, request: h11.Request) -> Refusal | None:
        # h11 bounds only a head still incomplete; one that arrived whole is measured here
        size = len(request.method) + len(request.target) + sum(
            len(name) + len(value) + 4 for name, value in request.headers)
        if size > MAX_HEAD:
            return Refusal(431, f"the request line and headers exceed {MAX_HEAD} bytes")
        names = {name for name, _ in request.headers}
        if b"transfer-encoding" in names:
            if b"content-length" in names:
                return Refusal(400, "Content-Length and Transfer-Encoding together")
            if request.http_version != b"1.1":
                return Refusal(400, "Transfer-Encoding on an HTTP/1.0 request")
        for name, value in request.headers:
            if name == b"content-length" and int(value) > self.max_body:
                return Refusal(413, f"the body exceeds {self.max_body} bytes")
        return None

    def answer(self, method: bytes, status: int, reason: str,
               headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[bytes, bool]:
        """An answer's bytes, head and body together, and whether the connection stays open.
        Every answer that may have a body carries Content-Length (never chunked)."""
        bodiless = status in (204, 304)
        if not bodiless and not any(name.lower() == b"content-length" for name, _ in headers):
            headers.append((b"Content-Length", b"%d" % len(body)))
        headers += _stamp()
        events: list[h11.Event] = [h11.Response(status_code=status, headers=headers,
                                                reason=reason.encode("latin-1"))]
        if body and not bodiless and method != b"HEAD":
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        out = b"".join(self._h11.send(event) or b"" for event in events)
        return out, self._h11.our_state is h11.DONE

    def next_cycle(self) -> None:
        self._h11.start_next_cycle()
        self._request = None


_date = (0, b"")


def _stamp() -> list[tuple[bytes, bytes]]:
    """Date (RFC 9110 §6.6.1: an origin server with a clock sends it) and Server, the Date
    formatted once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, email.utils.formatdate(now, usegmt=True).encode())
    return [(b"Date", _date[1]), (b"Server", b"bulkreg")]


def plain_answer(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A closing answer written without h11 (a refusal: the parser may be in its error state)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{n}: {v}" for n, v in headers),
             f"Content-Length: {len(body)}", "Connection: close"]
    head = "\r\n".join(lines).encode("latin-1") + b"\r\n"
    return head + b"".join(n + b": " + v + b"\r\n" for n, v in _stamp()) + b"\r\n" + body
