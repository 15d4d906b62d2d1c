"""How the hub's server schedules work (``hub/server.py``), over real sockets.

Three behaviours that the throughput of ``tests/benchmarks/bench_hub.py`` rests on, each checked
by what it changes, not by timing the hub:

- an answer leaves in one write (head and body), not a head that waits for its body;
- tasks run the application one at a time (``Turn``), and the latency fault gives the turn away;
- the event loop waits for a task's hold on an answer's buffer instead of polling in a loop.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from waitress import wasyncore

from bulkreg_conformance.hub import app as hub_app
from bulkreg_conformance.hub import server
from bulkreg_conformance.hub.cli import BackgroundHub, start_background

from .conftest import Client


def _devices(prefix: str, count: int = 100) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "importMode": "create", "tags": {"n": i},
             "properties": {"desired": {"mode": "eco", "interval": i}}} for i in range(count)]


def _in_parallel(count: int, work: Any) -> None:
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_an_answer_leaves_in_one_write(monkeypatch: pytest.MonkeyPatch,
                                       hub: BackgroundHub) -> None:
    writes: list[bytes] = []
    original = server._Channel.write_soon

    def record(self: Any, data: Any) -> int:
        writes.append(bytes(data))
        return int(original(self, data))

    monkeypatch.setattr(server._Channel, "write_soon", record)
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
    """Four clients at once: their requests are executed one after the other, each answered
    before the next starts (a task holds the turn until its answer is written)."""
    spans: list[tuple[float, float]] = []
    original = hub_app.Hub.respond

    def slow(self: Any, request: Any) -> Any:
        start = time.monotonic()
        time.sleep(0.05)  # computing, as far as the turn knows
        response = original(self, request)
        spans.append((start, time.monotonic()))
        return response

    monkeypatch.setattr(hub_app.Hub, "respond", slow)
    statuses: list[int] = []
    _in_parallel(4, lambda n: statuses.append(
        Client(hub).call("POST", "/devices", _devices(f"turn{n}", 10)).status_code))
    assert statuses == [200] * 4
    spans.sort()
    assert len(spans) == 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two requests computed at once: {spans}"


def test_the_latency_fault_gives_the_turn_away(hub: BackgroundHub) -> None:
    """Simulated latency is a wait, not work: four requests under a 400 ms latency overlap
    (one after the other they would take 1.6 s)."""
    admin = Client(hub)
    assert admin.call("POST", "/_bulkreg/admin", {"faults": {"latency_ms": 400}}).ok
    statuses: list[int] = []
    started = time.monotonic()
    _in_parallel(4, lambda n: statuses.append(
        Client(hub).call("GET", "/devices", api="2021-04-12").status_code))
    elapsed = time.monotonic() - started
    assert admin.call("POST", "/_bulkreg/admin", {"faults": {"latency_ms": 0}}).ok
    assert statuses == [200] * 4
    assert elapsed < 1.2, f"the latency fault held the turn: {elapsed:.2f} s for 4 requests"


@pytest.fixture
def counted_polls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The event loop's polls, counted (the loop picks up wasyncore.poll when it starts)."""
    count = [0]
    original = wasyncore.poll

    def poll(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(wasyncore, "poll", poll)
    yield count


def test_the_loop_waits_for_a_task_sending_its_answer(counted_polls: list[int]) -> None:
    """Two clients posting 100 devices at a time. waitress's loop found the socket writable
    while a task held the answer's buffer, polled again at once, and did so about 100 times
    per request; it now waits for the hold: a few polls per request remain."""
    requests_sent = 2 * 25
    with start_background() as running:
        def post(n: int) -> None:
            client = Client(running)
            for batch in range(requests_sent // 2):
                response = client.call("POST", "/devices", _devices(f"poll{n}b{batch}"))
                assert response.status_code == 200, response.text[:200]

        before = counted_polls[0]
        _in_parallel(2, post)
        polls = counted_polls[0] - before
    assert polls / requests_sent < 15, f"{polls} polls for {requests_sent} requests"
