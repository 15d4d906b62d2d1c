"""The HTTP/1.1 keep-alive request handler that ``bulkreg serve`` (and its benchmark floor) runs.

werkzeug's development handler ends every response with ``Connection: close`` and, to stay in
sync, drains the socket with a 10 ms select after each response: it cannot keep a connection
open. IoT Hub clients (the SDKs' ``requests`` sessions) reuse connections, so this handler keeps
them: it knows where each request body ends (Content-Length, or the chunked terminator), drains
exactly the unread rest of it after the application answered, and writes the status line,
headers and body in one ``send`` (no Nagle/delayed-ACK stall between headers and body). A body
too large to drain, or a client asking for it, gets ``Connection: close``.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterable
from typing import Any

from werkzeug.serving import WSGIRequestHandler

__all__ = ["KeepAliveHandler", "QuietKeepAliveHandler"]

DRAIN_MAX = 16 * 1024 * 1024  # an unread rest beyond this closes the connection instead
_NO_BODY = frozenset({204, 304})


class _CountingInput(io.RawIOBase):
    """The socket's body bytes for the application, counting what it consumed."""

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size: int = self._rfile.readinto(buffer) or 0
        self.consumed += size
        return size


class KeepAliveHandler(WSGIRequestHandler):
    """A WSGIRequestHandler that speaks HTTP/1.1 with persistent connections."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds an idle (or stalled) connection may hold its thread

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        counted: _CountingInput | None = None
        if not environ.get("wsgi.input_terminated"):  # a Content-Length body (or none)
            counted = _CountingInput(environ["wsgi.input"])
            environ["wsgi.input"] = counted
        try:
            status, headers, body = self._call(environ)
        except (ConnectionError, TimeoutError) as exc:
            self.connection_dropped(exc, environ)
            self.close_connection = True
            return
        except Exception as exc:  # an application bug: answer 500 and log it, as werkzeug does
            self.server.log("error", f"Error on request {self.requestline!r}: {exc!r}")
            status, headers, body = "500 INTERNAL SERVER ERROR", [], b"Internal Server Error"
            self.close_connection = True
        if not self._drained(environ, counted):
            self.close_connection = True
        self._write(environ, status, headers, body)

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return None

        iterable: Iterable[bytes] = self.server.app(environ, start_response)
        try:
            body = b"".join(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        return started[0], started[1], body

    def _drained(self, environ: dict[str, Any], counted: _CountingInput | None) -> bool:
        """Read the unread rest of the request body; False when it is too large to."""
        if counted is not None:
            length = environ.get("CONTENT_LENGTH") or "0"
            if not length.isdigit():  # where this body ends is unknowable: do not guess
                return False
            rest = int(length) - counted.consumed
            if rest > DRAIN_MAX:
                return False
            while rest > 0:
                chunk = self.rfile.read(min(rest, 1 << 20))
                if not chunk:
                    return False
                rest -= len(chunk)
            return True
        stream, total = environ["wsgi.input"], 0  # chunked: read to the terminator
        while chunk := stream.read(1 << 20):
            total += len(chunk)
            if total > DRAIN_MAX:
                return False
        return True

    def _write(self, environ: dict[str, Any], status: str, headers: list[tuple[str, str]],
               body: bytes) -> None:
        code_text, _, message = status.partition(" ")
        code = int(code_text)
        self.send_response(code, message)
        names = set()
        for name, value in headers:
            names.add(name.lower())
            if name.lower() != "connection":
                self.send_header(name, value)
        if environ["REQUEST_METHOD"] == "HEAD" or code in _NO_BODY or code < 200:
            body = b""
        elif "content-length" not in names:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # headers and body leave in one send: no small trailing segment for Nagle to hold back
        self._headers_buffer.append(b"\r\n" + body)
        try:
            self.flush_headers()
        except (ConnectionError, TimeoutError) as exc:
            self.connection_dropped(exc, environ)
            self.close_connection = True


class QuietKeepAliveHandler(KeepAliveHandler):
    """No access log: one stderr line per request costs a benchmark about 10 %."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass
