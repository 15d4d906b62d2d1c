"""Concurrent clients: overlapping ids and racing IfMatchETag writers never both win.

Every acknowledged (200) bulk call is recorded with the registry state it saw; the final state
must equal a serial replay of the acknowledged calls in the order the hub serialised them.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson

from bulkreg_conformance.hub.cli import BackgroundHub
from bulkreg_conformance.oracle import Registry

from .conftest import Client

THREADS = 8
ROUNDS = 15


Ack = tuple[str, str, str | None, str]  # device, importMode, eTag used, statusReason


def _worker(hub: BackgroundHub, worker: int, acked: list[Ack], lock: threading.Lock) -> None:
    client = Client(hub)
    for round_ in range(ROUNDS):
        device = f"shared{round_ % 3}"
        reason = f"w{worker}r{round_}"
        current = client.call("GET", f"/devices/{device}")
        if current.status_code == 200:
            entry = {"id": device, "importMode": "updateIfMatchETag",
                     "eTag": current.json()["etag"], "statusReason": reason}
        else:
            entry = {"id": device, "importMode": "create", "statusReason": reason}
        own = {"id": f"own{worker}-{round_ % 2}",
               "importMode": "update" if round_ >= 2 else "create"}
        response = client.call("POST", "/devices", [entry, own])
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            with lock:
                acked.append((device, entry["importMode"], entry.get("eTag"), reason))


def _run_workers(hub: BackgroundHub) -> list[Ack]:
    acked: list[Ack] = []
    lock = threading.Lock()
    threads = [threading.Thread(target=_worker, args=(hub, w, acked, lock))
               for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return acked


def test_racing_if_match_writers_never_both_win(hub: BackgroundHub) -> None:
    acked = _run_workers(hub)
    client = Client(hub)
    updates = [(device, etag) for device, mode, etag, _ in acked if mode != "create"]
    creates = [device for device, mode, _, _ in acked if mode == "create"]
    assert updates, "no IfMatchETag update was acknowledged"
    assert len(set(updates)) == len(updates), "two writers won with the same eTag"
    assert len(set(creates)) == len(creates) == 3, "a device was created twice"
    for device in ("shared0", "shared1", "shared2"):
        wire = client.call("GET", f"/devices/{device}").json()
        # the last acknowledged write of each device is the one the registry holds
        last = [reason for d, _, _, reason in acked if d == device]
        assert wire["statusReason"] in last
    for worker in range(THREADS):
        for suffix in (0, 1):
            assert client.call("GET", f"/devices/own{worker}-{suffix}").status_code == 200


def test_final_state_equals_serial_replay(hub: BackgroundHub) -> None:
    """Log the bodies in the order the hub acknowledged them (under its lock) and replay."""
    log: list[bytes] = []
    original = hub.hub.registry.plan_bulk

    def recording(checked: Any) -> Any:
        plan = original(checked)
        if plan.status in (200, 400) and "errors" in (plan.body or {}):
            log.append(orjson.dumps(checked.entries))
        return plan

    hub.hub.registry.plan_bulk = recording  # type: ignore[method-assign]
    assert _run_workers(hub)
    replay = Registry(seed=hub.hub.registry.seed)
    for body in log:
        replay.apply(body)
    live = hub.hub.registry.records()
    assert set(replay.records()) == set(live)
    for key, record in live.items():
        assert replay.records()[key]["statusReason"] == record["statusReason"], key
        assert replay.records()[key]["version"] == record["version"], key
