"""How the hub and its server schedule work, over real sockets.

What the throughput of ``tests/benchmarks/bench_hub.py`` rests on, each checked by what it
changes, not by timing the hub:

- an answer leaves in one write (head and body), not a head that waits for its body;
- the hub runs requests one at a time (its lock), and the latency fault gives the lock away;
- the event loop sleeps while requests compute: it is woken by sockets, not by polling.
"""

from __future__ import annotations

import itertools
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from bulkreg_conformance.hub import app as hub_app
from bulkreg_conformance.hub import transport
from bulkreg_conformance.hub.cli import BackgroundHub, start_background

from .conftest import Client


def _devices(prefix: str, count: int = 100) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "importMode": "create", "tags": {"n": i},
             "properties": {"desired": {"mode": "eco", "interval": i}}} for i in range(count)]


def _in_parallel(count: int, work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_an_answer_leaves_in_one_write(monkeypatch: pytest.MonkeyPatch,
                                       hub: BackgroundHub) -> None:
    writes: list[bytes] = []
    original = transport.Plain.send

    def record(self: transport.Plain, data: bytes) -> None:
        writes.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(transport.Plain, "send", record)
    client = Client(hub)
    created = client.call("POST", "/devices", _devices("one", 3))
    got = client.call("GET", "/devices/one-1")
    deleted = client.call("DELETE", "/devices/one-2", headers={"If-Match": "*"})
    assert (created.status_code, got.status_code, deleted.status_code) == (200, 200, 204)
    assert len(writes) == 3, [w[:40] for w in writes]
    for write, response in zip(writes, (created, got, deleted), strict=True):
        head, _, body = write.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {response.status_code} ".encode())
        assert body == response.content  # the whole body, with its head
    assert orjson.loads(writes[1].partition(b"\r\n\r\n")[2])["deviceId"] == "one-1"


def test_bulk_calls_run_one_at_a_time(monkeypatch: pytest.MonkeyPatch,
                                      hub: BackgroundHub) -> None:
    """Four clients at once: the hub computes their calls one after the other."""
    spans: list[tuple[float, float]] = []
    original = hub_app.Hub._bulk

    def slow(self: hub_app.Hub, *args: Any) -> Any:
        start = time.monotonic()
        time.sleep(0.05)  # computing, as far as the lock knows
        plan = original(self, *args)
        spans.append((start, time.monotonic()))
        return plan

    monkeypatch.setattr(hub_app.Hub, "_bulk", slow)
    statuses: list[int] = []
    _in_parallel(4, lambda n: statuses.append(
        Client(hub).call("POST", "/devices", _devices(f"turn{n}", 10)).status_code))
    assert statuses == [200] * 4
    spans.sort()
    assert len(spans) == 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two requests computed at once: {spans}"


def test_the_latency_fault_gives_the_lock_away(monkeypatch: pytest.MonkeyPatch,
                                               hub: BackgroundHub) -> None:
    """Simulated latency is a wait, not work: two requests are inside it at the same time. If
    the first held the hub's lock while it waits, the second could never join it, the barrier
    would break after 10 s and both requests would fail."""
    together = threading.Barrier(2, timeout=10)

    def sleep(seconds: float) -> None:
        if seconds > 0:
            together.wait()
        time.sleep(seconds)

    monkeypatch.setattr(hub_app, "time", types.SimpleNamespace(sleep=sleep, time=time.time))
    admin = Client(hub)
    assert admin.call("POST", "/_bulkreg/admin", {"faults": {"latency_ms": 10}}).ok
    statuses: list[int] = []
    _in_parallel(2, lambda n: statuses.append(Client(hub).call("GET", "/devices").status_code))
    assert admin.call("POST", "/_bulkreg/admin", {"faults": {"latency_ms": 0}}).ok
    assert statuses == [200, 200]
    assert not together.broken


def test_the_loop_sleeps_while_requests_compute() -> None:
    """Two clients posting 100 devices at a time: the loop wakes for sockets (a request
    arriving, an answer to finish), a few times per request, never in a polling circle."""
    requests_sent = 2 * 25
    with start_background() as running:
        selector = running.server.selector
        original = selector.select
        polls = [0]

        def select(timeout: float | None = None) -> Any:
            polls[0] += 1
            return original(timeout)

        selector.select = select  # type: ignore[method-assign]

        def post(n: int) -> None:
            client = Client(running)
            for batch in range(requests_sent // 2):
                response = client.call("POST", "/devices", _devices(f"poll{n}b{batch}"))
                assert response.status_code == 200, response.text[:200]

        before = polls[0]
        _in_parallel(2, post)
        count = polls[0] - before
    assert count / requests_sent < 15, f"{count} polls for {requests_sent} requests"
