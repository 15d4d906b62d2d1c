"""Benchmark: bulk POSTs of 100 fresh devices against the hub vs bare-server floors.

Not a test: run ``python tests/benchmarks/bench_hub.py [--seconds 5] [--rounds 3]``. Each server
runs in its own process (as ``bulkreg serve`` does); 2 client threads in this process each keep
one connection open and post 100 fresh devices with tags and desired properties per request over
loopback HTTP. Printed per round: device operations per second of (a) the floor, the hub's own
server (``bulkreg_conformance.hub.server``, same settings) running a bare app that only parses
the JSON body and returns a fixed success, (a') the same bare app on werkzeug's threaded
development server (for context: the hub's server before issue 8), (b) the hub in memory, (c)
the hub with --db (SQLite, WAL, synchronous=FULL), and the ratios (b)/(a), (c)/(a); with several
rounds also the median and spread of each ratio. Targets (issue 15): (b)/(a) >= 0.5,
(c)/(a) >= 0.3. Every request must answer 200 (fully validated and applied) or the run stops.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server as werkzeug_server
from werkzeug.wrappers import Request, Response

from bulkreg_conformance.hub.server import make_server
from bulkreg_conformance.sas import generate_token, parse_connection_string

API = "2021-04-12"
PER_CALL = 100
SUCCESS = b'{"isSuccessful":true,"errors":[],"warnings":[]}'


def floor_server(kind: str) -> int:
    """(a) or (a'): parse the body, answer a fixed success; prints the same ready lines as the
    hub. ``hub`` runs on the hub's own server (``hub.server.make_server``), ``werkzeug`` on
    werkzeug's threaded server."""
    @Request.application
    def app(request: Request) -> Response:
        orjson.loads(request.get_data())
        return Response(SUCCESS, content_type="application/json; charset=utf-8")

    if kind == "werkzeug":
        class Quiet(WSGIRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                pass  # one stderr line per request would cost the floor ~10 %

        bare = werkzeug_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
        port, serve = bare.port, bare.serve_forever
    else:
        hub_server = make_server(app)
        port, serve = hub_server.port, hub_server.serve_forever
    print(f"BULKREG_URL=http://127.0.0.1:{port}\nBULKREG_CONNECTION_STRING=", flush=True)
    serve()
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
            counts: list[int], failures: list[str], reconnects: list[int]) -> None:
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
            reconnects[thread] += 1
            continue
        if response.status != 200:
            failures.append(f"{response.status} {data[:200]!r}")
            return
        counts[thread] += PER_CALL
        if response.getheader("Connection", "").lower() == "close":
            conn.close()  # not expected with keep-alive; http.client reconnects if it happens
            reconnects[thread] += 1
    conn.close()


def _client_requests(url: str, token: str, prefix: str, thread: int, deadline: float,
                     counts: list[int], failures: list[str], reconnects: list[int]) -> None:
    """The same loop with requests.Session (keep-alive), the way a Python provisioning script or
    bulkreg's own conformance client talks to a hub: the devices are built as dicts and
    serialised with the stdlib, per request."""
    import json  # noqa: PLC0415

    import requests  # noqa: PLC0415

    session = requests.Session()
    session.headers.update({"Content-Type": "application/json; charset=utf-8",
                            "Authorization": token})
    batch = 0
    while time.perf_counter() < deadline:
        devices = orjson.loads(payload(prefix, batch))  # fresh dicts, as a script would hold
        batch += 1
        response = session.post(f"{url}/devices", params={"api-version": API},
                                data=json.dumps(devices))
        if response.status_code != 200:
            failures.append(f"{response.status_code} {response.content[:200]!r}")
            return
        response.json()
        counts[thread] += PER_CALL
    session.close()


CLIENTS = {"http.client": _client, "requests": _client_requests}


def measure(target: Target, seconds: float, run: str, threads: int = 2,
            client: str = "requests") -> tuple[float, int]:
    """Device operations per second over ``seconds``, and how many reconnects happened."""
    token = target.token()
    counts, reconnects = [0] * threads, [0] * threads
    failures: list[str] = []
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    workers = [threading.Thread(target=CLIENTS[client],
                                args=(target.url, token, f"{run}t{t}", t, deadline, counts,
                                      failures, reconnects))
               for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"benchmark request failed: {failures[0]}")
    return sum(counts) / elapsed, sum(reconnects)


FLOOR, WERKZEUG = "floor: bare hub server", "bare werkzeug (context)"
MEMORY, DB = "hub in memory", "hub with --db"


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _spread(name: str, values: list[float], goal: float) -> str:
    verdict = "met" if statistics.median(values) >= goal else "NOT met"
    return (f"{name}: median {statistics.median(values):.2f}, min {min(values):.2f}, "
            f"max {max(values):.2f} over {len(values)} rounds (goal >= {goal}: {verdict})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per target and round")
    parser.add_argument("--rounds", type=int, default=3, help="floor, memory, --db each round")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="requests",
                        help="requests.Session (default: the issue's setup, whose floor is about "
                        "22,000 device ops/s here) or the lighter http.client")
    parser.add_argument("--floor-server", choices=("hub", "werkzeug"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_server:
        return floor_server(args.floor_server)
    hub = [sys.executable, "-m", "bulkreg_conformance.hub.cli"]
    print(f"start: {_load()} ({os.cpu_count()} CPUs), client {args.client}", flush=True)
    ratios: dict[str, list[float]] = {MEMORY: [], DB: [], WERKZEUG: []}
    with tempfile.TemporaryDirectory() as tmp:
        argvs = {FLOOR: [sys.executable, __file__, "--floor-server", "hub"],
                 WERKZEUG: [sys.executable, __file__, "--floor-server", "werkzeug"], MEMORY: hub,
                 DB: [*hub, "--db", str(Path(tmp) / "bench.sqlite")]}
        targets = {name: Target(argv_) for name, argv_ in argvs.items()}
        try:
            for target in targets.values():
                measure(target, 0.5, "warm", client=args.client)  # imports, schemas, pages
            for round_ in range(args.rounds):
                results: dict[str, float] = {}
                for name, target in targets.items():
                    results[name], reconnects = measure(target, args.seconds, f"r{round_}",
                                                        client=args.client)
                    note = f" ({reconnects} reconnects)" if reconnects else ""
                    print(f"round {round_ + 1}  {name:34s} {results[name]:9,.0f} device ops/s"
                          f"{note}", flush=True)
                for name in (MEMORY, DB, WERKZEUG):
                    ratios[name].append(results[name] / results[FLOOR])
                print(f"round {round_ + 1}  ratios to the floor: in memory "
                      f"{ratios[MEMORY][-1]:.2f}, --db {ratios[DB][-1]:.2f}, bare werkzeug "
                      f"{ratios[WERKZEUG][-1]:.2f}; {_load()}", flush=True)
        finally:
            for target in targets.values():
                target.stop()
    print(_spread("ratio hub in memory / floor", ratios[MEMORY], 0.5))
    print(_spread("ratio hub with --db / floor", ratios[DB], 0.3))
    print(f"bare werkzeug / floor (context): median {statistics.median(ratios[WERKZEUG]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
