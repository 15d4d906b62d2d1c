"""`bulkreg serve --db` as a process: job records survive restarts; a job cut by SIGKILL or
stopped by SIGTERM ends ``failed`` saying which lines were applied, and no line is applied
twice or applied without its importErrors.log line."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bulkreg_conformance.azurite import Azurite
from bulkreg_conformance.oracle import Registry
from bulkreg_conformance.oracle.jobs import predict_import
from bulkreg_conformance.sas import generate_token, parse_connection_string

from .conftest import API, download, fresh_container, upload

# 50 lines: devices c0..c49, every 7th line an update of an absent device (a log line in most
# batches of 10), line 33 broken JSON
LINES = [json.dumps({"id": f"c{i}", "importMode": "update"} if i % 7 == 3 else
                    {"id": f"c{i}", "tags": {"n": i}}).encode() for i in range(50)]
LINES[32] = b'{"id": "c32", '
FILE = b"".join(line + b"\n" for line in LINES)


class Served:
    def __init__(self, process: subprocess.Popen[str], url: str, cs: str) -> None:
        self.process, self.url = process, url
        parsed = parse_connection_string(cs)
        self.session = requests.Session()
        self.session.headers["Authorization"] = generate_token(parsed.host_name,
                                                               parsed.key_name, parsed.key)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.session.request(method, self.url + path, params={"api-version": API},
                                      json=body, timeout=30)
        assert answer.status_code < 500, answer.text
        return answer.json() if answer.content else None

    def wait_applied(self, lines: int) -> None:
        while self.call("GET", "/_bulkreg/admin")["jobs"]["linesApplied"] != lines:
            time.sleep(0.02)  # the job reaches its hold in milliseconds

    def wait(self, job_id: str) -> dict[str, Any]:
        end = time.monotonic() + 60
        while True:
            job: dict[str, Any] = self.call("GET", f"/jobs/{job_id}")
            if job["status"] in ("completed", "failed", "cancelled") or time.monotonic() > end:
                return job
            time.sleep(0.05)


@contextmanager
def serve(db: Path, log: Path) -> Iterator[Served]:
    with log.open("a") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "bulkreg_conformance.hub.cli", "--db", str(db)],
            stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().partition("=")[2]
        cs = process.stdout.readline().strip().partition("=")[2]
        assert url.startswith("http://127.0.0.1:"), log.read_text()
        served = Served(process, url, cs)
        served.call("POST", "/_bulkreg/admin", {"jobs": {"storageRetries": 0}})
        yield served
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _held_import(hub: Served, azurite: Azurite) -> tuple[str, str]:
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", FILE)
    hub.call("POST", "/_bulkreg/admin", {"jobs": {"batchLines": 10, "holdAfterLines": 20}})
    job = hub.call("POST", "/jobs/create", {"type": "import", "inputBlobContainerUri": source,
                                            "outputBlobContainerUri": target})
    hub.wait_applied(20)
    return job["jobId"], target


def _predicted(lines: int) -> Any:
    return predict_import(Registry(seed=b"\0" * 32), io.BytesIO(b"".join(
        line + b"\n" for line in LINES[:lines])))


def _check_applied(hub: Served, target: str, lines: int) -> None:
    """The registry holds exactly the devices of lines 1..lines, the log exactly their errors."""
    predicted = _predicted(lines)
    stats = hub.call("GET", "/statistics/devices")
    assert stats["totalDeviceCount"] == len(predicted.registry)
    for key in predicted.registry.records():
        assert hub.call("GET", f"/devices/{key[0]}")["deviceId"] == key[0]
    log = [json.loads(x) for x in download(target, "importErrors.log").splitlines()]
    assert log == [r.error for r in predicted.log]


def test_sigkill_mid_job(azurite: Azurite, tmp_path: Path) -> None:
    db, log = tmp_path / "hub.db", tmp_path / "hub.log"
    with serve(db, log) as hub:
        done = hub.call("POST", "/jobs/create", {"type": "export",
                                                 "outputBlobContainerUri":
                                                     fresh_container(azurite)})
        assert hub.wait(done["jobId"])["status"] == "completed"
        job_id, target = _held_import(hub, azurite)
        hub.process.send_signal(signal.SIGKILL)
        hub.process.wait(10)
    with serve(db, log) as hub:
        jobs = hub.call("GET", "/jobs")
        assert [j["jobId"] for j in jobs][-1] == job_id and len(jobs) == 2
        assert jobs[0]["status"] == "completed"  # a finished job's record survives as it was
        job = hub.call("GET", f"/jobs/{job_id}")
        assert job["status"] == "failed" and job["endTimeUtc"]
        assert job["failureReason"] == (
            "The hub stopped while the job was running (killed or crashed). Lines 1-20 of "
            "devices.txt were applied; lines after 20 were not. Their errors are in "
            "importErrors.log.")
        _check_applied(hub, target, 20)
        # the quota is free: the rest of the file can be imported by another job
        again = hub.call("POST", "/jobs/create", {"type": "export",
                                                  "outputBlobContainerUri": target})
        assert hub.wait(again["jobId"])["status"] == "completed"
    assert "Traceback" not in log.read_text()


def test_sigterm_mid_job(azurite: Azurite, tmp_path: Path) -> None:
    db, log = tmp_path / "hub.db", tmp_path / "hub.log"
    with serve(db, log) as hub:
        job_id, target = _held_import(hub, azurite)
        hub.process.send_signal(signal.SIGTERM)
        assert hub.process.wait(30) == 0
    with serve(db, log) as hub:
        job = hub.call("GET", f"/jobs/{job_id}")
        assert job["status"] == "failed"
        assert job["failureReason"] == ("The hub was stopped during the job. Lines 1-20 of "
                                        "devices.txt were applied; lines after 20 were not.")
        _check_applied(hub, target, 20)
    assert "Traceback" not in log.read_text()
