"""A minimal client for the independent endpoint (its own SAS signing, facts §4.2), used to show
that each switch really changes what the endpoint answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus, urlsplit

from .registry import API_VERSION
from .server import HOST_NAME, IndependentHub


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # names as sent
    body: Any

    def code(self) -> str | None:
        """The generic error body's code (format A or B), else None."""
        message = self.body.get("Message") if isinstance(self.body, dict) else None
        if not isinstance(message, str):
            return None
        if message.startswith("ErrorCode:"):
            return message[len("ErrorCode:"):].partition(";")[0]
        return str(json.loads(message)["errorCode"])


def sign(key_b64: str, policy: str = "iothubowner", ttl: int = 3600) -> str:
    resource = quote_plus(HOST_NAME)
    expiry = str(int(time.time()) + ttl)
    digest = hmac.new(base64.b64decode(key_b64), f"{resource}\n{expiry}".encode(),
                      hashlib.sha256).digest()
    sig = quote_plus(base64.b64encode(digest).decode())
    return f"SharedAccessSignature sr={resource}&sig={sig}&se={expiry}&skn={policy}"


def call(hub: IndependentHub, method: str, path: str, body: Any = None, *,
         api_version: str = API_VERSION, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> Answer:
    target = urlsplit(hub.url)
    connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"Authorization": sign(hub.key), "Content-Type": "application/json; charset=utf-8",
            **(headers or {})}
    try:
        connection.request(method, f"{path}?api-version={quote(api_version)}", data, sent)
        response = connection.getresponse()
        payload = response.read()
        return Answer(response.status, dict(response.getheaders()),
                      json.loads(payload) if payload else None)
    finally:
        connection.close()


def bulk(hub: IndependentHub, entries: Any, **kwargs: Any) -> Answer:
    return call(hub, "POST", "/devices", entries, **kwargs)
