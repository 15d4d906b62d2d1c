"""Small hostile HTTP endpoints on 127.0.0.1 for the conformance run's safety rails, and a way to
run ``bulkreg conform`` against them in a child process (its peak RSS reported)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

from bulkreg_conformance import sas

# A handler gets the request and answers it itself (it may dawdle, drip or flood).
Behaviour = Callable[["Handler", bytes], None]


@dataclass
class Seen:
    """What an endpoint saw: every request line, body and Authorization value."""

    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self) -> list[bytes]:
        """The bulk calls seen (not the preflight's write, nor queries)."""
        with self.lock:
            return [body for method, path, body in self.requests if method == "POST"
                    and b"preflight" not in body and "query" not in path]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in separate writes: with Nagle on, each answer waited for the
    # client's delayed ACK (40 ms a request)
    disable_nagle_algorithm = True
    behaviour: Behaviour
    seen: Seen

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.seen.lock:
            self.seen.requests.append((self.command, self.path, body))
            if self.headers.get("Authorization"):
                self.seen.tokens.append(self.headers["Authorization"])
        try:
            self.behaviour(self, body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None,
               length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


@dataclass
class Endpoint:
    url: str
    seen: Seen
    server: ThreadingHTTPServer


@contextlib.contextmanager
def serve(behaviour: Behaviour, *, wrap: Callable[[Any], Any] | None = None
          ) -> Iterator[Endpoint]:
    """Serve ``behaviour`` on 127.0.0.1 while the ``with`` block runs."""
    seen = Seen()
    handler = type("Hostile", (Handler,), {"behaviour": staticmethod(behaviour), "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    scheme = "http"
    if wrap is not None:
        server.socket = wrap(server.socket)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Endpoint(f"{scheme}://127.0.0.1:{server.server_port}", seen, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- behaviours ------------------------------------------------------------------------------


def not_found(handler: Handler, body: bytes) -> None:
    handler.answer(404, b'{"Message":"ErrorCode:DeviceNotFound;not found"}')


def drip(handler: Handler, body: bytes) -> None:
    """Headers at once, then one byte a second of a body that never completes."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.flush()
    for _ in range(600):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(1)


def drip_posts(handler: Handler, body: bytes) -> None:
    """Reads (and queries) answer at once and the preflight's write passes; every other POST
    drips."""
    if "query" in handler.path:
        not_found(handler, body)
        return
    if handler.command == "POST" and b"preflight" in body:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        answer = b'{"isSuccessful": true, "errors": [], "warnings": []}'
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)
        return
    (drip if handler.command == "POST" else not_found)(handler, body)


HUGE = 10 * 1024 * 1024


def huge(handler: Handler, body: bytes) -> None:
    """A 10 MiB answer to everything: JSON-looking, full of bytes that JSON must escape."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(HUGE))
    handler.end_headers()
    chunk = b'{"isSuccessful":true,"errors":[],"pad":"' + bytes(range(256)) * 255
    sent = 0
    while sent < HUGE:
        part = chunk[: HUGE - sent]
        handler.wfile.write(part)
        sent += len(part)


def encodings(token: str) -> dict[str, str]:
    """The Authorization value in each encoding an echoing endpoint may use."""
    raw = token.encode()
    sig_quoted = dict(parse_qsl(token.split(" ", 1)[1], keep_blank_values=True))["sig"]
    sig = sig_quoted  # parse_qsl decodes it once: the raw base64 signature
    quoted_sig = quote_plus(sig)
    return {
        "raw": token,
        "url": quote(token, safe=""),
        "url2": quote(quote(token, safe=""), safe=""),
        "url-lower-hex": re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(),
                                quote(token, safe="")),
        "form": quote_plus(token),
        "b64": base64.b64encode(raw).decode(),
        "b64-nopad": base64.b64encode(raw).decode().rstrip("="),
        "b64url": base64.urlsafe_b64encode(raw).decode(),
        "b64url-nopad": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "b64-inside": base64.b64encode(b"Authorization: " + raw).decode(),
        "sig": sig,
        "sig-url": quoted_sig,
        "sig-url2": quote(quoted_sig, safe=""),
        "sig-json": sig.replace("/", "\\/"),
        "sig-urlsafe": sig.replace("+", "-").replace("/", "_").rstrip("="),
    }


def echo(handler: Handler, body: bytes) -> None:
    """Echo the Authorization value in every encoding, in headers and in the body."""
    token = handler.headers.get("Authorization") or ""
    forms = encodings(token) if "sig=" in token else {}
    headers = {f"X-Echo-{name}": value for name, value in forms.items()}
    payload = {"isSuccessful": False, "errors": [], "echo": forms,
               "Message": f"ErrorCode:ArgumentInvalid;{forms.get('url2', '')}"}
    text = json.dumps(payload).encode() + b" " + "\n".join(forms.values()).encode()
    handler.answer(404 if handler.command == "GET" else 400, text, headers)


def signed_with(token: str, key: str) -> bool:
    """Whether ``token`` carries a signature made with ``key`` (then it is a secret)."""
    try:
        fields = dict(parse_qsl(token.split(" ", 1)[1], keep_blank_values=True))
        message = f"{quote_plus(fields['sr'])}\n{fields['se']}".encode()
        want = hmac.new(base64.b64decode(key), message, hashlib.sha256).digest()
        return hmac.compare_digest(base64.b64decode(fields["sig"]), want)
    except (KeyError, IndexError, ValueError):
        return False


# -- running conform in a child ----------------------------------------------------------------

_PEAK = "BULKREG_TEST_PEAK_RSS_KIB="
# The child's own peak: VmHWM, the high-water mark of this process's memory since its exec.
# (ru_maxrss is not: Linux carries the parent's peak across fork and exec, so a child of a
# 300 MiB pytest reported 300 MiB whatever it used.)
PEAK_KIB = (
    "def peak_kib():\n"
    "    import resource\n"
    "    try:\n"
    "        with open('/proc/self/status', encoding='ascii') as status:\n"
    "            for line in status:\n"
    "                if line.startswith('VmHWM:'):\n"
    "                    return int(line.split()[1])\n"
    "    except OSError:\n"
    "        pass\n"
    "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
)
_CHILD = PEAK_KIB + (
    "import atexit, runpy, sys\n"
    f"atexit.register(lambda: sys.stderr.write('{_PEAK}%d\\n' % peak_kib()))\n"
    "sys.argv = ['bulkreg conform', *sys.argv[1:]]\n"
    "runpy.run_module('bulkreg_conformance.cli', run_name='__main__')\n"
)


@dataclass
class Conform:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_kib: int


def new_connection_string(host: str = "hostile.azure-devices.net") -> tuple[str, str]:
    key = base64.b64encode(os.urandom(32)).decode()
    return sas.make_connection_string(host, "iothubowner", key), key


def conform_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", _CHILD, *args]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items()
           if k not in {"BULKREG_CONNECTION_STRING", "BULKREG_ENDPOINT", "REQUESTS_CA_BUNDLE",
                        "BULKREG_URL", "BULKREG_CA_CERT", "BULKREG_READ_CONNECTION_STRING"}}
    out.update(extra)
    return out


def conform(*args: str, timeout: float = 120, **extra_env: str) -> Conform:
    started = time.monotonic()
    proc = subprocess.run(conform_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          check=False, env=env(**extra_env))
    return finished(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def finished(returncode: int, stdout: str, stderr: str, seconds: float) -> Conform:
    lines = stderr.splitlines()
    peak = [int(line[len(_PEAK):]) for line in lines if line.startswith(_PEAK)]
    stderr = "\n".join(line for line in lines if not line.startswith(_PEAK))
    return Conform(returncode, stdout, stderr, seconds, peak[0] if peak else 0)


def outputs(run: Conform, directory: Path) -> dict[str, str]:
    """stdout, stderr and every file the run wrote under ``directory``."""
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            texts[str(path.relative_to(directory))] = path.read_text(encoding="utf-8",
                                                                     errors="replace")
    return texts
