"""The conformance client: every request a conformance run sends goes through here.

It owns the live-safety rails that do not depend on what is being tested:

- SAS tokens signed from a connection string and refreshed before they expire; the ``sr`` host
  comes from the connection string's HostName, kept apart from the URL requests go to (so a
  gateway, proxy or mock on 127.0.0.1 can stand in for ``<hub>.azure-devices.net``);
- the **prefix guard**: a request that would read, change or delete a device id outside the run's
  prefix raises :class:`PrefixViolation` before anything is sent;
- the **transport** (:class:`RailsAdapter`, also mounted on schemathesis' sessions): every request
  is counted against ``--max-requests`` (cleanup included; the suites leave room for the cleanup
  of what they touched), waits for the rate limit, and has one total deadline for connect,
  headers and body (a watchdog shuts the socket down at the deadline, so an endpoint that drips
  one byte a second is cut); no request outlives the run's deadline (:attr:`Client.deadline`);
  response bodies are read up to :data:`READ_CAP` and the rest is never read;
- retries on 429/503 honouring ``Retry-After`` within a bounded time budget;
- a record of every exchange with the ``Authorization`` value dropped and every form of the run's
  key, tokens and signatures scrubbed from what the endpoint answered (:mod:`.redact`): they
  never reach an :class:`Exchange`, a log line or a report.
"""

from __future__ import annotations

import _socket
import contextlib
import dataclasses
import heapq
import itertools
import json
import os
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ReadTimeoutError

import bulkreg_schema

from . import sas  # shared with the hub, so both sign and verify alike
from .redact import REDACTED, Redactor, secrets_of_token

__all__ = [
    "AUTH_PLACEHOLDER",
    "ID_PATTERN",
    "KEEP_BYTES",
    "READ_CAP",
    "BudgetExceeded",
    "CleanupStopped",
    "Client",
    "ClientError",
    "EndpointUnreachable",
    "Exchange",
    "OutOfTime",
    "PrefixViolation",
    "RailsAdapter",
    "RequestCut",
    "Unset",
]

# The id pattern the hub accepts (facts §2.1); ids outside it cannot name a stored device.
ID_PATTERN = bulkreg_schema.contract().id_pattern
AUTH_PLACEHOLDER = "$SAS"  # what reproducers show instead of a token
KEEP_BYTES = 64 * 1024  # of a response body kept in failures and reports
READ_CAP = 1024 * 1024  # of a response body read at all; the rest stays on the wire
CONNECT_SECONDS = 5.0
_REDACTED = REDACTED
_RETRY_STATUSES = frozenset({429, 503})
_ID_IN_TEXT = re.compile(rb'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')
_CHUNK = 64 * 1024


class ClientError(Exception):
    """Misuse or environment failure (never a finding about the endpoint)."""


class PrefixViolation(ClientError):
    """A request would touch a device id outside the run's prefix; nothing was sent."""


class BudgetExceeded(ClientError):
    """The run reached --max-requests."""


class OutOfTime(BudgetExceeded):
    """The run's (or its cleanup's) time ran out: the request was not sent, or was cut."""


class RequestCut(OutOfTime):
    """A request in flight was cut when the run's time ran out: the endpoint left it unanswered
    past the budget (its grace included), which the run reports."""


class EndpointUnreachable(ClientError):
    """The endpoint did not answer (connection refused, DNS, TLS, no answer within the deadline).

    ``kind`` is ``tls``, ``connect``, ``timeout`` or ``other``; ``reason`` a short cause.
    """

    def __init__(self, message: str, kind: str = "other", reason: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason


class CleanupStopped(ClientError):
    """Cleanup could not finish; ``remaining`` are the ids not confirmed gone."""

    def __init__(self, message: str, remaining: list[str]) -> None:
        super().__init__(message)
        self.remaining = remaining


class _UnsetType:
    def __repr__(self) -> str:
        return "Unset"


Unset: Any = _UnsetType()  # "use the client's own SAS token" (None means: send no header)


@dataclass(frozen=True)
class Exchange:
    """One request/response pair, safe to print: the Authorization value is never kept."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    elapsed: float
    auth: str = "sas"  # what the Authorization header was: sas | none | a test's label
    truncated: bool = False  # response_body is only the start of what the endpoint sent
    size: int | None = None  # the response body's full size in bytes, when known

    def kept(self, limit: int = KEEP_BYTES) -> Exchange:
        """This exchange with at most ``limit`` bytes of response body (what failures keep)."""
        if len(self.response_body) <= limit:
            return self
        return dataclasses.replace(self, response_body=self.response_body[:limit],
                                   truncated=True, size=self.size or len(self.response_body))

    def json(self) -> Any:
        """The response body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.response_body)
        except (ValueError, RecursionError):
            return None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.response_headers.items() if k.lower() == lowered), None)

    def curl(self) -> str:
        """A curl reproducer; the token is the shell variable $SAS, never the real one."""
        parts = ["curl", "-sS", "-i", "-X", self.method, shlex.quote(self.url)]
        for name, value in self.request_headers.items():
            if name.lower() == "authorization":
                parts += ["-H", f'"Authorization: {AUTH_PLACEHOLDER}"']
            elif name.lower() not in {"content-length", "user-agent", "accept-encoding",
                                       "connection"}:
                parts += ["-H", shlex.quote(f"{name}: {value}")]
        if self.request_body:
            parts += ["--data-binary", shlex.quote(self.request_body.decode("utf-8", "replace"))]
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": {
                "method": self.method,
                "url": self.url,
                "headers": self.request_headers,
                "body": self.request_body.decode("utf-8", "replace"),
                "auth": self.auth,
            },
            "response": {
                "status": self.status,
                "headers": self.response_headers,
                "body": self.response_body[:KEEP_BYTES].decode("utf-8", "replace"),
                "truncated": self.truncated or len(self.response_body) > KEEP_BYTES,
                "size": self.size if self.size is not None else len(self.response_body),
            },
            "elapsed": round(self.elapsed, 4),
            "curl": self.curl(),
        }


@dataclass
class _Limits:
    rate_limit: float | None = None  # requests per second
    max_requests: int | None = None
    retry_budget: float = 30.0  # seconds a run may spend waiting on 429/503 in total
    max_attempts: int = 4
    timeout: float = 30.0  # seconds per request in total: connect, headers and body


@dataclass
class _Counters:
    sent: int = 0
    retried: int = 0
    waited: float = 0.0
    last_sent: float = field(default=0.0)


def bulk_ids(body: bytes | str) -> list[str]:
    """The device ids a bulk body names (string ``id`` members of its entries).

    A body that is not JSON is scanned textually so that a lenient endpoint that would still
    read ids out of it is covered by the prefix guard too.
    """
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return [_unescape(m.group(1)) for m in _ID_IN_TEXT.finditer(raw)]
    entries = value if isinstance(value, list) else [value]
    return [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]


def _unescape(raw: bytes) -> str:
    try:
        result: str = json.loads(b'"' + raw + b'"')
    except ValueError:
        return raw.decode("utf-8", "replace")
    return result


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# -- the transport: deadlines, counting, capped reads ----------------------------------------


class _Watch:
    """One request in flight: at its deadline (or on :meth:`fire`) its sockets are shut down, so
    a blocked read returns at once whatever the endpoint does."""

    def __init__(self, seconds: float, by_run: bool) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.by_run = by_run  # the deadline is the run's, not the request's own timeout
        self.conns: list[Any] = []
        self.fired = threading.Event()
        self.done = False  # the request ended: nothing left to cut
        self._lock = threading.RLock()  # fire() may run in a signal handler inside add()

    def start(self) -> None:
        _WATCHDOG.watch(self)

    def cancel(self) -> None:
        self.done = True

    def add(self, conn: Any) -> None:
        with self._lock:
            self.conns.append(conn)
        if self.fired.is_set():
            self.fire()

    def fire(self) -> None:
        self.fired.set()
        with self._lock:
            conns = list(self.conns)
        for conn in conns:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                # the C-level shutdown: SSLSocket.shutdown would also drop its TLS state under
                # the reading thread's feet
                with contextlib.suppress(OSError):
                    _socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that fires every watch whose deadline passed (a thread per request
    would cost more than many requests do)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._serial = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, watch: _Watch) -> None:
        with self._cond:
            heapq.heappush(self._heap, (watch.deadline, next(self._serial), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="bulkreg-watchdog",
                                                daemon=True)
                self._thread.start()
            if self._heap[0][2] is watch:  # a new earliest deadline: wake up for it
                self._cond.notify()

    def _due(self) -> list[_Watch]:
        now = time.monotonic()
        due = []
        while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
            watch = heapq.heappop(self._heap)[2]
            if not watch.done:
                due.append(watch)
        return due

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._due()
                if not due:
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                    continue
            for watch in due:
                watch.fire()


_WATCHDOG = _Watchdog()
_current = threading.local()  # the _Watch of the request this thread is sending


def _watched(conn: Any) -> Any:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(conn)
    return conn


class _WatchedPool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _watched(super()._get_conn(timeout))


class _WatchedHTTPSPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _watched(super()._get_conn(timeout))


class RequestDeadline(requests.exceptions.ReadTimeout):
    """No complete answer before the deadline (a Timeout, so schemathesis treats it as one)."""

    def __init__(self, watch: _Watch, **kwargs: Any) -> None:
        # shaped like requests' own ReadTimeout: schemathesis reads the duration out of it
        cause = Exception(f"no complete answer within the deadline (read timeout="
                          f"{watch.seconds:.1f})")
        super().__init__(cause, **kwargs)
        self.seconds = watch.seconds
        self.by_run = watch.by_run


class RailsAdapter(HTTPAdapter):
    """A requests transport that applies the client's rails to every request it sends: count
    and rate limit (:meth:`Client.admit`), one total deadline, a capped body read, and the
    retries of a 429 or 503 (:meth:`Client.retry_wait`), so schemathesis' checks see the
    answer a throttled endpoint gives once it lets the request through.

    The body is read here (whatever ``stream`` asks) up to :data:`READ_CAP`; a longer answer is
    cut there, its connection dropped, and the response marked ``bulkreg_truncated``.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self.closed = False  # set: refuse every new request (a suite's time is up)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool,
                                                   "https": _WatchedHTTPSPool}

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: bool | str = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        attempt = 0
        while True:
            attempt += 1
            response = self._send_once(request, verify=verify, cert=cert, proxies=proxies)
            wait = self._client.retry_wait(response.status_code,
                                           response.headers.get("Retry-After"), attempt)
            if wait is None:
                return response
            response.close()
            time.sleep(wait)

    def _send_once(self, request: requests.PreparedRequest, *, verify: bool | str,
                   cert: Any, proxies: Any) -> requests.Response:
        client = self._client
        if self.closed:
            raise OutOfTime("this suite's time is up: not sent")
        client.admit()
        seconds, by_run = client.time_left()
        watch = _Watch(seconds, by_run)
        with client.in_flight(watch):
            _current.watch = watch
            watch.start()
            try:
                send = super().send if client.transport is None else client.transport.send
                response = send(request, stream=True,
                                timeout=(min(CONNECT_SECONDS, seconds), seconds),
                                verify=verify, cert=cert, proxies=proxies)
                _read_capped(response, watch)
            except requests.RequestException as exc:
                # the socket's own read timeout is the same deadline: it may beat the watchdog
                if watch.fired.is_set() or _read_timed_out(exc):
                    raise RequestDeadline(watch, request=request) from exc
                raise
            finally:
                watch.cancel()
                _current.watch = None
        return response


def _read_timed_out(exc: requests.RequestException) -> bool:
    """A read timeout, as requests raises it before the body (ReadTimeout) or while reading it
    (a ConnectionError around urllib3's ReadTimeoutError)."""
    return isinstance(exc, requests.exceptions.ReadTimeout) or any(
        isinstance(arg, ReadTimeoutError) for arg in exc.args)


def _read_capped(response: requests.Response, watch: _Watch) -> None:
    """Read the body into ``response`` up to READ_CAP; past it, stop and drop the connection."""
    chunks: list[bytes] = []
    size = 0
    truncated = False
    for chunk in response.iter_content(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > READ_CAP:
            truncated = True
            break
    if watch.fired.is_set():  # the socket was shut down mid-body: what came is not the answer
        response.close()
        raise requests.exceptions.ConnectionError("cut at the deadline",
                                                  request=response.request)
    response._content = b"".join(chunks)[:READ_CAP]
    response._content_consumed = True
    response.bulkreg_truncated = truncated  # type: ignore[attr-defined]
    if truncated:
        response.close()  # the rest stays unread: the connection goes with it


_CAUSES = (  # what a connection failure's text says -> (kind, short reason)
    (r"Connection refused", "connect", "connection refused"),
    (r"Name or service not known|nodename nor servname|Temporary failure in name resolution|"
     r"getaddrinfo failed|No address associated", "connect", "host name not found"),
    (r"Network is unreachable|No route to host", "connect", "network unreachable"),
    (r"Connection reset|RemoteDisconnected|Connection aborted", "other",
     "connection closed by the endpoint"),
)


def _kind(exc: requests.RequestException) -> tuple[str, str]:
    """(kind, short reason) of a transport failure, for one-line messages."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        match = re.search(r"certificate verify failed: ([^(\])'\"]+)", text)
        if match or "CERTIFICATE_VERIFY_FAILED" in text:
            return "tls", ("certificate verify failed: " + match.group(1).strip() if match
                           else "certificate verify failed")
        return "other", "TLS handshake failed"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout", "timed out"
    for pattern, kind, reason in _CAUSES:
        if re.search(pattern, text):
            return kind, reason
    return "other", type(exc).__name__


class Client:
    """Talks to one endpoint on behalf of one run; see the module docstring for the rails."""

    def __init__(
        self,
        endpoint: str,
        connection_string: str,
        *,
        prefix: str,
        api_version: str = bulkreg_schema.API_VERSION,
        rate_limit: float | None = None,
        max_requests: int | None = None,
        retry_budget: float = 30.0,
        timeout: float = 30.0,
        token_ttl: int = 3600,
        ca_cert: str | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
        transport: BaseAdapter | None = None,
    ) -> None:
        if not prefix or not ID_PATTERN.match(prefix) or len(prefix) > 64:
            raise ClientError(f"prefix {prefix!r} must be 1-64 characters allowed in a device id")
        parts = urlsplit(endpoint)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ClientError(f"endpoint {endpoint!r} is not an http(s) URL")
        try:
            self._cs = sas.parse_connection_string(connection_string)
        except Exception as exc:  # the parser's own message, without echoing the string
            raise ClientError("invalid connection string: "
                              + Redactor([connection_string]).text(str(exc))) from None
        self.endpoint = endpoint.rstrip("/")
        # what carries the requests under the rails: None, the network (requests' HTTPAdapter);
        # a WSGI application in process (bulkreg_conformance.wsgi), for one
        self.transport = transport
        self.prefix = prefix
        self.api_version = api_version
        self.host_name: str = self._cs.host_name
        # --ca-cert wins over REQUESTS_CA_BUNDLE (then CURL_CA_BUNDLE), as requests orders them;
        # read once here, as the proxies are in new_session: requests would re-read the whole
        # environment for every request
        self.verify: bool | str = (ca_cert or os.environ.get("REQUESTS_CA_BUNDLE")
                                   or os.environ.get("CURL_CA_BUNDLE") or True)
        self._limits = _Limits(rate_limit, max_requests, retry_budget, timeout=timeout)
        self._counters = _Counters()
        self._token_ttl = token_ttl
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self.redactor = Redactor([self._cs.key, connection_string])
        self._session = self.new_session()
        self._on_exchange = on_exchange
        self._in_flight: set[_Watch] = set()
        self.touched: set[str] = set()  # prefix ids sent in requests that may have changed state
        self.exchanges = 0
        self.deadline: float | None = None  # time.monotonic() past which no request may run
        self.cleaning = False  # cleanup may use the requests the suites left for it
        self.stopped: BudgetExceeded | None = None  # why admit() last refused a request
        self.interrupted = False
        self._per_device = 0.0  # cleanup seconds earned per device confirmed gone
        self.query_works = False  # the endpoint's device query lists what exists (probe_query)

    # -- secrets ---------------------------------------------------------------------------

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in output, in any form (for the reporters)."""
        return self.redactor.secrets

    def token(self) -> str:
        """A valid SAS token, re-signed when less than a tenth of its lifetime is left."""
        now = time.time()
        if self._token is None or self._token[1] - now < self._token_ttl / 10:
            token = sas.generate_token(self.host_name, self._cs.key_name, self._cs.key,
                                       ttl=self._token_ttl)
            self.redactor.add(*secrets_of_token(token))
            self._token = (token, now + self._token_ttl)
        return self._token[0]

    def signed(self, *, ttl: int = 3600, now: float | None = None, key: str | None = None,
               key_name: str | None = None, resource: str | None = None) -> str:
        """A token with chosen parts (the auth suite's expired/wrong-key/wrong-policy tokens)."""
        result: str = sas.generate_token(
            resource or self.host_name, key_name or self._cs.key_name, key or self._cs.key,
            ttl=ttl, now=now)
        self.redactor.add(*secrets_of_token(result))
        return result

    # -- guard -----------------------------------------------------------------------------

    def check_ids(self, ids: Iterable[str]) -> None:
        for device_id in ids:
            if not device_id.startswith(self.prefix):
                raise PrefixViolation(
                    f"refusing to send a request naming device {device_id!r}: outside the run's "
                    f"prefix {self.prefix!r}")

    # -- budgets ---------------------------------------------------------------------------

    @property
    def sent(self) -> int:
        return self._counters.sent

    @property
    def waited(self) -> float:
        return self._counters.waited

    def cleanup_cost(self) -> int:
        """Requests the cleanup of every touched id needs: bulk deletes, then a query that
        lists what is left (when the endpoint's query was seen to list a device it had just
        created, see :meth:`probe_query`) or else a read-back each."""
        valid = sum(1 for i in self.touched if ID_PATTERN.match(i))
        odd = len(self.touched) - valid  # not deletable in bulk: read, deleted, read again
        deletes = -(-valid // bulkreg_schema.contract().max_entries)
        return deletes + (1 + valid // 1000 if self.query_works else valid) + 3 * odd

    def probe_query(self, device_id: str) -> None:
        """Learn whether the endpoint's device query lists ``device_id`` (which exists now):
        if it does, the cleanup confirms with one query what it would otherwise read back id by
        id (and keeps that much less of --max-requests in reserve)."""
        listed = self.listed(pages=1)
        self.query_works = listed is not None and device_id in listed

    def track(self, ids: Iterable[str]) -> None:
        """Remember ``ids`` for the cleanup before a request that names them is sent; raises
        :class:`BudgetExceeded` (and remembers nothing) when --max-requests could not afford
        that request and the cleanup of what it adds."""
        with self._lock:
            new = set(ids) - self.touched
            limit = self._limits.max_requests
            if limit is not None and new and not self.cleaning:
                self.touched |= new
                reserve = self.cleanup_cost()
                if self._counters.sent + 1 + reserve > limit:
                    self.touched -= new
                    self.stopped = BudgetExceeded(
                        f"--max-requests {limit} reached ({reserve} kept for cleanup)")
                    raise self.stopped
            self.touched |= new

    def admit(self) -> None:
        """Count one request about to be sent, after waiting for the rate limit.

        Raises :class:`BudgetExceeded` when it would leave too few of ``--max-requests`` for the
        cleanup of what the run touched (the cleanup itself may use them all), and
        :class:`OutOfTime` past :attr:`deadline`. The transport calls this for every request,
        schemathesis' included.
        """
        with self._lock:
            limit = self._limits.max_requests
            # (the reserve counts every touched id: only worth it under --max-requests)
            reserve = 0 if self.cleaning or limit is None else self.cleanup_cost()
            if limit is not None and self._counters.sent + 1 + reserve > limit:
                kept = f" ({reserve} kept for cleanup)" if reserve else ""
                self.stopped = BudgetExceeded(f"--max-requests {limit} reached{kept}")
                raise self.stopped
            if self._limits.rate_limit:
                gap = 1.0 / self._limits.rate_limit
                delay = self._counters.last_sent + gap - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if self.interrupted and not self.cleaning:
                raise OutOfTime("interrupted")
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.stopped = OutOfTime("the run's time is spent" if not self.cleaning else
                                         "the cleanup's time is spent")
                raise self.stopped
            self._counters.last_sent = time.monotonic()
            self._counters.sent += 1

    def time_left(self) -> tuple[float, bool]:
        """Seconds the next request may take in total, and whether the run's deadline (not the
        request's own timeout) sets them."""
        own = self._limits.timeout
        if self.deadline is None:
            return own, False
        left = self.deadline - time.monotonic()
        return (max(left, 0.01), True) if left < own else (own, False)

    @contextlib.contextmanager
    def in_flight(self, watch: _Watch) -> Any:
        with self._lock:
            self._in_flight.add(watch)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(watch)

    def interrupt(self) -> None:
        """Cut every request in flight now, and refuse new ones until the cleanup begins (a
        signal handler calls this; other threads, schemathesis' workers, may be sending)."""
        self.interrupted = True
        for watch in list(self._in_flight):
            watch.fire()

    def begin_cleanup(self, seconds: float, per_request: float | None = None,
                      per_device: float = 0.0) -> None:
        """From now on: cleanup requests, which may use the reserve, all within ``seconds``
        (each within ``per_request``); every device confirmed gone adds ``per_device`` seconds,
        so a long cleanup that makes progress goes on and one that does not ends."""
        self.cleaning = True
        self.deadline = time.monotonic() + seconds
        self._per_device = per_device
        with self._lock:  # the cleanup's own patience with 429/503, whatever the run spent
            self._counters.waited = 0.0
        if per_request is not None:
            self._limits.timeout = min(self._limits.timeout, per_request)

    def new_session(self) -> requests.Session:
        """A requests session whose every request goes through this client's rails."""
        session = requests.Session()
        session.trust_env = False  # the environment is read once: proxies here, CA in __init__
        session.proxies.update(requests.utils.get_environ_proxies(self.endpoint))
        adapter = RailsAdapter(self)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    # -- requests --------------------------------------------------------------------------

    def bulk(self, body: bytes | str | list[Any], *, auth: Any = Unset,
             api_version: str | None = None, headers: dict[str, str] | None = None,
             track: bool = True) -> Exchange:
        """POST /devices with ``body`` (bytes are sent as they are)."""
        data = body if isinstance(body, bytes) else (
            body.encode("utf-8", "surrogatepass") if isinstance(body, str)
            else json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        ids = bulk_ids(data)
        self.check_ids(ids)
        new = set(ids) - self.touched if track else set()
        # before sending: a Ctrl-C or a timeout while the request is in flight must not let a
        # device the endpoint did create escape cleanup
        self.touched |= new
        before = self.sent
        try:
            return self.request("POST", "/devices", body=data, auth=auth,
                                api_version=api_version, headers=headers)
        except BudgetExceeded:
            if self.sent == before:
                self.touched -= new  # never sent: nothing to clean up
            raise
        except EndpointUnreachable as exc:
            if exc.kind == "connect" and "refused" in exc.reason:
                self.touched -= new  # refused before a byte was sent: nothing to clean up
            raise

    def get_device(self, device_id: str, *, auth: Any = Unset) -> Exchange:
        return self.request("GET", "/devices/" + self._path_id(device_id), auth=auth)

    def get_twin(self, device_id: str, *, auth: Any = Unset) -> Exchange:
        return self.request("GET", "/twins/" + self._path_id(device_id), auth=auth)

    def delete_device(self, device_id: str, *, etag: str = "*") -> Exchange:
        if_match = etag if etag == "*" or etag.startswith('"') else f'"{etag}"'
        return self.request("DELETE", "/devices/" + self._path_id(device_id),
                            headers={"If-Match": if_match})

    def _path_id(self, device_id: str) -> str:
        self.check_ids([device_id])
        return quote(device_id, safe="")

    def request(self, method: str, path: str, *, body: bytes = b"", auth: Any = Unset,
                api_version: str | None = None, headers: dict[str, str] | None = None,
                keep_body: bool = True) -> Exchange:
        """Send one request (with retries on 429/503) and record it; never raises for a status.

        ``keep_body=False``: only the status matters (the cleanup's read-backs); the recorded
        exchange has an empty response body, and no time goes into scrubbing it.
        """
        version = self.api_version if api_version is None else api_version
        query = f"?api-version={quote(version, safe='')}" if version else ""
        url = f"{self.endpoint}{path}{query}"
        sent_headers = {"Accept": "application/json"}
        if body:
            sent_headers["Content-Type"] = "application/json; charset=utf-8"
        sent_headers.update(headers or {})
        auth_label = "none"
        if auth is Unset:
            sent_headers["Authorization"], auth_label = self.token(), "sas"
        elif auth is not None:
            label, value = auth if isinstance(auth, tuple) else ("custom", auth)
            sent_headers["Authorization"], auth_label = value, label
        response, elapsed = self._send_with_retries(method, url, body, sent_headers)
        exchange = self._record(method, url, sent_headers, body, response, elapsed, auth_label,
                                keep_body)
        self.exchanges += 1
        if self._on_exchange:
            self._on_exchange(exchange)
        return exchange

    def _record(self, method: str, url: str, sent_headers: dict[str, str], body: bytes,
                response: requests.Response, elapsed: float, auth_label: str,
                keep_body: bool) -> Exchange:
        """The exchange as it may be kept: no Authorization value, secrets scrubbed."""
        scrub = self.redactor.text
        recorded = {k: (_REDACTED if k.lower() == "authorization" else scrub(v))
                    for k, v in sent_headers.items()}
        answered = {scrub(k): scrub(v) for k, v in response.headers.items()}
        content = response.content if keep_body else b""
        truncated = bool(getattr(response, "bulkreg_truncated", False)) or not keep_body
        size = None if truncated else len(content)
        with contextlib.suppress(ValueError):
            size = int(response.headers.get("Content-Length", "")) if truncated else size
        return Exchange(method, url, recorded, self.redactor.bytes(body), response.status_code,
                        answered, self.redactor.bytes(content), elapsed, auth_label,
                        truncated, size)

    def retry_wait(self, status: int, retry_after: str | None, attempt: int) -> float | None:
        """Seconds to wait before trying a request again that was answered ``status`` on its
        ``attempt``-th try (its Retry-After honoured, else a growing back-off), or None: no
        retry (not a 429/503, or out of attempts, patience or time)."""
        if status not in _RETRY_STATUSES or attempt >= self._limits.max_attempts:
            return None
        wait = _retry_after(retry_after)
        wait = min(2.0 ** (attempt - 1) * 0.5, 8.0) if wait is None else wait
        with self._lock:
            if self._counters.waited + wait > self._limits.retry_budget or (
                    self.deadline is not None and time.monotonic() + wait >= self.deadline):
                return None  # out of patience: the caller sees the 429/503
            self._counters.waited += wait
            self._counters.retried += 1
        return wait

    def _send_with_retries(self, method: str, url: str, body: bytes,
                           headers: dict[str, str]) -> tuple[requests.Response, float]:
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            response = self._send_once(method, url, body, headers)
            elapsed = time.monotonic() - started
            wait = self.retry_wait(response.status_code, response.headers.get("Retry-After"),
                                   attempt)
            if wait is None:
                return response, elapsed
            time.sleep(wait)

    def _send_once(self, method: str, url: str, body: bytes,
                   headers: dict[str, str]) -> requests.Response:
        where = f"{method} {url.split('?', maxsplit=1)[0]}"
        try:
            return self._session.request(method, url, data=body or None, headers=headers,
                                         verify=self.verify, allow_redirects=False)
        except RequestDeadline as exc:
            if exc.by_run:
                whose = "the cleanup's" if self.cleaning else "the run's"
                raise RequestCut(f"{where}: cut when {whose} time ran out (no complete answer "
                                 f"within {exc.seconds:.1f} s)") from None
            raise EndpointUnreachable(f"{where}: no complete answer within {exc.seconds:.1f} s",
                                      "timeout", f"no complete answer within "
                                      f"{exc.seconds:.0f} s") from None
        except requests.RequestException as exc:
            kind, reason = _kind(exc)
            raise EndpointUnreachable(f"{where}: {type(exc).__name__}: "
                                      f"{self.redactor.text(str(exc))}", kind, reason) from None
        except BaseException:
            # Ctrl-C mid-request can leave half a request on a kept-alive connection; the
            # cleanup that follows must not write its requests after it (the endpoint would
            # read them as the rest of that body and both sides would wait): new connections.
            self._session.close()
            self._session = self.new_session()
            raise

    def close(self) -> None:
        self._session.close()

    # -- cleanup ---------------------------------------------------------------------------

    def cleanup(self, ids: Iterable[str] | None = None) -> list[str]:
        """Delete every device this run may have created; returns the ids still present (leaks).

        Bulk deletes of up to 100 valid ids first (cheap on a throttled hub); then one device
        query (when the endpoint's works) or a read per id confirms each gone, whatever the
        delete answered; a per-id DELETE for whatever still reads back, then a last read-back.
        Cleanup requests count against --max-requests and the cleanup's deadline like any
        other: when one is refused or gets no answer, :class:`CleanupStopped` lists every id
        not confirmed gone.
        """
        wanted = sorted(set(self.touched if ids is None else ids))
        self.check_ids(wanted)
        pending = set(wanted)  # not confirmed gone
        try:
            return self._cleanup(wanted, pending)
        except ClientError as exc:
            raise CleanupStopped(str(exc), sorted(pending)) from None
        except KeyboardInterrupt:  # a second Ctrl-C: stop, and say what may be left
            raise CleanupStopped("interrupted", sorted(pending)) from None

    def _cleanup(self, wanted: list[str], pending: set[str]) -> list[str]:
        valid = [i for i in wanted if ID_PATTERN.match(i)]
        suspects = [i for i in wanted if not ID_PATTERN.match(i)]
        per_call = bulkreg_schema.contract().max_entries
        for start in range(0, len(valid), per_call):
            chunk = valid[start:start + per_call]
            body = json.dumps([{"id": i, "importMode": "delete"} for i in chunk]).encode()
            self.request("POST", "/devices", body=body)
            # whatever the answer says (deleted, DeviceNotFound), only a query or a read that
            # no longer finds a device confirms it gone
            suspects += chunk
        # one query instead of a read per device: it lists, too, devices a delete answered
        # DeviceNotFound for and left in place (an id the endpoint looked up wrongly)
        listed = self.listed() if self.query_works else None
        if listed is not None:
            self._gone(pending, {i for i in suspects if i not in listed})
            suspects = [i for i in suspects if i in listed]
        leaks = []
        for device_id in suspects:
            if self._exists(device_id):
                self.request("DELETE", "/devices/" + quote(device_id, safe=""),
                             headers={"If-Match": "*"}, keep_body=False)
                if self._exists(device_id):
                    leaks.append(device_id)
                    continue
            self._gone(pending, {device_id})
        return sorted(leaks)

    def listed(self, prefix: str | None = None, pages: int = 20) -> set[str] | None:
        """The ids starting with ``prefix`` (the run's by default; never outside it) that a
        device query lists (``POST /devices/query``, paged), or None when the endpoint does not
        answer the query as an IoT hub does (a gateway that does not route it, a mock without
        it): then every id is read back instead. A listed id is still read back (a query index
        may lag behind a delete)."""
        prefix = prefix or self.prefix
        self.check_ids([prefix])
        if "'" in prefix or "\\" in prefix:
            return None
        query = json.dumps({"query": "SELECT * FROM devices WHERE STARTSWITH(deviceId, "
                                     f"'{prefix}')"}).encode()
        found: set[str] = set()
        token: str | None = None
        for _ in range(pages):
            headers = {"x-ms-max-item-count": "1000", **(
                {"x-ms-continuation": token} if token else {})}
            exchange = self.request("POST", "/devices/query", body=query, headers=headers)
            page = exchange.json()
            if exchange.status != 200 or not isinstance(page, list) or exchange.truncated:
                return None
            for twin in page:
                device_id = twin.get("deviceId") if isinstance(twin, dict) else None
                if not isinstance(device_id, str):
                    return None
                found.add(device_id)
            token = exchange.header("x-ms-continuation")
            if not token:
                return found
        return None

    def _gone(self, pending: set[str], ids: set[str]) -> None:
        pending -= ids
        if self.deadline is not None:
            self.deadline += self._per_device * len(ids)

    def _exists(self, device_id: str) -> bool:
        """Whether the device is still there: only a 404 confirms it gone (a 429, 503 or
        anything else the endpoint answers leaves it not confirmed, so listed)."""
        exchange = self.request("GET", "/devices/" + quote(device_id, safe=""), keep_body=False)
        return exchange.status != 404
