"""The official Python SDK (azure-iot-hub 2.7.0 ``IoTHubJobManager``), unmodified, against
``serve --tls`` and Azurite: create, get, list and cancel import and export jobs, in the
scenario a user runs (upload good and bad lines, import, poll, read the error log, export,
round trip)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkreg_conformance.azurite import Azurite
from bulkreg_conformance.hub.cli import BackgroundHub, start_background
from bulkreg_conformance.hub.tls import local_certificates, server_context

from .conftest import download, fresh_container, lines_of, upload

azure_hub = pytest.importorskip("azure.iot.hub")
models = pytest.importorskip("azure.iot.hub.models")
msrest_exceptions = pytest.importorskip("msrest.exceptions")

pytestmark = pytest.mark.sdk

GOOD_AND_BAD = lines_of(
    {"id": "py-1", "tags": {"site": "north"}},
    {"id": "py-2", "importMode": "create", "status": "disabled"},
    {"id": "py-3", "importMode": "update"},                       # absent: 404001
    {"id": "py 4"},                                               # bad id: 400004
    b'{"id": "py-5", ',                                           # broken: 400006
    {"id": "py-6", "properties": {"desired": {"interval": 30}}},
)


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    found = local_certificates(tmp_path / "tls")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(found.ca))
    return server_context(found.cert, found.key)


@pytest.fixture
def tls_hub(tls: Any) -> Iterator[BackgroundHub]:
    with start_background(tls=tls) as running:
        running.hub.jobs.storage_retries = 0
        yield running


def _manager(hub: BackgroundHub) -> Any:
    return azure_hub.IoTHubJobManager.from_connection_string(hub.connection_string)


def _wait(manager: Any, job_id: str) -> Any:
    end = time.monotonic() + 60  # only keeps a broken hub from hanging the test
    while True:
        job = manager.get_import_export_job(job_id)
        if job.status in ("completed", "failed", "cancelled") or time.monotonic() > end:
            return job
        time.sleep(0.05)


def _import(manager: Any, source: str, target: str) -> Any:
    job = manager.create_import_export_job(models.JobProperties(
        type="import", input_blob_container_uri=source, output_blob_container_uri=target,
        storage_authentication_type="keyBased"))
    assert job.status in ("enqueued", "running") and job.job_id
    return _wait(manager, job.job_id)


def _export(manager: Any, target: str) -> Any:
    job = manager.create_import_export_job(models.JobProperties(
        type="export", output_blob_container_uri=target, exclude_keys_in_export=False))
    return _wait(manager, job.job_id)


def test_import_poll_log_export_and_round_trip(azurite: Azurite, tls_hub: BackgroundHub,
                                               tls: Any) -> None:
    manager = _manager(tls_hub)
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", GOOD_AND_BAD)
    job = _import(manager, source, target)
    assert (job.status, job.progress, job.failure_reason) == ("completed", 100, None)
    assert job.start_time_utc <= job.end_time_utc  # deserialized as datetimes
    log = [json.loads(line) for line in download(target, "importErrors.log").splitlines()]
    assert [(e.get("deviceId"), e["errorCode"]) for e in log] == [
        ("py-3", 404001), ("py 4", 400004), (None, 400006)]
    registry = azure_hub.IoTHubRegistryManager.from_connection_string(
        tls_hub.connection_string)
    assert registry.get_twin("py-1").tags == {"site": "north"}
    assert registry.get_device("py-2").status == "disabled"

    exported = _export(manager, target)
    assert exported.status == "completed" and exported.exclude_keys_in_export is False
    devices = download(target, "devices.txt")
    assert [json.loads(x)["id"] for x in devices.splitlines()] == ["py-1", "py-2", "py-6"]
    assert [j.job_id for j in manager.get_import_export_jobs()] == [job.job_id,
                                                                     exported.job_id]

    with start_background(tls=tls) as empty:  # round trip through a second, empty hub
        empty.hub.jobs.storage_retries = 0
        other = _manager(empty)
        copy_in, copy_out = fresh_container(azurite), fresh_container(azurite)
        upload(copy_in, "devices.txt", devices)
        assert _import(other, copy_in, copy_out).status == "completed"
        assert download(copy_out, "importErrors.log") == b""
        assert _export(other, copy_out).status == "completed"
        again = download(copy_out, "devices.txt")

    def stable(text: bytes) -> list[dict[str, Any]]:
        return [{k: v for k, v in json.loads(x).items() if k not in ("eTag", "twinETag")}
                for x in text.splitlines()]

    assert stable(again) == stable(devices)


def test_cancel_and_the_one_active_job(azurite: Azurite, tls_hub: BackgroundHub) -> None:
    manager = _manager(tls_hub)
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", lines_of(*({"id": f"c{i}"} for i in range(30))))
    tls_hub.hub.jobs.batch_lines = 10
    tls_hub.hub.jobs.hold(10)
    job = manager.create_import_export_job(models.JobProperties(
        type="import", input_blob_container_uri=source, output_blob_container_uri=target))
    with pytest.raises(msrest_exceptions.HttpOperationError) as refused:
        manager.create_import_export_job(models.JobProperties(
            type="export", output_blob_container_uri=target))
    assert refused.value.response.status_code == 403
    assert "JobQuotaExceeded" in refused.value.response.text
    while tls_hub.hub.jobs.status()["linesApplied"] != 10:
        time.sleep(0.01)  # the job reaches its hold in milliseconds
    assert manager.get_import_export_job(job.job_id).status == "running"
    manager.cancel_import_export_job(job.job_id)
    ended = _wait(manager, job.job_id)
    assert ended.status == "cancelled"
    assert ended.failure_reason == ("Cancelled. Lines 1-10 of devices.txt were applied; lines "
                                    "after 10 were not.")
    with pytest.raises(msrest_exceptions.HttpOperationError) as missing:
        manager.get_import_export_job("no-such-job")
    assert missing.value.response.status_code == 404
