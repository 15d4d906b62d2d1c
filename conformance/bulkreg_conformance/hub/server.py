"""The HTTP/1.1 server that ``bulkreg serve`` (and its benchmark floor) runs.

One event loop thread (``selectors``: epoll or kqueue, so no FD_SETSIZE ceiling) owns every
connection: it accepts, reads, parses (``framing``: h11 plus the hub's guards) and, once a
request is complete, body included, hands it to a bounded pool of worker threads that run the
WSGI application. A worker sends its answer itself, head and body in one write, and leaves only
what the socket does not take at once to the loop. So:

- a request that never completes is never executed, and holds no thread;
- an idle or half-sent connection costs a few KiB of memory and nothing else: a normal request
  is answered at once beside a thousand of them;
- at most ``connection_limit`` connections are open; when a new one arrives at the cap, the
  connection that has waited longest for a complete request (or idled longest) is closed to
  make room, so a flood of slow clients cannot lock the others out;
- a request (or a TLS handshake) not complete ``request_timeout`` seconds after its first byte
  is cut, however slowly it drips; a kept-alive connection idle ``idle_timeout`` seconds, or an
  answer its client stops reading for as long, is closed;
- a refused request (framing, oversize body) gets IoT Hub's error body and a lingering close:
  our side ends first and what still arrives is read and dropped for up to ``LINGER`` seconds,
  so the client reads the answer instead of a reset.

Everything here is this project's code on public APIs (socket, selectors, ssl, h11):
no dependency is subclassed or patched.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import os
import queue
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO
from urllib.parse import unquote_to_bytes

import h11

from .framing import Complete, Reader, Refusal, plain_answer
from .transport import Plain, Tls, TransportError

__all__ = ["AccessLog", "ErrorBody", "Limits", "Server", "make_server"]

# (status, IoT Hub error code, text) -> (headers, body): the hub's generic error answer
ErrorBody = Callable[[int, str, str], tuple[list[tuple[str, str]], bytes]]

_CODES = {400: "GenericBadRequest", 413: "MessageTooLarge", 431: "GenericBadRequest",
          501: "GenericBadRequest", 500: "ServerError"}
LINGER = 2.0  # seconds a closing connection may take to take its answer, or to stop sending
_PENDING_MAX = 256 * 1024  # bytes read ahead (pipelined) while a request runs; then stop reading
_ACCEPT_BATCH = 64  # connections accepted per loop turn
CONNECTION_LIMIT = 4096  # not a contract limit: a few KiB each (bench_slow_clients.py)
_RETRY_ACCEPT = 0.1  # seconds without accepting when the process is out of descriptors

# a connection's phases (only the loop thread moves one out of BUSY's successors)
_READING, _BUSY, _CLOSING, _LINGERING, _CLOSED = range(5)


class Limits:
    """How much one server may hold: threads, connections, deadlines, body size."""

    def __init__(self, *, threads: int = 8, connection_limit: int = CONNECTION_LIMIT,
                 request_timeout: float = 30.0, idle_timeout: float = 120,
                 max_body: int = 16 * 1024 * 1024) -> None:
        self.threads = threads  # worker threads running the application
        self.connection_limit = connection_limit  # open connections; the stalest make room
        self.request_timeout = request_timeout  # first byte to last byte of one request
        self.idle_timeout = idle_timeout  # a kept-alive connection with no request
        self.max_body = max_body


def _plain_error(status: int, code: str, text: str) -> tuple[list[tuple[str, str]], bytes]:
    return [("Content-Type", "text/plain; charset=utf-8")], f"{code}: {text}".encode()


class _Connection:
    """One client connection; its fields are the loop's, but while BUSY the worker's."""

    def __init__(self, server: Server, sock: socket.socket, peer: Any, now: float) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.transport: Plain = Plain(sock) if server.tls is None else Tls(sock, server.tls)
        self.reader = Reader(server.limits.max_body)
        self.phase = _READING
        self.lock = threading.Lock()  # the hand-over between the loop and a worker
        # monotonic time the request being read began (its first byte; a TLS connection's
        # handshake counts as its first request), or None while idle
        self.started: float | None = None if self.transport.handshaken else now
        self.since = now  # idle since, lingering since, or the last byte sent
        self.pending = bytearray()  # read while BUSY
        self.paused = False  # reading stopped while BUSY (read ahead enough, or peer gone)
        self.ended = False  # the peer ended its side while BUSY
        self.events = 0  # what the selector watches for
        self.task: Complete | None = None

    # -- the loop's side -------------------------------------------------------------------

    def on_events(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush()
        if mask & selectors.EVENT_READ and self.phase != _CLOSED:
            self._on_readable()
        self.watch()

    def watch(self) -> None:
        """Tell the selector what this connection waits for now."""
        if self.phase == _CLOSED:
            return
        events = 0
        if self.phase in (_READING, _LINGERING) or (self.phase == _BUSY and not self.paused):
            events |= selectors.EVENT_READ
        if self.transport.has_output():
            events |= selectors.EVENT_WRITE
        if events != self.events:
            selector = self.server.selector
            if not self.events:
                selector.register(self.sock, events, self)
            elif not events:
                selector.unregister(self.sock)
            else:
                selector.modify(self.sock, events, self)
            self.events = events

    def _on_readable(self) -> None:
        if self.phase == _LINGERING:
            try:
                data, ended = self.transport.recv() if not isinstance(self.transport, Tls) \
                    else Plain.recv(self.transport)  # ciphertext to drop: no need to decrypt
            except TransportError:
                ended = True
            if ended:
                self.close()
            return
        handshaking = not self.transport.handshaken
        try:
            data, ended = self.transport.recv()
        except TransportError:
            data, ended = b"", True
            if self.phase != _BUSY:
                self.close()
                return
        now = time.monotonic()
        if handshaking and self.transport.handshaken:
            self.started, self.since = None, now  # handshake done: idle until a request
        with self.lock:
            if self.phase == _BUSY:
                self.pending += data
                self.ended = self.ended or ended
                self.paused = self.ended or len(self.pending) > _PENDING_MAX
                return
            data, ended = self._take_pending(data, ended)
        if data and self.started is None:
            self.started = now
        self._feed(data, ended)

    def _take_pending(self, data: bytes, ended: bool) -> tuple[bytes, bool]:
        """What arrived while BUSY goes first (under ``lock``)."""
        if self.pending:
            data = bytes(self.pending) + data
            self.pending.clear()
        ended, self.ended, self.paused = ended or self.ended, False, False
        return data, ended

    def _feed(self, data: bytes, ended: bool) -> None:
        """Parse what arrived; act on a whole request, a refusal, or the peer's end."""
        self.reader.receive(data, ended)
        result = self.reader.next()
        if self.reader.interim:
            self._send(bytes(self.reader.interim))  # 100 Continue
            self.reader.interim.clear()
        if isinstance(result, Complete):
            self.phase, self.task = _BUSY, result
            self.server.tasks.put(self)
        elif isinstance(result, Refusal):
            self.refuse(result.status, result.text)
        elif self.reader.closed:
            self.close()  # gone between requests, or mid-request: nothing ran, nothing to say

    def refuse(self, status: int, text: str) -> None:
        """Answer with the hub's error body and close (after a lingering wait)."""
        code = _CODES.get(status, "GenericError")
        headers, body = self.server.error_body(status, code, text)
        self._send(plain_answer(status, headers, body))
        if self.phase != _CLOSED:
            self.phase, self.since = _CLOSING, time.monotonic()
            self._flush()

    def _send(self, data: bytes) -> None:
        try:
            self.transport.send(data)
        except TransportError:
            self.close()

    def _flush(self) -> None:
        try:
            done = self.transport.flush()
        except TransportError:
            self.close()
            return
        if done:
            self.since = time.monotonic()  # drained: idle from here
            if self.phase == _CLOSING:
                self._linger()

    def _linger(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.phase, self.since = _LINGERING, time.monotonic()

    def resume(self) -> None:
        """After a worker's answer: go on with what arrived meanwhile, or close."""
        if self.phase == _CLOSING:
            self._flush()
        elif self.phase == _READING:
            with self.lock:
                data, ended = self._take_pending(b"", False)
            if data or self.reader.has_buffered():
                self.started = time.monotonic()
            self._feed(data, ended)
        self.watch()

    def overdue(self, now: float) -> bool:
        limits = self.server.limits
        if self.phase == _LINGERING:
            return now - self.since > LINGER
        if self.phase == _BUSY:
            return False
        if self.transport.has_output() and now - self.since > limits.idle_timeout:
            return True  # the client stopped reading its answer
        if self.phase != _READING:
            return False
        if self.started is not None:
            return now - self.started > limits.request_timeout
        return now - self.since > limits.idle_timeout

    def staleness(self) -> float | None:
        """When this connection began waiting for a request, if it may be closed for room."""
        if self.phase != _READING:
            return None
        return self.since if self.started is None else self.started

    def close(self) -> None:
        with self.lock:
            if self.phase == _CLOSED:
                return
            busy, self.phase = self.phase == _BUSY, _CLOSED
        if self.events:
            self.server.selector.unregister(self.sock)
            self.events = 0
        with contextlib.suppress(OSError):
            self.sock.close()
        if not busy:
            self.reader.discard()  # a body half received, perhaps on disk
        self.server.forget(self)

    # -- the worker's side -----------------------------------------------------------------

    def run(self) -> None:
        """Run the application on the complete request and send its answer."""
        task = self.task
        assert task is not None
        self.task = None
        keep = False
        result: Iterable[bytes] | None = None
        try:
            status, reason, headers, chunks, result = self.server.call_app(self, task)
            try:
                data, keep = self.reader.answer(task.request.method, status, reason, headers,
                                                b"".join(chunks))
            except h11.LocalProtocolError as exc:  # an unsendable header from the app
                data = self._error_answer(500, f"unsendable answer: {exc}")
            self.transport.send(data)
        except TransportError:
            keep = False
        except Exception as exc:  # the application raised: IoT Hub's 500, one log line
            print(f"bulkreg serve: 500 on {task.request.method.decode('latin-1')} "
                  f"{task.request.target.decode('latin-1')}: {exc!r}"[:400],
                  file=sys.stderr, flush=True)
            with contextlib.suppress(TransportError):
                self.transport.send(self._error_answer(500, "the server failed"))
            keep = False
        finally:
            task.close()
            close = getattr(result, "close", None)
            if close is not None:
                close()  # PEP 3333: once the answer is written
        self._after(keep)

    def _error_answer(self, status: int, text: str) -> bytes:
        headers, body = self.server.error_body(status, _CODES[status], text)
        return plain_answer(status, headers, body)

    def _after(self, keep: bool) -> None:
        """Hand the connection back to the loop; wake it only when it has something to do."""
        with self.lock:
            if self.phase == _CLOSED:
                return  # the loop closed it meanwhile (its socket failed, or shutdown)
            # the phase last: the loop's sweep reads it first, without the lock
            self.started, self.since = None, time.monotonic()
            if keep:
                self.reader.next_cycle()
                self.phase = _READING
                needed = bool(self.pending) or self.ended or self.paused or \
                    self.reader.has_buffered() or self.transport.has_output()
            else:
                self.phase, needed = _CLOSING, True
        if needed:
            self.server.call_soon(self.resume)


class Server:
    """Bound on construction (``host`` and ``port`` are known); ``serve_forever`` runs the loop
    on the calling thread, ``shutdown`` (from any thread) stops it."""

    def __init__(self, app: Any, *, host: str, port: int, limits: Limits,
                 tls: ssl.SSLContext | None = None, error_body: ErrorBody | None = None) -> None:
        self.app = app
        self.limits = limits
        self.tls = tls
        self.error_body = error_body or _plain_error
        self.listener = _listen(host, port)
        address = self.listener.getsockname()
        self.host, self.port = str(address[0]), int(address[1])
        self.selector = selectors.DefaultSelector()
        self.tasks: queue.SimpleQueue[_Connection | None] = queue.SimpleQueue()
        self._connections: set[_Connection] = set()
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False
        self._accepting = False
        self._retry_accept = 0.0
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._workers: list[threading.Thread] = []
        self._serving = False

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

    # -- the loop --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        self._serving = True
        self._workers = [threading.Thread(target=self._work, name=f"bulkreg-worker-{n}",
                                          daemon=True) for n in range(self.limits.threads)]
        for worker in self._workers:
            worker.start()
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._accept_again()
        sweep_every = max(0.05, min(1.0, self.limits.request_timeout / 8))
        next_sweep = time.monotonic() + sweep_every
        try:
            while not self._stopping.is_set():
                timeout = max(0.0, next_sweep - time.monotonic())
                for key, mask in self.selector.select(timeout):
                    if key.data is None:
                        self._drain_wake()
                    elif key.data is self:
                        self._accept()
                    else:
                        self._guarded(key.data, functools.partial(key.data.on_events, mask))
                while self._calls:
                    call = self._calls.popleft()
                    self._guarded(getattr(call, "__self__", None), call)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + sweep_every
        finally:
            for connection in list(self._connections):
                connection.close()
            for _ in self._workers:
                self.tasks.put(None)
            self.selector.close()
            self._stopped.set()

    @staticmethod
    def _guarded(connection: _Connection | None, call: Callable[[], None]) -> None:
        """One connection's trouble (a server bug) closes that connection, not the loop."""
        try:
            call()
        except Exception as exc:
            print(f"bulkreg serve: connection dropped: {exc!r}"[:400], file=sys.stderr,
                  flush=True)
            if isinstance(connection, _Connection):
                with contextlib.suppress(Exception):
                    connection.close()

    def call_soon(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the loop thread (from a worker)."""
        self._calls.append(call)
        if not self._woken:
            self._woken = True
            with contextlib.suppress(OSError):  # full: the loop is awake anyway; closed: stopped
                self._wake_w.send(b"\0")

    def _drain_wake(self) -> None:
        self._woken = False
        with contextlib.suppress(OSError):
            while self._wake_r.recv(1 << 12):
                pass

    def _sweep(self, now: float) -> None:
        for connection in list(self._connections):
            if connection.overdue(now):
                connection.close()  # cut: no answer to protect
        if not self._accepting and now >= self._retry_accept:
            self._accept_again()

    # -- connections -----------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            if len(self._connections) >= self.limits.connection_limit and not self._evict():
                self._stop_accepting(0.0)  # every connection is busy: again when one closes
                return
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    if not self._evict():
                        self._stop_accepting(time.monotonic() + _RETRY_ACCEPT)
                        return
                    continue
                if exc.errno == errno.ECONNABORTED:
                    continue
                raise
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, sock, peer, time.monotonic())
            self._connections.add(connection)
            connection.watch()

    def _evict(self) -> bool:
        """Close the connection that has waited longest for a whole request, to make room."""
        stalest, since = None, float("inf")
        for connection in self._connections:
            waited = connection.staleness()
            if waited is not None and waited < since:
                stalest, since = connection, waited
        if stalest is None:
            return False
        stalest.close()
        return True

    def _stop_accepting(self, retry_at: float) -> None:
        if self._accepting:
            self.selector.unregister(self.listener)
            self._accepting = False
        self._retry_accept = retry_at if retry_at else float("inf")

    def _accept_again(self) -> None:
        if not self._accepting and not self._stopping.is_set():
            self.selector.register(self.listener, selectors.EVENT_READ, self)
            self._accepting = True

    def forget(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        if not self._accepting and self._retry_accept == float("inf"):
            self._retry_accept = 0.0  # a place is free: accept again at the next sweep
            self._accept_again()

    # -- the workers -----------------------------------------------------------------------

    def _work(self) -> None:
        while (connection := self.tasks.get()) is not None:
            try:
                connection.run()
            except Exception as exc:  # a server bug: drop the connection, keep the worker
                print(f"bulkreg serve: connection dropped: {exc!r}"[:400], file=sys.stderr,
                      flush=True)
                self.call_soon(connection.close)

    def call_app(self, connection: _Connection, task: Complete
                 ) -> tuple[int, str, list[tuple[bytes, bytes]], list[bytes], Any]:
        """(status, reason, headers, body chunks, the app's iterable) of one request."""
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return chunks.append

        result = self.app(self._environ(connection, task), start_response)
        chunks.extend(chunk for chunk in result if chunk)
        if not started:
            raise RuntimeError("the application did not call start_response")
        code, _, reason = str(started[0]).partition(" ")
        headers = [(name.encode("latin-1"), value.encode("latin-1"))
                   for name, value in started[1]]
        return int(code), reason, headers, chunks, result

    def _environ(self, connection: _Connection, task: Complete) -> dict[str, Any]:
        """The WSGI environ (PEP 3333) of a complete request."""
        request = task.request
        target = request.target.partition(b"#")[0]
        if not target.startswith(b"/") and b"://" in target:  # absolute-form
            target = b"/" + target.partition(b"://")[2].partition(b"/")[2]
        path, _, query = target.partition(b"?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method.decode("latin-1"),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": self.host,
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("latin-1"),
            "REMOTE_ADDR": str(connection.peer[0]) if connection.peer else "",
            "CONTENT_LENGTH": str(task.size),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.tls is not None else "http",
            "wsgi.input": task.body,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for raw, value in request.headers:
            if b"_" in raw:
                continue  # X_Foo would pose as X-Foo (as werkzeug and nginx do)
            name = raw.decode("latin-1").upper().replace("-", "_")
            if name in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue  # the body is whole and de-chunked
            key = name if name == "CONTENT_TYPE" else "HTTP_" + name
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ

    # -- stopping --------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop serving (from any thread): the loop closes every connection and returns."""
        self._stopping.set()
        self.call_soon(lambda: None)
        if self._serving:
            self._stopped.wait(10)
        for worker in self._workers:
            worker.join(5)

    def server_close(self) -> None:
        for sock in (self.listener, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()


def _listen(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise OSError(errno.EADDRNOTAVAIL, "not an address to listen on") from None
    family, _, _, _, address = infos[0]
    try:
        sock = socket.create_server(address[:2], family=family, backlog=socket.SOMAXCONN)
    except OSError as exc:  # without the address create_server appends to the reason
        raise OSError(exc.errno, os.strerror(exc.errno) if exc.errno else str(exc)) from None
    sock.setblocking(False)
    return sock


def make_server(app: Any, host: str = "127.0.0.1", port: int = 0, *,
                limits: Limits | None = None, tls: ssl.SSLContext | None = None,
                error_body: ErrorBody | None = None) -> Server:
    """Bind (the port is known on return) without serving yet: call ``serve_forever``."""
    return Server(app, host=host, port=port, limits=limits or Limits(), tls=tls,
                  error_body=error_body)


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
