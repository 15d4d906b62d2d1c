"""Fixtures for the import/export job tests: Azurite (the real blob store) once per session, a
hub on a thread, a signed client of the jobs routes, and blob helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import ContainerClient

from bulkreg_conformance.azurite import Azurite, find_azurite, start_azurite
from bulkreg_conformance.hub.cli import BackgroundHub, start_background
from bulkreg_conformance.sas import generate_token, parse_connection_string

API = "2021-04-12"
FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    if find_azurite() is None:
        pytest.skip("Azurite is not installed: run `npm ci` in tests/azurite (.ci/run does)")
    with start_azurite(tmp_path_factory.mktemp("azurite")) as running:
        yield running


_containers = iter(range(1, 10**9))


def fresh_container(azurite: Azurite, permission: str = "rwdl") -> str:
    """A new, empty container's SAS URI (every test gets its own)."""
    return azurite.container_uri(f"c{next(_containers):06d}-{int(time.time() * 1000) % 10**8}",
                                 permission)


def upload(uri: str, name: str, data: bytes) -> None:
    ContainerClient.from_container_url(uri).upload_blob(name, data, overwrite=True)


def download(uri: str, name: str) -> bytes:
    return bytes(ContainerClient.from_container_url(uri).download_blob(name).readall())


def blob_names(uri: str) -> list[str]:
    return sorted(b.name for b in ContainerClient.from_container_url(uri).list_blobs())


class HubJobs:
    """A requests.Session signed with one policy, speaking to one hub's jobs routes."""

    def __init__(self, hub: BackgroundHub, policy: str | None = None) -> None:
        self.hub = hub
        self.session = requests.Session()
        cs = parse_connection_string(hub.connection_string_for(policy) if policy
                                     else hub.connection_string)
        self.session.headers["Authorization"] = generate_token(cs.host_name, cs.key_name,
                                                               cs.key)

    def call(self, method: str, path: str, body: Any = None, *, api: str | None = API
             ) -> requests.Response:
        params = {"api-version": api} if api else {}
        return self.session.request(method, self.hub.url + path, params=params, json=body,
                                    timeout=30)

    def create(self, **job: Any) -> dict[str, Any]:
        answer = self.call("POST", "/jobs/create", job)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def get(self, job_id: str) -> dict[str, Any]:
        answer = self.call("GET", f"/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def wait(self, job_id: str, deadline: float = 120.0) -> dict[str, Any]:
        """Poll until the job has ended (the deadline only keeps a broken hub from hanging)."""
        end = time.monotonic() + deadline
        while True:
            job = self.get(job_id)
            if job["status"] in FINISHED or time.monotonic() > end:
                return job
            time.sleep(0.05)

    def run_import(self, source: str, target: str, **extra: Any) -> dict[str, Any]:
        job = self.create(type="import", inputBlobContainerUri=source,
                          outputBlobContainerUri=target, **extra)
        return self.wait(job["jobId"])

    def run_export(self, target: str, *, exclude_keys: bool = False,
                   **extra: Any) -> dict[str, Any]:
        job = self.create(type="export", outputBlobContainerUri=target,
                          excludeKeysInExport=exclude_keys, **extra)
        return self.wait(job["jobId"])


@pytest.fixture
def hub() -> Iterator[BackgroundHub]:
    with start_background() as running:
        # Azurite on loopback has no transient faults: a storage fault fails a job at once
        # rather than after the retries a remote store deserves (3 s, then 5 s).
        running.hub.jobs.storage_retries = 0
        yield running


@pytest.fixture
def jobs(hub: BackgroundHub) -> HubJobs:
    return HubJobs(hub)


def lines_of(*objects: Any) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" if not isinstance(o, bytes) else o + b"\n"
                    for o in objects)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path
