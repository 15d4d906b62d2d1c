"""`bulkreg serve` as a process: ready lines, clean SIGTERM, and durability across SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from bulkreg_conformance.hub.store import SqliteStore
from bulkreg_conformance.sas import generate_token, parse_connection_string

API = "2021-04-12"


@contextmanager
def serve(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkreg_conformance.hub.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        cs = process.stdout.readline().strip()
        assert url.startswith("BULKREG_URL=http://127.0.0.1:"), url
        assert cs.startswith("BULKREG_CONNECTION_STRING=HostName="), "no connection string line"
        yield process, url.partition("=")[2], cs.partition("=")[2]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _session(cs: str) -> requests.Session:
    parsed = parse_connection_string(cs)
    session = requests.Session()
    session.headers["Authorization"] = generate_token(parsed.host_name, parsed.key_name,
                                                      parsed.key)
    return session


def test_sigterm_shuts_down_cleanly_and_logs_no_key() -> None:
    with serve("--access-log") as (process, url, cs):
        key = parse_connection_string(cs).key
        response = _session(cs).get(f"{url}/devices/x", params={"api-version": API}, timeout=10)
        assert response.status_code == 404
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stderr is not None
        log = process.stderr.read()
        assert "GET /devices/x" in log and key not in log


def test_bad_connection_string_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bulkreg_conformance.hub.cli", "--connection-string",
         "HostName=h;SharedAccessKey=c2VjcmV0"],
        check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "SharedAccessKeyName" in result.stderr and "c2VjcmV0" not in result.stderr
    assert "Traceback" not in result.stderr


def _writer(url: str, cs: str, worker: int, acked: list[str], stop: threading.Event) -> None:
    session = _session(cs)
    batch = 0
    while not stop.is_set():
        ids = [f"w{worker}b{batch}d{i}" for i in range(10)]
        body = [{"id": i, "importMode": "create", "tags": {"batch": batch}} for i in ids]
        try:
            response = session.post(f"{url}/devices", params={"api-version": API}, json=body,
                                    timeout=10)
        except requests.RequestException:
            return  # the server died mid-request: this batch was never acknowledged
        if response.status_code == 200:
            acked.extend(ids)
        batch += 1


def test_sigkill_under_write_load_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite"
    acked: list[str] = []
    stop = threading.Event()
    with serve("--db", str(db)) as (process, url, cs):
        threads = [threading.Thread(target=_writer, args=(url, cs, w, acked, stop))
                   for w in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        stop.set()
        for thread in threads:
            thread.join()
    assert len(acked) >= 50, "too few writes acknowledged before the kill"
    store = SqliteStore(db)
    restored = store.load().records()
    store.close()
    missing = [i for i in acked if (i, "") not in restored]
    assert not missing, f"{len(missing)} acknowledged devices lost"
    with serve("--db", str(db), "--connection-string", cs) as (_, url2, _cs):
        session = _session(cs)
        status = session.get(f"{url2}/_bulkreg/admin", timeout=10).json()
        assert status["identities"] >= len(acked)
        for device_id in acked[:: max(1, len(acked) // 200)] + acked[-20:]:
            response = session.get(f"{url2}/devices/{device_id}", params={"api-version": API},
                                   timeout=10)
            assert response.status_code == 200, device_id
        fresh = session.post(f"{url2}/devices", params={"api-version": API},
                             json=[{"id": acked[0], "importMode": "create"}], timeout=10)
        assert fresh.json()["errors"][0]["errorCode"] == "DeviceAlreadyExists"
