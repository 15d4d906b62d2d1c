"""Slow clients cost nothing: ``bulkreg serve`` (a real process, default bounds) answers a normal
request while a thousand idle, half-sent connections are held open, over http and https, and
when it runs out of file descriptors it closes the stalest connection to make room.

No timing is asserted (the figures are ``tests/benchmarks/bench_slow_clients.py``'s); the
clients' 60 s timeouts only keep a regression from hanging the suite."""

from __future__ import annotations

import resource
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from .conftest import API, token_for

HELD = 1000
GUARD = 60  # seconds: a hang guard, not a measurement


# `bulkreg serve` with an open-file limit (soft and hard) of argv[1]
LIMITED = """
import resource, runpy, sys
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
runpy.run_module("bulkreg_conformance.hub.cli", run_name="__main__")
"""


@contextmanager
def _serve(*args: str, nofile: int = 0) -> Iterator[dict[str, str]]:
    start = [sys.executable, "-c", LIMITED, str(nofile)] if nofile else \
        [sys.executable, "-m", "bulkreg_conformance.hub.cli"]
    # a request deadline far beyond the hang guard: no held connection is let go by a deadline
    process = subprocess.Popen([*start, "--request-timeout", "600", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(3 if "--tls" in args else 2)]
        yield {"pid": str(process.pid), **dict(line.partition("=")[::2] for line in lines)}
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module", autouse=True)
def _descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = HELD + 200
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"holding {HELD} connections needs {needed} open files "
                        f"(ulimit -n is {soft}, at most {hard})")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.rpartition("/")[2].rpartition(":")
    return host, int(port)


def _half_sent(hub: dict[str, str], count: int) -> list[socket.socket]:
    """Connections that sent part of a request (mid-headers or mid-body), then nothing."""
    context = ssl.create_default_context(cafile=hub["BULKREG_CA_CERT"]) \
        if "BULKREG_CA_CERT" in hub else None
    token = token_for(hub["BULKREG_CONNECTION_STRING"])
    held = []
    for n in range(count):
        sock = socket.create_connection(_address(hub["BULKREG_URL"]), timeout=GUARD)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        head = f"POST /devices?api-version={API} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
        sock.sendall((head + 'Content-Length: 100\r\n\r\n[{"id":' if n % 2 else head).encode())
        held.append(sock)
    return held


def _normal_request(hub: dict[str, str], device: str = "normal") -> int:
    token = token_for(hub["BULKREG_CONNECTION_STRING"])
    response = requests.post(f"{hub['BULKREG_URL']}/devices", params={"api-version": API},
                             json=[{"id": device, "importMode": "create"}],
                             headers={"Authorization": token},
                             verify=hub.get("BULKREG_CA_CERT", True), timeout=GUARD)
    return response.status_code


def _closed_by_server(held: list[socket.socket]) -> int:
    """How many of ``held`` the server closed (an end or a reset waiting to be read; over TLS
    the session tickets sent after the handshake are not an answer)."""
    closed = 0
    for sock in held:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except OSError:
            closed += 1
    return closed


def _rss_mib(pid: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory in /proc")
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_thousand_half_sent_connections_do_not_delay_a_normal_request(
        scheme: str, tmp_path: Path) -> None:
    """... and cost at most 5 MiB per hundred (about 0.3 over http, 2 over https here)."""
    args = ("--tls", "--tls-dir", str(tmp_path)) if scheme == "https" else ()
    with _serve(*args) as hub:
        assert _normal_request(hub, "warm") == 200  # imports, the first token
        before = _rss_mib(hub["pid"])
        held = _half_sent(hub, HELD)
        try:
            assert _normal_request(hub) == 200
            assert _closed_by_server(held) == 0  # all of them still held open
            grown = _rss_mib(hub["pid"]) - before
            assert grown <= 5 * HELD / 100, f"{grown:.1f} MiB for {HELD} connections"
        finally:
            for sock in held:
                sock.close()


def test_out_of_descriptors_the_stalest_connection_makes_room() -> None:
    """At 64 open files the server cannot hold 100 connections: accepting fails with EMFILE
    and it closes the connection that has waited longest for a whole request, so a normal
    request still gets in (before, it waited in the backlog until a deadline)."""
    with _serve(nofile=64) as hub:
        held = _half_sent(hub, 100)
        try:
            assert _normal_request(hub) == 200
            assert _closed_by_server(held) > 0
            assert _closed_by_server(held[:10]) == 10  # the first, the stalest, went first
        finally:
            for sock in held:
                sock.close()
