"""The jobs suite of `bulkreg conform` (issue 14, item 7): against the reference hub and a real
blob store (Azurite) it reaches every ``jobs:`` item and passes; against hubs whose jobs break
one promise each it fails naming the right check; its blobs are gone afterwards and the
container's SAS signature appears in no output."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from werkzeug.wrappers import Request

from bulkreg_conformance.azurite import Azurite, find_azurite, start_azurite
from bulkreg_conformance.runner import Result, Settings, run
from bulkreg_conformance.suites.jobs import sas_signature

from .conftest import Served, call_hub
from .hostile import conform

Json = Any


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    if find_azurite() is None:
        pytest.skip("Azurite is not installed: run `npm ci` in tests/azurite (.ci/run does)")
    with start_azurite(tmp_path_factory.mktemp("azurite")) as running:
        yield running


_names = iter(range(1, 10**6))


def _container(azurite: Azurite) -> str:
    return azurite.container_uri(f"suite{next(_names):04d}")


def _run(served: Served, uri: str, suites: tuple[str, ...] = ("jobs",)) -> Result:
    return run(Settings(endpoint=served.url, connection_string=served.connection_string,
                        suites=suites, seed=1, max_examples=0, blob_container_uri=uri,
                        time_budget=60.0))


def _blobs(uri: str) -> list[str]:
    return sorted(b.name for b in ContainerClient.from_container_url(uri).list_blobs())


def test_the_reference_hub_passes_every_jobs_item(serve: Callable[..., Served],
                                                  azurite: Azurite) -> None:
    uri = _container(azurite)
    result = _run(serve(), uri)
    assert result.failures == [], [f.to_dict(False) for f in result.failures]
    assert result.verdict == "PASS", result.coverage.missing()
    assert {i for i in result.coverage.required if i.startswith("jobs:")} == {
        "jobs:lifecycle", "jobs:import-log", "jobs:one-active", "jobs:cancel", "jobs:export",
        "jobs:round-trip"}
    for check in ("jobs-lifecycle", "jobs-import-log", "jobs-one-active", "jobs-cancel",
                  "jobs-export", "jobs-round-trip"):
        assert result.tally[check].passed, check
    assert _blobs(uri) == []  # every blob the suite wrote is gone


def test_the_sas_signature_never_appears(serve: Callable[..., Served], azurite: Azurite,
                                         tmp_path: Path) -> None:
    uri = _container(azurite)
    served = serve(_broken_log)  # a failure, so reports carry exchanges
    report = tmp_path / "r.json"
    ran = conform("--endpoint", served.url, "--connection-string", served.connection_string,
                  "--suite", "jobs", "--blob-container-uri", uri, "--report-json", str(report))
    signature = sas_signature(uri)
    assert signature
    assert ran.returncode == 1, ran.stdout + ran.stderr
    for text in (ran.stdout, ran.stderr, report.read_text(encoding="utf-8")):
        assert signature not in text
        assert signature.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=") not in text


# -- broken hubs ---------------------------------------------------------------------------------

def _jobs_middleware(after: Callable[[Request, int, Json], tuple[int, Json]]
                     ) -> Callable[[Any], Any]:
    """A broken hub: ``after`` rewrites the answers of the jobs routes."""
    def wrap(hub: Any) -> Any:
        def app(environ: dict[str, Any], start_response: Any) -> Any:
            from werkzeug.wrappers import Response  # noqa: PLC0415

            req = Request(environ)
            data = req.get_data()
            status_line, headers, body = call_hub(hub, environ, data)
            if not req.path.startswith("/jobs"):
                start_response(status_line, headers)
                return [body]
            status, out = after(req, int(status_line.split()[0]),
                                json.loads(body) if body.strip() else None)
            return Response(json.dumps(out), status=status,
                            content_type="application/json")(environ, start_response)
        return app
    return wrap


_lock = threading.Lock()


def _on_completed(change: Callable[[ContainerClient, dict[str, Any]], None]
                  ) -> Callable[[Request, int, Json], tuple[int, Json]]:
    """When a job is first seen completed, ``change`` its output blob (once per job)."""
    done: set[str] = set()

    def after(req: Request, status: int, body: Json) -> tuple[int, Json]:
        if req.method == "GET" and isinstance(body, dict) and body.get("status") == "completed":
            with _lock:
                if body["jobId"] not in done:
                    done.add(body["jobId"])
                    change(ContainerClient.from_container_url(body["outputBlobContainerUri"]),
                           body)
        return status, body
    return after


def _empty_log(container: ContainerClient, job: dict[str, Any]) -> None:
    if job["type"] == "import" and job.get("outputBlobName"):
        container.upload_blob(job["outputBlobName"], b"", overwrite=True)


def _export_without_tags(container: ContainerClient, job: dict[str, Any]) -> None:
    if job["type"] == "export" and job.get("outputBlobName"):
        lines = container.download_blob(job["outputBlobName"]).readall().splitlines()
        kept = [json.dumps({k: v for k, v in json.loads(x).items() if k != "tags"}).encode()
                for x in lines if x.strip()]
        container.upload_blob(job["outputBlobName"], b"\n".join(kept) + b"\n", overwrite=True)


def _broken_log(hub: Any) -> Any:
    return _jobs_middleware(_on_completed(_empty_log))(hub)


def _second_job_accepted(req: Request, status: int, body: Json) -> tuple[int, Json]:
    if req.method == "POST" and status == 403:
        return 200, {"jobId": "fake-second-job", "type": "export", "status": "enqueued"}
    return status, body


def _swallow_cancel(hub: Any) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        from werkzeug.wrappers import Response  # noqa: PLC0415

        req = Request(environ)
        if req.method == "DELETE" and req.path.startswith("/jobs/"):
            return Response(json.dumps({"status": "running"}), status=200,
                            content_type="application/json")(environ, start_response)
        return hub(environ, start_response)
    return app


BROKEN: dict[str, tuple[Callable[[Any], Any], str, str]] = {
    # name: (the broken hub, the check that must break, failed or deviation)
    "importErrors.log left empty": (_broken_log, "jobs-import-log", "failed"),
    "a second job accepted while one is active": (
        _jobs_middleware(_second_job_accepted), "jobs-one-active", "failed"),
    "a cancel that does not cancel": (_swallow_cancel, "jobs-cancel", "deviation"),
    "an export without tags": (_jobs_middleware(_on_completed(_export_without_tags)),
                               "jobs-export", "failed"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_job_fails_naming_the_check(serve: Callable[..., Served], azurite: Azurite,
                                             name: str) -> None:
    wrap, check, verdict = BROKEN[name]
    result = _run(serve(wrap), _container(azurite))
    broken = {n for n, t in result.tally.items() if t.failed or t.deviation}
    assert check in broken, (broken, [f.to_dict(False) for f in result.failures])
    assert broken <= {check, "jobs-round-trip", "readback-device", "readback-twin"}, broken
    tally = result.tally[check]
    assert (tally.failed if verdict == "failed" else tally.deviation), tally
