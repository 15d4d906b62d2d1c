"""The jobs routes over real HTTP with Azurite as the blob store: life cycle, wire names, the
one-active-job rule, cancel, errors, permissions, and every answer against openapi.json."""

from __future__ import annotations

import threading
from typing import Any

import jsonschema
import pytest
import requests

import bulkreg_schema
from bulkreg_conformance.azurite import Azurite
from bulkreg_conformance.hub.cli import BackgroundHub

from .conftest import HubJobs, download, fresh_container, lines_of, upload

OPENAPI = bulkreg_schema.openapi()
WIRE = ["jobId", "startTimeUtc", "endTimeUtc", "type", "status", "progress",
        "inputBlobContainerUri", "inputBlobName", "outputBlobContainerUri", "outputBlobName",
        "excludeKeysInExport", "storageAuthenticationType", "failureReason",
        "includeConfigurations"]


def conforms(response: requests.Response, path: str, method: str) -> Any:
    declared = OPENAPI["paths"][path][method]["responses"][str(response.status_code)]
    schema = declared["content"]["application/json"]["schema"]
    body = response.json()
    jsonschema.validate(body, {**schema, "components": OPENAPI["components"]},
                        cls=jsonschema.Draft202012Validator)
    return body


def test_an_import_runs_to_completed_with_its_log(azurite: Azurite, jobs: HubJobs) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", lines_of({"id": "a1"}, {"id": "a2", "importMode": "delete"},
                                           {"id": "a3", "tags": {"x": 1}}))
    answer = jobs.call("POST", "/jobs/create", {"type": "import",
                                                "inputBlobContainerUri": source,
                                                "outputBlobContainerUri": target})
    created = conforms(answer, "/jobs/create", "post")
    assert list(created) == WIRE
    assert created["status"] in ("enqueued", "running") and created["type"] == "import"
    done = jobs.wait(created["jobId"])
    assert done["status"] == "completed" and done["progress"] == 100
    assert done["failureReason"] is None and done["startTimeUtc"] <= done["endTimeUtc"]
    assert conforms(jobs.call("GET", f"/jobs/{done['jobId']}"), "/jobs/{id}", "get") == done
    log = download(target, "importErrors.log")
    assert log == b'{"deviceId":"a2","errorCode":404001,"errorStatus":"Device a2 could not ' \
                  b'be found."}\n'
    twin = jobs.call("GET", "/twins/a3").json()
    assert twin["tags"] == {"x": 1}


def test_every_line_applied_leaves_an_empty_log(azurite: Azurite, jobs: HubJobs) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(target, "importErrors.log", b"an old log\n")  # a previous job's log is replaced
    upload(source, "devices.txt", lines_of({"id": "e1"}, {"id": "e2"}))
    assert jobs.run_import(source, target)["status"] == "completed"
    assert download(target, "importErrors.log") == b""  # DOC-BULK: size 0, no error


def test_blob_names_of_the_request_are_used(azurite: Azurite, jobs: HubJobs) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "fleet.jsonl", lines_of({"id": "n1", "importMode": "update"}))
    job = jobs.run_import(source, target, inputBlobName="fleet.jsonl", outputBlobName="e.log")
    assert (job["inputBlobName"], job["outputBlobName"]) == ("fleet.jsonl", "e.log")
    assert b"404001" in download(target, "e.log")
    export = jobs.run_export(target, outputBlobName="snapshot.txt")
    assert export["status"] == "completed"
    assert download(target, "snapshot.txt") == b""  # nothing was created


def test_list_holds_every_job_in_creation_order(azurite: Azurite, jobs: HubJobs) -> None:
    target = fresh_container(azurite)
    first = jobs.run_export(target)
    second = jobs.run_export(target, exclude_keys=True)
    listed = conforms(jobs.call("GET", "/jobs"), "/jobs", "get")
    assert [j["jobId"] for j in listed] == [first["jobId"], second["jobId"]]
    assert [j["excludeKeysInExport"] for j in listed] == [False, True]


def test_one_active_job_per_hub(azurite: Azurite, hub: BackgroundHub,
                                jobs: HubJobs) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", lines_of(*({"id": f"q{i}"} for i in range(30))))
    hub.hub.jobs.batch_lines = 10
    hub.hub.jobs.hold(10)  # the job stays running after its first batch
    first = jobs.create(type="import", inputBlobContainerUri=source,
                        outputBlobContainerUri=target)
    for body in ({"type": "export", "outputBlobContainerUri": target},
                 {"type": "import", "inputBlobContainerUri": source,
                  "outputBlobContainerUri": target}):
        refused = jobs.call("POST", "/jobs/create", body)
        assert refused.status_code == 403
        assert refused.headers["iothub-errorcode"] == "JobQuotaExceeded"
        assert conforms(refused, "/jobs/create", "post")["Message"].startswith(
            "ErrorCode:JobQuotaExceeded;")
    hub.hub.jobs.hold(None)
    assert jobs.wait(first["jobId"])["status"] == "completed"
    assert jobs.run_export(target)["status"] == "completed"  # the quota is free again


def test_cancel_stops_an_import_between_batches(azurite: Azurite, hub: BackgroundHub,
                                                jobs: HubJobs) -> None:
    source, target = fresh_container(azurite), fresh_container(azurite)
    upload(source, "devices.txt", lines_of(*({"id": f"k{i}"} for i in range(25)),
                                           {"id": "k0"}))
    hub.hub.jobs.batch_lines = 10
    hub.hub.jobs.hold(20)
    job = jobs.create(type="import", inputBlobContainerUri=source,
                      outputBlobContainerUri=target)
    while jobs.call("GET", "/statistics/devices").json()["totalDeviceCount"] < 20:
        threading.Event().wait(0.02)  # the job reaches its hold (20 lines applied)
    # the job is running (held): the hub serves other requests meanwhile
    assert jobs.get(job["jobId"])["status"] == "running"
    assert jobs.call("POST", "/devices", [{"id": "beside", "importMode": "create"}]).ok
    cancelled = conforms(jobs.call("DELETE", f"/jobs/{job['jobId']}"), "/jobs/{id}", "delete")
    assert cancelled["jobId"] == job["jobId"]
    ended = jobs.wait(job["jobId"])
    assert ended["status"] == "cancelled"
    assert ended["failureReason"] == ("Cancelled. Lines 1-20 of devices.txt were applied; "
                                      "lines after 20 were not.")
    assert jobs.call("GET", "/statistics/devices").json()["totalDeviceCount"] == 21  # + beside
    assert jobs.call("GET", "/devices/k21").status_code == 404
    assert download(target, "importErrors.log") == b""  # the duplicate k0 was never read
    again = jobs.call("DELETE", f"/jobs/{job['jobId']}")  # an ended job: answered unchanged
    assert again.status_code == 200 and again.json() == ended


@pytest.mark.parametrize(("body", "code", "words"), [
    ({"outputBlobContainerUri": "https://x.blob.core.windows.net/c?sig=1"}, "ArgumentInvalid",
     "job type None"),
    ({"type": "backup", "outputBlobContainerUri": "https://x/c"}, "ArgumentInvalid",
     "job type 'backup'"),
    ({"type": "import", "outputBlobContainerUri": "https://x/c"}, "ArgumentNull",
     "inputBlobContainerUri is required"),
    ({"type": "export"}, "ArgumentNull", "outputBlobContainerUri is required"),
    ({"type": "export", "outputBlobContainerUri": "ftp://x/c"}, "ArgumentInvalid",
     "must be the https URI"),
    ({"type": "export", "outputBlobContainerUri": "https://x/c",
      "storageAuthenticationType": "IdentityBased"}, "ArgumentInvalid", "managed identity"),
    ({"type": "export", "outputBlobContainerUri": "https://x/c",
      "includeConfigurations": True}, "ArgumentInvalid", "no configurations"),
    ({"type": "export", "outputBlobContainerUri": "https://x/c",
      "excludeKeysInExport": "yes"}, "ArgumentInvalid", "true or false"),
    ([{"type": "export"}], "ArgumentInvalid", "JobProperties object"),
])
def test_a_job_the_hub_cannot_run_is_refused(jobs: HubJobs, body: Any, code: str,
                                             words: str) -> None:
    answer = jobs.call("POST", "/jobs/create", body)
    assert answer.status_code == 400
    assert answer.headers["iothub-errorcode"] == code
    assert words in conforms(answer, "/jobs/create", "post")["Message"]
    assert jobs.call("GET", "/jobs").json() == []  # nothing was created


def test_not_json_and_unknown_jobs(jobs: HubJobs) -> None:
    bad = jobs.session.post(jobs.hub.url + "/jobs/create", params={"api-version": "2021-04-12"},
                            data=b"{", timeout=30)
    assert (bad.status_code, bad.headers["iothub-errorcode"]) == (400, "IotHubFormatError")
    for method in ("GET", "DELETE"):
        missing = jobs.call(method, "/jobs/no-such-job")
        assert missing.status_code == 404 and missing.headers["iothub-errorcode"] == "JobNotFound"
        conforms(missing, "/jobs/{id}", method.lower())
    assert jobs.call("POST", "/jobs/other").status_code == 404
    assert jobs.call("PUT", "/jobs/x").status_code == 405
    assert jobs.call("GET", "/jobs", api="1999-01-01").headers["iothub-errorcode"] == \
        "InvalidProtocolVersion"


@pytest.mark.parametrize(("policy", "allowed"), [
    ("iothubowner", True), ("registryReadWrite", True), ("registryRead", False),
    ("service", False), ("device", False)])
def test_jobs_need_registry_read_write(hub: BackgroundHub, policy: str, allowed: bool) -> None:
    client = HubJobs(hub, policy)
    for method, path in (("GET", "/jobs"), ("GET", "/jobs/x"), ("DELETE", "/jobs/x"),
                         ("POST", "/jobs/create")):
        answer = client.call(method, path, {"type": "export"})
        assert (answer.status_code != 401) is allowed, (method, path, answer.text)
    anonymous = requests.get(hub.url + "/jobs", params={"api-version": "2021-04-12"},
                             timeout=30)
    assert anonymous.status_code == 401


def test_admin_knobs_of_the_job_runner(hub: BackgroundHub, jobs: HubJobs) -> None:
    answer = jobs.call("POST", "/_bulkreg/admin", {"jobs": {"holdAfterLines": 5,
                                                            "batchLines": 7}})
    assert answer.status_code == 200
    assert answer.json()["jobs"] == {"jobs": 0, "active": None, "linesApplied": None,
                                     "holdAfterLines": 5, "batchLines": 7, "storageRetries": 0}
    for bad in ({"batchLines": 0}, {"holdAfterLines": "x"}, {"speed": 1}, [1],
                {"storageRetries": -1}, {"batchLines": True}):
        refused = jobs.call("POST", "/_bulkreg/admin", {"jobs": bad})
        assert refused.status_code == 400 and "jobs" in refused.json()["Message"]
