"""HTTP/1.1 front of the independent registry: routes, SharedAccessSignature auth (facts §4.2,
verified here with HMAC-SHA256, not with the project's sas module), api-version, error bodies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from .registry import (
    API_VERSION,
    KNOWN_API_VERSIONS,
    Options,
    Registry,
    RequestError,
    error_body,
    new_key,
    parse_body,
)

HOST_NAME = "independent-hub.azure-devices.net"
# policy -> permissions (DOC-SEC); only the owner's key is handed out
POLICIES = {"iothubowner": {"RegistryRead", "RegistryReadWrite", "ServiceConnect"},
            "registryRead": {"RegistryRead"}}
MAX_DRAIN = 1 << 20


def _authorize(header: str | None, keys: dict[str, bytes], path: str, need: str) -> str | None:
    """None if ``header`` is a valid SAS token for ``path`` with permission ``need``, else why."""
    prefix = "SharedAccessSignature "
    if not header or not header.startswith(prefix):
        return "missing or not a SharedAccessSignature"
    fields: dict[str, str] = {}
    for part in header[len(prefix):].strip().split("&"):
        name, sep, value = part.partition("=")
        if not sep or name not in ("sr", "sig", "se", "skn") or name in fields:
            return "malformed token"
        fields[name] = value
    if set(fields) != {"sr", "sig", "se", "skn"}:
        return "incomplete token"
    expiry = fields["se"]
    if not (expiry.isascii() and expiry.isdigit() and len(expiry) < 16) or \
            int(expiry) <= time.time():
        return "expired"
    policy = unquote_plus(fields["skn"])
    if policy not in keys:
        return "unknown policy"
    resource = unquote_plus(fields["sr"]).lower().removeprefix("https://")
    host, _, scope = resource.partition("/")
    wanted = [s for s in scope.split("/") if s]
    if host != HOST_NAME or [s for s in path.lower().split("/") if s][:len(wanted)] != wanted:
        return "wrong resource"
    digest = hmac.new(keys[policy], f"{fields['sr']}\n{expiry}".encode(), hashlib.sha256)
    try:
        given = base64.b64decode(unquote(fields["sig"]), validate=True)
    except (binascii.Error, ValueError):
        return "bad signature"
    if not hmac.compare_digest(given, digest.digest()):
        return "bad signature"
    if need not in POLICIES[policy]:
        return "permission"
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -------------------------------------------------------------------------------

    def _body_length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            return 0

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        self._unread = 0
        return self.rfile.read(self._body_length())

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if self._unread > MAX_DRAIN or not self.server.opts.keep_alive:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)
        if 0 < self._unread <= MAX_DRAIN:  # refused before reading: drain, keep the connection
            self.rfile.read(self._unread)
            self._unread = 0

    def _error(self, exc: RequestError) -> None:
        opts = self.server.opts
        headers: dict[str, str] = {} if opts.error_header == "none" else \
            {opts.error_header: exc.code}
        self._send(exc.status, error_body(exc.code, exc.message, opts), headers)

    # -- dispatch -------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        self._unread = 0 if self.headers.get("Transfer-Encoding") else self._body_length()
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        try:
            route, need = self._route(method, parts)
            versions = parse_qs(url.query).get("api-version")
            if self.server.opts.api_version_first:
                self._api_version(versions)
            why = _authorize(self.headers.get("Authorization"), self.server.keys, url.path, need)
            if why is not None:
                raise RequestError(401, "IotHubUnauthorizedAccess", "Unauthorized")
            self._throttle()
            api = self._api_version(versions)
            route(api, parts)
        except RequestError as exc:
            self._error(exc)
        except Exception as exc:  # a bug here must show as a 500, not as a dropped connection
            self._error(RequestError(500, "ServerError", f"{type(exc).__name__}: {exc}"))

    def _throttle(self) -> None:
        every = self.server.opts.throttle_every
        if every:
            with self.server.lock:
                self.server.requests += 1
                if self.server.requests % every == 0:  # no Retry-After (facts §3.4: unknown)
                    raise RequestError(429, "ThrottlingException", "The request has been "
                                       "throttled. Operation type: CRUD")

    def _route(self, method: str, parts: list[str]) -> tuple[Any, str]:
        table = {("POST", "devices", 1): (self._bulk, "RegistryReadWrite"),
                 ("GET", "devices", 2): (self._get_device, "RegistryRead"),
                 ("DELETE", "devices", 2): (self._delete_device, "RegistryReadWrite"),
                 ("GET", "twins", 2): (self._get_twin, "ServiceConnect"),
                 ("GET", "devices", 4): (self._get_device, "RegistryRead"),
                 ("GET", "twins", 4): (self._get_twin, "ServiceConnect")}
        if parts and len(parts) == 4 and parts[2] != "modules":
            parts = []
        found = table.get((method, parts[0] if parts else "", len(parts)))
        if found is None:
            if any(k[1:] == (parts[0] if parts else "", len(parts)) for k in table):
                raise RequestError(405, "GenericMethodNotAllowed", "Method not allowed")
            raise RequestError(404, "GenericNotFound", "Not found")
        return found

    def _api_version(self, given: list[str] | None) -> str:
        if not given:
            raise RequestError(400, "InvalidProtocolVersion", "api-version is required")
        version = given[0]
        if version == API_VERSION or (self.server.opts.older_api == "accept"
                                      and version in KNOWN_API_VERSIONS):
            return version
        raise RequestError(400, "InvalidProtocolVersion", "BadRequest")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # -- routes ---------------------------------------------------------------------------------

    def _bulk(self, api: str, _parts: list[str]) -> None:
        registry = self.server.registry
        body = parse_body(self._read_body(), registry.opts)
        with self.server.lock:
            status, result = registry.bulk(body, api)
        headers: dict[str, str] = {}
        if not result["isSuccessful"] and registry.opts.error_header != "none":
            headers[registry.opts.error_header] = "BulkRegistryOperationFailure"
        self._send(status, result, headers)

    def _find(self, parts: list[str]) -> Any:
        key = (parts[1], parts[3] if len(parts) == 4 else None)
        item = self.server.registry.items.get(key)
        if item is None:
            code = "ModuleNotFound" if key[1] else "DeviceNotFound"
            raise RequestError(404, code, f"Device {parts[1]} is not registered")
        return item

    def _get_device(self, api: str, parts: list[str]) -> None:
        with self.server.lock:
            doc = self.server.registry.device_doc(self._find(parts), api)
        self._send(200, doc, {"ETag": f'"{doc["etag"]}"'})

    def _get_twin(self, api: str, parts: list[str]) -> None:
        with self.server.lock:
            doc = self.server.registry.twin_doc(self._find(parts), api)
        self._send(200, doc, {"ETag": f'"{doc["etag"]}"'})

    def _delete_device(self, _api: str, parts: list[str]) -> None:
        if_match = (self.headers.get("If-Match") or "*").strip()
        with self.server.lock:
            item = self._find(parts)
            quoted = len(if_match) >= 2 and if_match[0] == if_match[-1] == '"'
            # an unquoted value is ignored, as the service did for Node (facts §5, node#606)
            if quoted and if_match != '"*"' and if_match[1:-1] != item.etag:
                raise RequestError(412, "PreconditionFailed", "Device ETag does not match")
            if self.server.registry.opts.defect != "delete-noop":
                self.server.registry.items.pop((item.device_id, None), None)
                for key in [k for k in self.server.registry.items if k[0] == item.device_id]:
                    del self.server.registry.items[key]
        self._send(204, None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    opts: Options
    registry: Registry
    keys: dict[str, bytes]
    lock: threading.Lock
    requests: int = 0


class IndependentHub:
    """The independent endpoint on 127.0.0.1 (port 0), started with :meth:`start`."""

    def __init__(self, opts: Options | None = None) -> None:
        self.opts = opts or Options()
        self.key = new_key()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.opts = self.opts
        self._server.registry = Registry(self.opts)
        self._server.keys = {"iothubowner": base64.b64decode(self.key),
                             "registryRead": base64.b64decode(new_key())}
        self._server.lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def connection_string(self) -> str:
        return f"HostName={HOST_NAME};SharedAccessKeyName=iothubowner;SharedAccessKey={self.key}"

    def start(self) -> IndependentHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def __enter__(self) -> IndependentHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
