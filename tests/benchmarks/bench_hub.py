"""Benchmark: bulk POSTs of 100 fresh devices against the hub vs a bare werkzeug floor.

Not a test: run ``python tests/benchmarks/bench_hub.py [--seconds 5]``. Each server runs in its
own process (as ``bulkreg serve`` does); 2 client threads in this process post 100 fresh devices
with tags and desired properties per request over loopback HTTP (http.client, reusing the
connection while the server keeps it open). Printed: device operations per second of (a) a bare
werkzeug threaded server that only parses the JSON body and returns a fixed success, (b) the hub
in memory, (c) the hub with --db, and the ratios (b)/(a), (c)/(a).
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from bulkreg_conformance.sas import generate_token, parse_connection_string

API = "2021-04-12"
PER_CALL = 100
SUCCESS = b'{"isSuccessful":true,"errors":[],"warnings":[]}'


def floor_server() -> int:
    """(a): parse the body, answer a fixed success. Prints the same ready line as the hub."""
    class Quiet(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        orjson.loads(request.get_data())
        return Response(SUCCESS, content_type="application/json; charset=utf-8")

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    print(f"BULKREG_URL=http://127.0.0.1:{server.port}\nBULKREG_CONNECTION_STRING=", flush=True)
    server.serve_forever()
    return 0


def payload(prefix: str, batch: int) -> bytes:
    return orjson.dumps([
        {"id": f"{prefix}b{batch}d{i}", "importMode": "create", "status": "enabled",
         "tags": {"site": f"site-{i % 7}", "floor": i, "labels": {"env": "bench", "rack": i}},
         "properties": {"desired": {"interval": 30, "mode": "eco",
                                    "config": {"threshold": 0.5, "enabled": True}}}}
        for i in range(PER_CALL)])


class Target:
    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip().partition("=")[2]
        self.cs = self.process.stdout.readline().strip().partition("=")[2]

    def token(self) -> str:
        if not self.cs:
            return ""
        cs = parse_connection_string(self.cs)
        return generate_token(cs.host_name, cs.key_name, cs.key)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _client(url: str, token: str, prefix: str, thread: int, deadline: float,
            counts: list[int], failures: list[str]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    headers = {"Content-Type": "application/json; charset=utf-8", "Authorization": token}
    batch = 0
    while time.perf_counter() < deadline:
        body = payload(prefix, batch)
        batch += 1
        try:
            conn.request("POST", f"/devices?api-version={API}", body, headers)
            response = conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                              timeout=30)
            continue
        if response.status != 200:
            failures.append(f"{response.status} {data[:200]!r}")
            return
        counts[thread] += PER_CALL
        if response.getheader("Connection", "").lower() == "close":
            conn.close()  # werkzeug closes after each response; reconnect for the next
    conn.close()


def measure(target: Target, seconds: float, run: str, threads: int = 2) -> float:
    token = target.token()
    counts = [0] * threads
    failures: list[str] = []
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    workers = [threading.Thread(target=_client, args=(target.url, token, f"{run}t{t}", t, deadline,
                                                      counts, failures)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"benchmark request failed: {failures[0]}")
    return sum(counts) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_server:
        return floor_server()
    hub = [sys.executable, "-m", "bulkreg_conformance.hub.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "floor (bare werkzeug, parse JSON)": [sys.executable, __file__, "--floor-server"],
            "hub in memory": hub,
            "hub with --db": [*hub, "--db", str(Path(tmp) / "bench.sqlite")],
        }
        results: dict[str, float] = {}
        for name, argv_ in runs.items():
            target = Target(argv_)
            try:
                measure(target, 0.5, "warm")  # warm-up (imports, compiled schemas)
                results[name] = measure(target, args.seconds, "run")
            finally:
                target.stop()
            print(f"{name:36s} {results[name]:10,.0f} device ops/s", flush=True)
    floor = results["floor (bare werkzeug, parse JSON)"]
    print(f"ratio hub in memory / floor: {results['hub in memory'] / floor:.2f} (goal >= 0.6)")
    print(f"ratio hub with --db / floor: {results['hub with --db'] / floor:.2f} (goal >= 0.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
