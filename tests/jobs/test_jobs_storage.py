"""Storage faults end a job ``failed`` with the service's reason (facts §6.3), never crash the
hub, never print a SAS signature, and say which lines were applied."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from azure.storage.blob import ContainerClient

from bulkreg_conformance.azurite import Azurite, start_azurite
from bulkreg_conformance.hub.cli import BackgroundHub

from .conftest import HubJobs, blob_names, download, fresh_container, lines_of, upload

DEVICES = lines_of({"id": "s1"}, {"id": "s2"})


def _closed_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _elsewhere(uri: str, port: int) -> str:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, f"127.0.0.1:{port}", parts.path, parts.query, ""))


def _failed(job: dict[str, object], *words: str) -> str:
    assert job["status"] == "failed", job
    reason = str(job["failureReason"])
    for word in words:
        assert word in reason, reason
    assert "sig=" not in reason and "?" not in reason, reason  # the SAS is never shown
    return reason


def _still_serving(jobs: HubJobs) -> None:
    assert jobs.call("POST", "/devices", [{"id": "after", "importMode": "create"}]).ok
    assert jobs.call("GET", "/devices/after").status_code == 200


def test_unreachable_storage(azurite: Azurite, jobs: HubJobs) -> None:
    source = _elsewhere(fresh_container(azurite), _closed_port())
    target = fresh_container(azurite)
    reason = _failed(jobs.run_import(source, target), "Unable to access blob (IH400007)",
                     "unreachable", "No line was applied.")
    assert "/devstoreaccount1/" in reason  # the container is named, without its SAS
    _failed(jobs.run_export(_elsewhere(target, _closed_port())), "IH400007",
            "devices.txt was not written")
    _still_serving(jobs)


def test_a_missing_input_blob(azurite: Azurite, jobs: HubJobs) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    _failed(jobs.run_import(source, target), "BlobContainerValidationError (400008)",
            "'devices.txt' is not in container", "No line was applied.")
    _still_serving(jobs)


def test_an_empty_input_blob(azurite: Azurite, jobs: HubJobs) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", b"")
    _failed(jobs.run_import(source, target), "BlobContainerValidationError (400008)", "is empty")


def test_an_uncommitted_input_blob(azurite: Azurite, jobs: HubJobs) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    blob = ContainerClient.from_container_url(source).get_blob_client("devices.txt")
    blob.stage_block("b1", DEVICES)  # staged, never committed (Azure-Samples/...#128)
    _failed(jobs.run_import(source, target), "BlobContainerValidationError", "never committed")


def test_an_input_sas_without_read(azurite: Azurite, jobs: HubJobs) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", DEVICES)
    write_only = azurite.container_uri(urlsplit(source).path.rsplit("/", 1)[1], "wl",
                                       create=False)
    _failed(jobs.run_import(write_only, target), "IH400007", "403",
            "the SAS must grant read", "No line was applied.")
    assert jobs.call("GET", "/devices/s1").status_code == 404


@pytest.mark.parametrize("permission", ["rl", "r"])
def test_an_output_container_refusing_writes(azurite: Azurite, jobs: HubJobs,
                                             permission: str) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", DEVICES)
    read_only = azurite.container_uri(urlsplit(target).path.rsplit("/", 1)[1], permission,
                                      create=False)
    _failed(jobs.run_import(source, read_only), "IH400007", "could not write 'importErrors.log'",
            "the SAS must grant write, read and delete", "No line was applied.")
    assert jobs.call("GET", "/devices/s1").status_code == 404
    _failed(jobs.run_export(read_only), "IH400007", "devices.txt was not written")
    assert blob_names(target) == []


def test_a_container_that_does_not_exist(azurite: Azurite, jobs: HubJobs) -> None:
    source = fresh_container(azurite)
    upload(source, "devices.txt", DEVICES)
    missing = azurite.container_uri("never-made", create=False)
    _failed(jobs.run_import(source, missing), "IH400007", "the container does not exist")
    _failed(jobs.run_import(missing, fresh_container(azurite)), "IH400007", "could not read",
            "the container does not exist")


def test_a_store_that_goes_away_mid_job(tmp_path_factory: pytest.TempPathFactory,
                                        hub: BackgroundHub, jobs: HubJobs,
                                        azurite: Azurite) -> None:
    """The log's container stops answering after the first batch: the job fails, saying
    which lines were applied and that the log lacks their errors; the hub keeps serving. (It
    stops an Azurite of its own; the shared one's fixture skips it where none is installed.)"""
    with start_azurite(tmp_path_factory.mktemp("own-azurite")) as own:
        source, target = own.container_uri("input"), own.container_uri("output")
        upload(source, "devices.txt", lines_of(*({"id": f"m{i}", "importMode": "update"}
                                                 for i in range(30))))
        hub.hub.jobs.batch_lines = 10
        hub.hub.jobs.hold(10)
        job = jobs.create(type="import", inputBlobContainerUri=source,
                          outputBlobContainerUri=target)
        while hub.hub.jobs.status()["linesApplied"] != 10:
            time.sleep(0.01)  # (a hold is reached in milliseconds)
        own.stop()  # the whole store goes away while the job is held
        hub.hub.jobs.hold(None)
        ended = jobs.wait(job["jobId"])
    reason = _failed(ended, "IH400007", "unreachable")
    assert "Lines 1-" in reason and "were applied" in reason
    assert "holds the errors of lines 1-" in reason or "holds none of their errors" in reason
    _still_serving(jobs)


def test_the_log_of_a_job_is_complete_when_it_ends(azurite: Azurite, hub: BackgroundHub,
                                                   jobs: HubJobs) -> None:
    """Many batches with errors (one staged block each): every error is in the log, in file
    order, once."""
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", lines_of(*({"id": f"u{i}", "importMode": "update"}
                                             for i in range(57))))
    hub.hub.jobs.batch_lines = 5
    assert jobs.run_import(source, target)["status"] == "completed"
    log = download(target, "importErrors.log").decode().splitlines()
    assert [line.split('"')[3] for line in log] == [f"u{i}" for i in range(57)]
