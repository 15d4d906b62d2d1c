"""Benchmark: what idle, half-sent connections cost the hub (latency of others, memory).

Not a test: run ``python tests/benchmarks/bench_slow_clients.py [--connections 1000]``. Starts
``bulkreg serve`` (default bounds) in its own process, plain and then ``--tls``, and measures in
the same run, for each:

- the latency of a normal request (``GET /devices/{id}`` on a fresh connection, median and max
  of ``--probes``) with no other client: the baseline;
- the server's resident memory (VmRSS) with no other client;
- the same two with ``--connections`` connections held open, each having sent part of a request
  (half of them mid-headers, half mid-body; over TLS each after a completed handshake), then
  nothing more;

and prints the latency ratio to the baseline and the memory per 100 held connections. The
issue's bar: a normal request answered within 1 s beside 1,000 of them, a few MiB of memory
per hundred. Every probe must answer 404 (the device does not exist) or the run stops.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bulkreg_conformance.sas import generate_token, parse_connection_string

API = "2021-04-12"


class Hub:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bulkreg_conformance.hub.cli", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        lines = dict(self.process.stdout.readline().strip().partition("=")[::2]
                     for _ in range(3 if "--tls-dir" in args else 2))
        self.url = lines["BULKREG_URL"]
        cs = parse_connection_string(lines["BULKREG_CONNECTION_STRING"])
        self.token = generate_token(cs.host_name, cs.key_name, cs.key)
        self.ca = lines.get("BULKREG_CA_CERT")
        host, _, port = self.url.rpartition("/")[2].rpartition(":")
        self.address = (host, int(port))

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise SystemExit("no VmRSS in /proc")

    def probe(self) -> float:
        """Seconds for one normal request on a fresh connection."""
        started = time.perf_counter()
        response = requests.get(f"{self.url}/devices/absent", params={"api-version": API},
                                headers={"Authorization": self.token, "Connection": "close"},
                                verify=self.ca or True, timeout=120)
        elapsed = time.perf_counter() - started
        if response.status_code != 404:
            raise SystemExit(f"probe answered {response.status_code}: {response.text[:200]}")
        return elapsed

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def hold(hub: Hub, count: int) -> list[socket.socket]:
    """``count`` connections, each with part of a request sent."""
    context = ssl.create_default_context(cafile=hub.ca) if hub.ca else None
    held: list[socket.socket] = []
    for n in range(count):
        sock: socket.socket = socket.create_connection(hub.address, timeout=30)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        head = (f"POST /devices?api-version={API} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {hub.token}\r\n")
        sock.sendall((head + "Content-Length: 1000\r\n\r\n[{\"id\":" if n % 2 else head)
                     .encode())
        held.append(sock)
    return held


def measure(hub: Hub, count: int, probes: int) -> tuple[float, float, float, float, float]:
    """(baseline median s, loaded median s, loaded max s, RSS before MiB, RSS held MiB)."""
    for _ in range(3):
        hub.probe()  # imports, first token check
    baseline = statistics.median(hub.probe() for _ in range(probes))
    before = hub.rss_mib()
    started = time.perf_counter()
    held = hold(hub, count)
    opened = time.perf_counter() - started
    try:
        time.sleep(0.5)  # let the loop take in every connection
        loaded = [hub.probe() for _ in range(probes)]
        after = hub.rss_mib()
        closed = sum(1 for sock in held if _closed(sock))
    finally:
        for sock in held:
            sock.close()
    print(f"  opened {count} half-sent connections in {opened:.1f} s; "
          f"{closed} of them closed by the server while held")
    return baseline, statistics.median(loaded), max(loaded), before, after


def _closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.connections + 200
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"needs {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{args.connections} connections, {args.probes} probes each")
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in (("http", ()), ("https", ("--tls", "--tls-dir", tmp))):
            hub = Hub(*flags)
            try:
                base, median, worst, before, after = measure(hub, args.connections,
                                                             args.probes)
            finally:
                hub.stop()
            per_100 = (after - before) / args.connections * 100
            print(f"{name}: normal request alone {base * 1000:.1f} ms; beside "
                  f"{args.connections} held: median {median * 1000:.1f} ms, max "
                  f"{worst * 1000:.1f} ms ({median / base:.1f}x); memory {before:.1f} -> "
                  f"{after:.1f} MiB, {per_100:.2f} MiB per 100 connections "
                  f"(goal: max < 1 s: {'met' if worst < 1 else 'NOT met'}; "
                  f"a few MiB per 100: {'met' if per_100 < 5 else 'NOT met'})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
