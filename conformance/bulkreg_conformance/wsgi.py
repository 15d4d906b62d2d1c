"""A requests transport that answers by calling a WSGI application in this process.

``Settings(app=...)`` runs the conformance kit against a WSGI application with no socket in
between (``Client(transport=WsgiTransport(app))``): every rail of the run still applies (the
request count, the rate limit, the deadlines, the capped body read, the retries of a 429), only
the network is gone. It is for judging an implementation's answers quickly, a Python mock of
the registry or the reference hub behind a middleware; what HTTP itself does (framing,
keep-alive, TLS, a peer that drips) needs a real endpoint.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict, HTTPResponse
from werkzeug.test import EnvironBuilder, run_wsgi_app

__all__ = ["WsgiTransport"]


class WsgiTransport(BaseAdapter):
    """Send each request to ``app`` (a WSGI callable) and return its answer as a response."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None, proxies: Any = None
             ) -> requests.Response:
        url = urlsplit(request.url or "")
        builder = EnvironBuilder(
            path=url.path or "/", base_url=f"{url.scheme}://{url.netloc}",
            query_string=url.query, method=request.method or "GET",
            headers=[(k, v if isinstance(v, str) else v.decode("latin-1"))
                     for k, v in request.headers.items()],
            data=_bytes(request.body))
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        chunks, status, headers = run_wsgi_app(self.app, environ, buffered=True)
        try:
            content = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        code, _, reason = status.partition(" ")
        fields = HTTPHeaderDict()
        for name, value in headers.items():
            fields.add(name, value)
        response = requests.Response()
        response.status_code = int(code)
        response.reason = reason
        # as requests' own adapter builds them (schemathesis reads raw.headers, raw.version)
        response.raw = HTTPResponse(body=io.BytesIO(content), headers=fields, status=int(code),
                                    reason=reason, version=11, version_string="HTTP/1.1",
                                    preload_content=False, decode_content=False)
        response.headers = CaseInsensitiveDict(fields)
        response.url = request.url or ""
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    def close(self) -> None:
        pass


def _bytes(body: Any) -> bytes:
    """A prepared request's body as bytes (the kit sends bytes; requests may hold str)."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return b"".join(part.encode("utf-8") if isinstance(part, str) else part for part in body)
