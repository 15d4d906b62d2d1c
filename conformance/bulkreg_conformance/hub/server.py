"""The HTTP/1.1 server that ``bulkreg serve`` (and its benchmark floor) runs: waitress, guarded.

waitress reads requests on one event loop and hands a request to its bounded pool of worker
threads only once the whole request, body included, is buffered: a client that goes away
mid-headers or mid-body never gets its request executed, and a slow client holds no thread.
It rejects a malformed or conflicting Content-Length and an oversize chunked body and closes
the connection; beyond ``connection_limit`` open connections it stops accepting.

What this module adds in front of it (each a small subclass, nothing patched):

- ``_Parser``: Content-Length together with Transfer-Encoding is refused (400, connection
  closed) instead of letting chunked win (RFC 9112 §6.3 allows either; a gateway in front might
  pick the other one), and so is Transfer-Encoding on HTTP/1.0.
- ``_Channel``: a whole-request deadline. waitress's ``channel_timeout`` is an idle timeout
  that every received byte resets, so a header block dripped a byte at a time would stay open;
  here a request (or a TLS handshake) not complete ``request_timeout`` seconds after its first
  byte closes the connection.
- ``_TlsChannel``: TLS, which waitress lacks, through ``ssl.SSLObject`` over memory BIOs on the
  same non-blocking socket: the event loop stays the only reader, so every property above holds
  for https too.
- ``_ErrorTask``: framing errors answer with IoT Hub's error body (facts §3.4), not a text page.
- ``Turn``: tasks run the application and write its answer one at a time, in arrival order.
  The hub's work is CPU-bound under one GIL: two tasks run side by side finish together, late,
  while one after the other the first answer leaves at once and its client prepares its next
  call while the second is computed (~25 % more bulk calls per second with two clients,
  ``tests/benchmarks/bench_hub.py``). The pool stays: a task waiting without computing (the
  hub's latency fault) gives its turn away (``environ["bulkreg.turn"]``).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, WSGITask

__all__ = ["AccessLog", "ErrorBody", "Limits", "Server", "Turn", "make_server"]

# (status, IoT Hub error code, text) -> (headers, body): the hub's generic error answer
ErrorBody = Callable[[int, str, str], tuple[list[tuple[str, str]], bytes]]

_CODES = {400: "GenericBadRequest", 413: "MessageTooLarge", 431: "GenericBadRequest",
          501: "GenericBadRequest", 500: "ServerError"}
_RAW_HIGH = 1 << 20  # encrypted bytes waiting for the socket before send() pushes back
_LINGER = 2.0  # seconds a closing connection may take to take its answer, or to stop sending
_FLUSH_WAIT = 0.05  # seconds the loop waits for a task thread's hold on an answer's buffer


class Limits:
    """How much one server may hold: threads, connections, deadlines, body size."""

    def __init__(self, *, threads: int = 8, connection_limit: int = 256,
                 request_timeout: float = 30.0, idle_timeout: int = 120,
                 max_body: int = 16 * 1024 * 1024) -> None:
        self.threads = threads  # worker threads running the application
        self.connection_limit = connection_limit  # open connections; more wait in the backlog
        self.request_timeout = request_timeout  # first byte to last byte of one request
        self.idle_timeout = idle_timeout  # a kept-alive connection with no request
        self.max_body = max_body


def _plain_error(status: int, code: str, text: str) -> tuple[list[tuple[str, str]], bytes]:
    return [("Content-Type", "text/plain; charset=utf-8")], f"{code}: {text}".encode()


class _Parser(HTTPRequestParser):  # type: ignore[misc]
    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            raise ParsingError("Content-Length and Transfer-Encoding together")
        if "TRANSFER_ENCODING" in self.headers:  # waitress pops it for HTTP/1.1 only
            raise ParsingError("Transfer-Encoding on an HTTP/1.0 request")


class _ErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's error answer (it closes the connection), with the hub's error body."""

    def execute(self) -> None:
        error = self.request.error
        status = int(error.code)
        text = f"{error.reason}: {error.body}" if error.body else str(error.reason)
        headers, body = self.channel.server.error_body(status, _CODES.get(status, "GenericError"),
                                                       text)
        self.status = f"{status} {error.reason}"
        self.response_headers.extend(headers)
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class Turn:
    """The right to run the application and write its answer (see the module docstring)."""

    ENVIRON_KEY = "bulkreg.turn"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    @contextlib.contextmanager
    def given_away(self) -> Iterator[None]:
        """For a wait that computes nothing (no lock held): other tasks run meanwhile."""
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()


class _Task(WSGITask):  # type: ignore[misc]
    """waitress closes the connection after any answer without Content-Length, a 204 too;
    but a 204 (or 304) is framed by its status (RFC 9110 §6.4.1): the connection stays."""

    _framed_by_status = False
    wrote_header: bool  # waitress's (a class attribute there)

    def execute(self) -> None:
        turn = self.channel.server.turn
        self.get_environment()[Turn.ENVIRON_KEY] = turn  # waitress caches the environ
        with turn:
            super().execute()

    def build_response_header(self) -> bytes:
        self._framed_by_status = not self.has_body and self.version == "1.1" and \
            self.request.headers.get("CONNECTION", "").lower() != "close"
        try:
            header: bytes = super().build_response_header()
        finally:
            self._framed_by_status = False
        return header

    def set_close_on_finish(self) -> None:
        if not self._framed_by_status:
            super().set_close_on_finish()

    def write(self, data: bytes) -> None:
        """The head and the first body chunk in one buffer write, so one send().

        waitress writes the head alone first, and the task thread sends it at once (send_bytes
        = 1). Between that send() and the body's, the thread gives up the GIL and waits up to
        a switch interval to get it back when another task computes: the client received a
        head and waited for its body (~2.5 ms per answer with two busy clients)."""
        cl = self.content_length
        if (self.wrote_header or not data or not self.complete or not self.has_body
                or self.chunked_response or cl is None
                or len(data) > cl - self.content_bytes_written):
            super().write(data)  # waitress's path: later chunks, chunked, excess to log
            return
        head = self.build_response_header()
        self.wrote_header = True
        self.content_bytes_written += len(data)
        self.channel.write_soon(head + data)


class _Channel(HTTPChannel):  # type: ignore[misc]
    """waitress's channel with a whole-request deadline and a lingering close."""

    parser_class = _Parser
    task_class = _Task
    error_task_class = _ErrorTask
    request_started = 0.0  # monotonic time of the first byte of the request being read
    # A close while the client is still sending (a refused oversize body, say) would make the
    # kernel answer the unread bytes with a reset, and the client could lose the answer. So
    # the close ends our side first and discards what still arrives, for at most _LINGER s.
    lingering_since: float | None = None
    expired = False  # past a deadline: closed at the loop's next turn, without lingering

    def received(self, data: bytes) -> bool:
        if self.request is None:
            self.request_started = time.monotonic()
        return bool(super().received(data))

    def overdue(self, now: float, deadline: float) -> bool:
        """Lingered long enough, or a request begun and not complete within the deadline."""
        if self.lingering_since is not None:
            return now - self.lingering_since > _LINGER
        return self.request is not None and not self.requests and \
            now - self.request_started > deadline

    def expire(self) -> None:
        # not closed here: the server calls this while the loop is collecting sockets to poll
        self.expired = True

    def readable(self) -> bool:
        return self.lingering_since is not None or bool(super().readable())

    def writable(self) -> bool:
        return self.expired or (self.lingering_since is None and bool(super().writable()))

    def handle_write(self) -> None:
        if self.expired:
            self._close_now()  # a request past its deadline has no answer to protect
            return
        super().handle_write()

    def _flush_some_if_lockable(self, do_close: bool = True) -> None:
        """Flush while a task runs, waiting briefly for the task's hold on the buffer.

        waitress only tries the lock. But the task thread holds it while it appends and sends
        its answer (send_bytes = 1), and after its send() it waits for the GIL, which the loop
        thread keeps taking: the socket is writable, so the loop polled, found the lock busy
        and polled again, about 100 times per request (half the CPU of a bare app's server).
        Waiting on the lock releases the GIL to the task thread instead. The hold covers one
        non-blocking send, so the wait is short; the timeout keeps the loop's other
        connections served whatever happens."""
        if self.outbuf_lock.acquire(timeout=_FLUSH_WAIT):
            try:
                self._flush_some(do_close=do_close)
                if self.total_outbufs_len < self.adj.outbuf_high_watermark:
                    self.outbuf_lock.notify()
            finally:
                self.outbuf_lock.release()

    def handle_read(self) -> None:
        if self.lingering_since is None:
            super().handle_read()
            return
        try:
            data = self.socket.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_now()

    def handle_close(self) -> None:
        if self.lingering_since is not None or self.socket is None:
            self._close_now()
            return
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            self._close_now()
            return
        self.lingering_since = time.monotonic()

    def _close_now(self) -> None:
        HTTPChannel.handle_close(self)


class _TlsChannel(_Channel):
    """A channel whose bytes pass through TLS: the socket carries ciphertext, waitress sees
    plaintext. ``_raw`` holds ciphertext the socket has not taken yet; a close waits for it."""

    def __init__(self, server: Server, sock: socket.socket, addr: Any, adj: Any,
                 map: Any = None) -> None:
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        assert server.tls is not None
        self._tls = server.tls.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._tls_lock = threading.Lock()  # task threads send() while the loop reads
        self._raw = bytearray()
        self._handshaken = False
        self._closing = False
        super().__init__(server, sock, addr, adj, map)
        self.request_started = time.monotonic()  # the handshake is under the deadline too

    def overdue(self, now: float, deadline: float) -> bool:
        if not self._handshaken and self.lingering_since is None:
            return now - self.request_started > deadline
        return super().overdue(now, deadline)

    def _push(self) -> None:
        """Move ciphertext from the TLS object to the socket, as much as it takes."""
        self._raw += self._outgoing.read()
        if self._raw and self.socket is not None:
            try:
                sent = self.socket.send(self._raw)
            except BlockingIOError:
                return
            del self._raw[:sent]

    def _unwrap(self) -> tuple[bytes, bool]:
        """Plaintext available now, and whether the peer ended the TLS session."""
        if not self._handshaken:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return b"", False
            self._handshaken = True
            self.request_started = time.monotonic()
        plain = bytearray()
        while True:
            try:
                chunk = self._tls.read(1 << 16)
            except ssl.SSLWantReadError:
                return bytes(plain), False
            except ssl.SSLZeroReturnError:
                return bytes(plain), True
            if not chunk:
                return bytes(plain), True
            plain += chunk

    def handle_read(self) -> None:
        if self.lingering_since is not None:
            super().handle_read()  # discard
            return
        try:
            raw = self.socket.recv(self.adj.recv_bytes)
        except BlockingIOError:
            return
        except OSError:
            self._close_now()
            return
        try:
            with self._tls_lock:
                if raw:
                    self._incoming.write(raw)
                else:
                    self._incoming.write_eof()
                plain, ended = self._unwrap()
                self._push()
        except (ssl.SSLError, OSError):  # not TLS, a bad handshake, a reset: nothing to answer
            self._close_now()
            return
        if plain:
            self.last_activity = time.time()
            self.received(plain)
        if ended or not raw:
            self._close_now()

    def send(self, data: Any, do_close: bool = True) -> int:
        with self._tls_lock:
            if len(self._raw) > _RAW_HIGH:
                self._push()
                if len(self._raw) > _RAW_HIGH:
                    return 0  # the socket is full: waitress tries again when it is writable
            written: int = self._tls.write(data)
            self._push()
        return written

    def writable(self) -> bool:
        return self.expired or (self.lingering_since is None and
                                (bool(self._raw) or bool(super().writable())))

    def handle_write(self) -> None:
        if self.expired:
            self._close_now()
            return
        try:
            with self._tls_lock:
                self._push()
        except OSError:
            self._close_now()
            return
        if self._raw:
            return  # the rest when the socket is writable again; waitress's own turn after
        if self._closing:
            super().handle_close()  # all sent: linger
            return
        super().handle_write()

    def handle_close(self) -> None:
        if self._raw and self.socket is not None and self.lingering_since is None:
            self._closing = True  # the answer's last bytes first (handle_write)
            self.will_close = True
            self.lingering_since = None
            return
        super().handle_close()

    def _close_now(self) -> None:
        self._raw.clear()
        super()._close_now()


class Server(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP server with the guards above, a TLS option and a thread-safe stop."""

    channel_class = _Channel

    def __init__(self, app: Any, *, host: str, port: int, limits: Limits,
                 tls: ssl.SSLContext | None = None, error_body: ErrorBody | None = None,
                 ident: str = "bulkreg") -> None:
        self.tls = tls
        self.limits = limits
        self.turn = Turn()
        self.error_body = error_body or _plain_error
        if tls is not None:
            self.channel_class = _TlsChannel
        try:
            super().__init__(
                app, host=host, port=port, threads=limits.threads,
                connection_limit=limits.connection_limit, channel_timeout=limits.idle_timeout,
                cleanup_interval=1, max_request_body_size=limits.max_body + 1,
                max_request_header_size=64 * 1024, recv_bytes=256 * 1024,
                expose_tracebacks=False,
                log_socket_errors=False, url_scheme="https" if tls else "http", ident=ident,
                clear_untrusted_proxy_headers=False)
        except BaseException:
            # waitress makes its trigger pipe, the listening socket and the worker threads
            # before it binds, and leaks them when the bind fails (e.g. a port in use)
            wasyncore.close_all(getattr(self, "_map", {}))
            if hasattr(self, "task_dispatcher"):
                self.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
            raise
        # The worker that made an answer sends it at once (waitress would leave a small answer
        # to the loop thread, which then waits for its turn on the GIL while another worker
        # computes: up to a switch interval per answer). Set after init: the keyword is
        # deprecated, the behaviour is not.
        self.adj.send_bytes = 1
        self.host, self.port = str(self.effective_host), int(self.effective_port)
        self._stopped = threading.Event()

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle kept-alive connections
        mono = time.monotonic()
        for channel in list(self.active_channels.values()):
            if channel.overdue(mono, self.limits.request_timeout):
                channel.expire()

    def serve_forever(self) -> None:
        try:
            self.run()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serving (from any thread): the loop closes every socket and returns."""
        if not self._stopped.is_set():
            with contextlib.suppress(OSError):  # the loop may have closed the trigger already
                self.trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
            self._stopped.wait(10)
        self.task_dispatcher.shutdown(cancel_pending=True, timeout=5)

    def server_close(self) -> None:
        with contextlib.suppress(OSError):
            self.close()


def make_server(app: Any, host: str = "127.0.0.1", port: int = 0, *,
                limits: Limits | None = None, tls: ssl.SSLContext | None = None,
                error_body: ErrorBody | None = None) -> Server:
    """Bind (the port is known on return) without serving yet: call ``serve_forever``."""
    try:
        return Server(app, host=host, port=port, limits=limits or Limits(), tls=tls,
                      error_body=error_body)
    except ValueError:  # waitress's word for an address it cannot resolve
        raise OSError(errno.EADDRNOTAVAIL, "not an address to listen on") from None


class AccessLog:
    """WSGI middleware: one plain line per answered request (no colour codes: the log is often
    a file), ``client - - [time] "METHOD target PROTOCOL" status length``."""

    def __init__(self, app: Any, stream: TextIO) -> None:
        self.app = app
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen: list[str] = []

        def record(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen[:] = [status.partition(" ")[0]]
            return start_response(status, headers, exc_info)

        body = list(self.app(environ, record))
        target = environ.get("PATH_INFO", "") + (
            "?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
        when = time.strftime("%d/%b/%Y %H:%M:%S", time.localtime())
        line = (f'{environ.get("REMOTE_ADDR", "-")} - - [{when}] "{environ["REQUEST_METHOD"]} '
                f'{target} {environ.get("SERVER_PROTOCOL", "")}" {seen[0] if seen else "-"} '
                f"{sum(map(len, body))}")
        with self._lock:
            print(line.encode("ascii", "backslashreplace").decode(), file=self.stream,
                  flush=True)
        return body
