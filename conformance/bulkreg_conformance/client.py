"""The conformance client: every request a conformance run sends goes through here.

It owns the live-safety rails that do not depend on what is being tested:

- SAS tokens signed from a connection string and refreshed before they expire; the ``sr`` host
  comes from the connection string's HostName, kept apart from the URL requests go to (so a
  gateway, proxy or mock on 127.0.0.1 can stand in for ``<hub>.azure-devices.net``);
- the **prefix guard**: a request that would read, change or delete a device id outside the run's
  prefix raises :class:`PrefixViolation` before anything is sent;
- retries on 429/503 honouring ``Retry-After`` within a bounded time budget, timeouts, a request
  rate limit and a cap on the number of requests;
- a record of every exchange with the ``Authorization`` value redacted: keys, signatures and
  connection strings never reach an :class:`Exchange`, a log line or a report.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

import bulkreg_schema

from . import sas  # shared with the hub, so both sign and verify alike

__all__ = [
    "AUTH_PLACEHOLDER",
    "ID_PATTERN",
    "BudgetExceeded",
    "Client",
    "ClientError",
    "EndpointUnreachable",
    "Exchange",
    "PrefixViolation",
    "Unset",
]

# The id pattern the hub accepts (facts §2.1); ids outside it cannot name a stored device.
ID_PATTERN = bulkreg_schema.contract().id_pattern
AUTH_PLACEHOLDER = "$SAS"  # what reproducers show instead of a token
_REDACTED = "<redacted>"
_RETRY_STATUSES = frozenset({429, 503})
_ID_IN_TEXT = re.compile(rb'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')


class ClientError(Exception):
    """Misuse or environment failure (never a finding about the endpoint)."""


class PrefixViolation(ClientError):
    """A request would touch a device id outside the run's prefix; nothing was sent."""


class BudgetExceeded(ClientError):
    """The run reached --max-requests."""


class EndpointUnreachable(ClientError):
    """The endpoint did not answer (connection refused, DNS, TLS, timeouts past the budget)."""


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
                "body": self.response_body.decode("utf-8", "replace"),
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
    timeout: tuple[float, float] = (5.0, 30.0)  # connect, read


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
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        if not prefix or not ID_PATTERN.match(prefix) or len(prefix) > 64:
            raise ClientError(f"prefix {prefix!r} must be 1-64 characters allowed in a device id")
        parts = urlsplit(endpoint)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ClientError(f"endpoint {endpoint!r} is not an http(s) URL")
        try:
            self._cs = sas.parse_connection_string(connection_string)
        except Exception as exc:  # the parser's own message, without echoing the string
            raise ClientError(f"invalid connection string: {_scrub(str(exc), connection_string)}"
                              ) from None
        self.endpoint = endpoint.rstrip("/")
        self.prefix = prefix
        self.api_version = api_version
        self.host_name: str = self._cs.host_name
        self._limits = _Limits(rate_limit, max_requests, retry_budget,
                               timeout=(min(5.0, timeout), timeout))
        self._counters = _Counters()
        self._token_ttl = token_ttl
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._on_exchange = on_exchange
        self.touched: set[str] = set()  # prefix ids sent in requests that may have changed state
        self.exchanges = 0

    # -- secrets ---------------------------------------------------------------------------

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in output (for reporters' last-line scrubbing)."""
        out = [self._cs.key]
        if self._token:
            out.append(self._token[0])
        return tuple(s for s in out if s)

    def token(self) -> str:
        """A valid SAS token, re-signed when less than a tenth of its lifetime is left."""
        now = time.time()
        if self._token is None or self._token[1] - now < self._token_ttl / 10:
            token = sas.generate_token(self.host_name, self._cs.key_name, self._cs.key,
                                             ttl=self._token_ttl)
            self._token = (token, now + self._token_ttl)
        return self._token[0]

    def signed(self, *, ttl: int = 3600, now: float | None = None, key: str | None = None,
               key_name: str | None = None, resource: str | None = None) -> str:
        """A token with chosen parts (the auth suite's expired/wrong-key/wrong-policy tokens)."""
        result: str = sas.generate_token(
            resource or self.host_name, key_name or self._cs.key_name, key or self._cs.key,
            ttl=ttl, now=now)
        return result

    # -- guard -----------------------------------------------------------------------------

    def check_ids(self, ids: Iterable[str]) -> None:
        for device_id in ids:
            if not device_id.startswith(self.prefix):
                raise PrefixViolation(
                    f"refusing to send a request naming device {device_id!r}: outside the run's "
                    f"prefix {self.prefix!r}")

    # -- requests --------------------------------------------------------------------------

    @property
    def sent(self) -> int:
        return self._counters.sent

    @property
    def waited(self) -> float:
        return self._counters.waited

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
        try:
            return self.request("POST", "/devices", body=data, auth=auth,
                                api_version=api_version, headers=headers)
        except EndpointUnreachable as exc:
            if isinstance(exc.__context__, requests.ConnectionError) and \
                    "NewConnectionError" in str(exc):
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
                capped: bool = True) -> Exchange:
        """Send one request (with retries on 429/503) and record it; never raises for a status."""
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
        response, elapsed = self._send_with_retries(method, url, body, sent_headers, capped)
        recorded = {k: (_REDACTED if k.lower() == "authorization" else v)
                    for k, v in sent_headers.items()}
        exchange = Exchange(method, url, recorded, body, response.status_code,
                            dict(response.headers), response.content, elapsed, auth_label)
        self.exchanges += 1
        if self._on_exchange:
            self._on_exchange(exchange)
        return exchange

    def _send_with_retries(self, method: str, url: str, body: bytes, headers: dict[str, str],
                           capped: bool) -> tuple[requests.Response, float]:
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            response = self._send_once(method, url, body, headers, capped)
            elapsed = time.monotonic() - started
            if response.status_code not in _RETRY_STATUSES or attempt >= self._limits.max_attempts:
                return response, elapsed
            wait = _retry_after(response.headers.get("Retry-After"))
            wait = min(2.0 ** (attempt - 1) * 0.5, 8.0) if wait is None else wait
            if self._counters.waited + wait > self._limits.retry_budget:
                return response, elapsed  # out of patience: the caller sees the 429/503
            self._counters.waited += wait
            self._counters.retried += 1
            time.sleep(wait)

    def admit(self, capped: bool = True) -> None:
        """Count one request about to be sent, after waiting for the rate limit.

        Raises :class:`BudgetExceeded` past ``--max-requests``. Requests sent by other tools on
        the run's behalf (schemathesis) call this too, so the rails hold for them as well.
        """
        with self._lock:
            if capped and self._limits.max_requests is not None and \
                    self._counters.sent >= self._limits.max_requests:
                raise BudgetExceeded(f"--max-requests {self._limits.max_requests} reached")
            if self._limits.rate_limit:
                gap = 1.0 / self._limits.rate_limit
                delay = self._counters.last_sent + gap - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self._counters.last_sent = time.monotonic()
            self._counters.sent += 1

    def _send_once(self, method: str, url: str, body: bytes, headers: dict[str, str],
                   capped: bool) -> requests.Response:
        self.admit(capped)
        try:
            return self._session.request(method, url, data=body or None, headers=headers,
                                         timeout=self._limits.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise EndpointUnreachable(
                f"{method} {url.split('?', maxsplit=1)[0]}: {type(exc).__name__}: "
                f"{_scrub(str(exc), *self.secrets())}") from None
        except BaseException:
            # Ctrl-C mid-request can leave half a request on a kept-alive connection; the
            # cleanup that follows must not write its requests after it (the endpoint would
            # read them as the rest of that body and both sides would wait): new connections.
            self._session.close()
            self._session = requests.Session()
            raise

    def close(self) -> None:
        self._session.close()

    # -- cleanup ---------------------------------------------------------------------------

    def cleanup(self, ids: Iterable[str] | None = None) -> list[str]:
        """Delete every device this run may have created; returns the ids still present (leaks).

        Bulk deletes of up to 100 valid ids first (cheap on a throttled hub), then a per-id
        DELETE for whatever still reads back, then a last read-back. Cleanup requests are counted
        but never stopped by --max-requests: leaving devices behind is worse.
        """
        wanted = sorted(set(self.touched if ids is None else ids))
        self.check_ids(wanted)
        valid = [i for i in wanted if ID_PATTERN.match(i)]
        suspects = [i for i in wanted if not ID_PATTERN.match(i)]
        per_call = bulkreg_schema.contract().max_entries
        for start in range(0, len(valid), per_call):
            chunk = valid[start:start + per_call]
            body = json.dumps([{"id": i, "importMode": "delete"} for i in chunk]).encode()
            suspects += _not_reported_absent(
                chunk, self.request("POST", "/devices", body=body, capped=False))
        leaks = []
        for device_id in suspects:
            if self._exists(device_id):
                self.request("DELETE", "/devices/" + quote(device_id, safe=""),
                             headers={"If-Match": "*"}, capped=False)
                if self._exists(device_id):
                    leaks.append(device_id)
        return sorted(leaks)

    def _exists(self, device_id: str) -> bool:
        exchange = self.request("GET", "/devices/" + quote(device_id, safe=""), capped=False)
        return exchange.status == 200


def _not_reported_absent(chunk: list[str], exchange: Exchange) -> list[str]:
    """Ids of a cleanup chunk that may still exist: all but those answered DeviceNotFound.

    Ids the endpoint says it deleted are read back too, so a delete that does not delete shows up
    as a leak rather than passing silently.
    """
    body = exchange.json()
    if exchange.status not in {200, 400} or not isinstance(body, dict) \
            or not isinstance(body.get("errors"), list):
        return chunk
    absent = {e.get("deviceId") for e in body["errors"]
              if isinstance(e, dict) and e.get("errorCode") == "DeviceNotFound"}
    return [i for i in chunk if i not in absent]


def _scrub(text: str, *secrets: str) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text
