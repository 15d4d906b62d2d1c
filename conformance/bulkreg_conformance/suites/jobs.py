"""Jobs suite: import and export jobs against a real blob store, judged like the bulk call.

Runs when the run has a blob container (``--blob-container-uri``, a container SAS URI with read,
write, delete and list; or Azurite, which the runner starts for the built-in hub when it is
installed). Everything it does counts in the run's minimum coverage (``jobs:<what>``):

- ``lifecycle``: an import job of a file with good and bad lines is created, moves through the
  statuses JobProperties allows (SWG) and ends ``completed`` though lines failed (DOC-BULK);
- ``import-log``: its importErrors.log fails exactly the lines predicted (the validator for
  lines that cannot be read as a device, the oracle for what the registry's state decides), with
  the predicted errorCodes (observed), and the devices it applied read back as predicted;
- ``one-active``: a second job asked for while one is active is refused (DOC-BULK: one active
  import or export job per hub);
- ``cancel``: a job cancelled while active ends ``cancelled``;
- ``export``: an export writes every device of the run's prefix, with its twin, as the oracle
  holds it (keys left out on a live hub: ``excludeKeysInExport``);
- ``round-trip``: the exported lines, imported again under new ids, read back as the originals.

Safety rails: every id in what it imports carries the run's prefix (and joins the cleanup); a
live hub's export is read line by line and only the prefix's lines are kept; the container's
SAS signature never appears in any output; every blob it wrote is deleted at the end. On the
built-in hub the suite holds a job at its start (the hub's ``holdAfterLines`` test hook), so
the one-active and cancel cases never race (a bulkreg hub is told apart by its admin endpoint);
on a live hub a job that ends before the second call leaves the case not covered, with the
reason.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from bulkreg_conformance import decisions
from bulkreg_conformance.answers import code_name, member
from bulkreg_conformance.checks import Problem, canonical, same
from bulkreg_conformance.evidence import CONTRACT, DOCUMENTED, Evidence, blamed
from bulkreg_conformance.oracle.jobs import ACTIVE, FINISHED, match_log, predict_import
from bulkreg_conformance.session import STALE_ETAG

if TYPE_CHECKING:
    from bulkreg_conformance.client import Exchange
    from bulkreg_conformance.session import Session

__all__ = ["planned", "sas_signature"]

STATUSES = frozenset({"unknown", "enqueued", "running", "completed", "failed", "cancelled",
                      "scheduled", "queued"})  # SWG JobProperties.status
_OBSERVED = Evidence("observed")
# polls start at _POLL_FIRST and double up to the cap: a job that ends at once is seen at once,
# a live hub's long job costs one GET every 2 s
_POLL_FIRST, _POLL_BUILTIN, _POLL_LIVE = 0.05, 0.1, 2.0


def sas_signature(uri: str) -> str | None:
    """The ``sig`` of a SAS URI (a secret: kept out of every output)."""
    found = parse_qs(urlsplit(uri).query).get("sig")
    return found[0] if found else None


# -- the blob container ------------------------------------------------------------------------

class _Container:
    """The run's blobs in the given container (through azure-storage-blob)."""

    def __init__(self, uri: str, prefix: str) -> None:
        from azure.storage.blob import ContainerClient  # noqa: PLC0415 - only with jobs

        self.uri = uri
        self.client = ContainerClient.from_container_url(uri)
        self.prefix = prefix
        self.written: set[str] = set()

    def name(self, what: str) -> str:
        return f"{self.prefix}{what}"

    def put(self, name: str, data: bytes) -> None:
        self.written.add(name)
        self.client.upload_blob(name, data, overwrite=True)

    def job(self, job: dict[str, Any]) -> dict[str, Any]:
        """A job on this container: the blobs it names are the run's, deleted at the end."""
        for key in ("inputBlobName", "outputBlobName"):
            if job.get(key):
                self.written.add(job[key])
        return {**job, "outputBlobContainerUri": self.uri,
                **({"inputBlobContainerUri": self.uri} if job["type"] == "import" else {})}

    def lines(self, name: str) -> Iterator[bytes]:
        """The blob's lines, streamed (a live hub's export may be large)."""
        self.written.add(name)
        rest = b""
        for chunk in self.client.download_blob(name).chunks():
            rest += chunk
            *whole, rest = rest.split(b"\n")
            yield from whole
        if rest:
            yield rest

    def exists(self, name: str) -> bool:
        return bool(self.client.get_blob_client(name).exists())

    def clean(self) -> None:
        for name in sorted(self.written):
            with contextlib.suppress(Exception):  # gone already, or never written
                self.client.delete_blob(name)


# -- the hub's jobs routes, through the run's client -------------------------------------------

def _call(s: Session, method: str, path: str, body: Any = None) -> tuple[Exchange, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    exchange = s.client.request(method, path, body=data)
    s.shape(exchange, data.decode() if data else None)
    return exchange, exchange.json()


def _create(s: Session, job: dict[str, Any]) -> tuple[Exchange, Any]:
    return _call(s, "POST", "/jobs/create", {**job, "storageAuthenticationType": "keyBased"})


def _hold(s: Session, after: int | None) -> bool:
    """On a bulkreg hub (its admin endpoint answers), hold import jobs after ``after`` lines
    (None: release); False elsewhere (a live hub's jobs are slow enough not to race)."""
    exchange, _ = _call(s, "POST", "/_bulkreg/admin", {"jobs": {"holdAfterLines": after}})
    return exchange.status == 200


def _wait(s: Session, job_id: str, seen: list[str]) -> dict[str, Any] | None:
    """Poll the job until it ends (or the run's time does); its statuses go to ``seen``."""
    cap = _POLL_BUILTIN if s.settings.endpoint is None else _POLL_LIVE
    poll = _POLL_FIRST
    while not s.out_of_time():
        exchange, body = _call(s, "GET", f"/jobs/{job_id}")
        if exchange.status != 200 or not isinstance(body, dict):
            return None
        status = str(member(body, "status"))
        seen.append(status)
        if status in FINISHED:
            return body
        time.sleep(poll)
        poll = min(poll * 2, cap)
    return None


# -- the files ---------------------------------------------------------------------------------

def _import_file(s: Session, tag: str) -> tuple[list[bytes], list[str]]:
    """Good and bad lines, every id in the prefix: (the lines, the ids they name)."""
    p = f"{s.client.prefix}{tag}"
    lines: list[Any] = [
        {"id": f"{p}a", "importMode": "create", "tags": {"site": "A"}},
        {"id": f"{p}b"},  # the import default, createOrUpdate
        {"id": f"{p}c", "importMode": "createOrUpdate", "status": "disabled",
         "statusReason": "imported disabled"},
        {"id": f"{p}exists", "importMode": "create"},  # DeviceAlreadyExists
        {"id": f"{p}missing", "importMode": "update"},  # DeviceNotFound
        {"id": f"{p}a", "importMode": "delete"},  # a second line for a: DeviceDefinedMultiple…
        f'{{"id": "{p}broken", "importMode": "create",',  # IotHubFormatError
        {"id": f"{p}enum", "importMode": "create",
         "authentication": {"type": "SELF_SIGNED"}},  # DeserializationError
        {"id": f"{p}bad id", "importMode": "create"},  # ArgumentInvalid
        "",  # a blank line: skipped
        {"id": f"{p}stale", "importMode": "updateIfMatchETag", "eTag": STALE_ETAG},
        {"id": f"{p}d", "importMode": "create", "properties": {"desired": {"rate": 3}}},
    ]
    data = [line.encode() if isinstance(line, str) else json.dumps(line).encode()
            for line in lines]
    ids = [f"{p}{n}" for n in ("a", "b", "c", "exists", "missing", "broken", "enum", "bad id",
                               "stale", "d")]
    return data, ids


# -- the suite ---------------------------------------------------------------------------------

def planned(s: Session) -> None:
    uri = s.settings.blob_container_uri
    if not uri:
        return
    store = _Container(uri, s.client.prefix)
    try:
        imported = import_job(s, store)
        one_active_and_cancel(s, store)
        if imported:
            export_and_round_trip(s, store, imported)
    finally:
        with contextlib.suppress(Exception):
            _hold(s, None)
        store.clean()


def import_job(s: Session, store: _Container) -> list[str]:
    """The lifecycle and the log of one import job; the ids it applied."""
    tag = "j-"
    p = f"{s.client.prefix}{tag}"
    setup = s.bulk_step([{"id": f"{p}exists", "importMode": "create"},
                         {"id": f"{p}stale", "importMode": "create"}], readback=False)
    lines, ids = _import_file(s, tag)
    s.client.track(ids)
    predicted = predict_import(s.mirror.oracle, [line + b"\n" for line in lines])
    store.put(store.name("devices.txt"), b"\n".join(lines) + b"\n")
    exchange, job = _create(s, store.job({"type": "import",
                                          "inputBlobName": store.name("devices.txt"),
                                          "outputBlobName": store.name("importErrors.log")}))
    if exchange.status != 200 or not isinstance(job, dict) or not member(job, "jobId"):
        s.judge("jobs-lifecycle", [Problem("jobs-lifecycle", f"POST /jobs/create (import): "
                                           f"expected 200 and JobProperties, got "
                                           f"{exchange.status}", CONTRACT)],
                exchanges=[setup, exchange])
        s.coverage.miss("the import job was not created", "jobs:lifecycle", "jobs:import-log")
        return []
    seen: list[str] = [str(member(job, "status"))]
    done = _wait(s, str(member(job, "jobId")), seen)
    if done is None:
        s.coverage.miss("the import job did not end within the run's time", "jobs:lifecycle",
                        "jobs:import-log")
        return []
    s.judge("jobs-lifecycle", _lifecycle(job, done, seen, "import"), exchanges=[exchange])
    s.coverage.cover("jobs:lifecycle")
    log = [json.loads(line) for line in store.lines(store.name("importErrors.log"))
           if line.strip()]
    s.judge("jobs-import-log", _log_problems(lines, log, predicted.log),
            payload=b"\n".join(lines).decode("utf-8", "replace"), exchanges=[exchange])
    s.mirror.oracle = predicted.registry
    applied = [i for i in ids if predicted.registry.device(i) is not None and
               s.mirror.readable(i)]
    if all(s.read(i, exchange) for i in applied):
        s.coverage.cover("jobs:import-log")
    return [i for i in applied if i not in {f"{p}exists", f"{p}stale"}]


def _lifecycle(created: dict[str, Any], done: dict[str, Any], seen: list[str],
               kind: str) -> list[Problem]:
    problems = []
    strange = sorted(set(seen) - STATUSES)
    if strange:
        problems.append(Problem("jobs-lifecycle", f"statuses outside JobProperties' enum: "
                                f"{strange}", CONTRACT))
    if str(member(created, "type")) != kind or str(member(done, "type")) != kind:
        problems.append(Problem("jobs-lifecycle", f"type: expected {kind!r}, got "
                                f"{member(done, 'type')!r}", CONTRACT))
    if member(done, "jobId") != member(created, "jobId"):
        problems.append(Problem("jobs-lifecycle", "the jobId changed", CONTRACT))
    if member(done, "status") != "completed":
        problems.append(Problem("jobs-lifecycle", f"expected completed (failed lines are "
                                f"logged, the job completes), got {member(done, 'status')!r}: "
                                f"{member(done, 'failureReason')}", DOCUMENTED))
    if not member(done, "endTimeUtc"):
        problems.append(Problem("jobs-lifecycle", "a finished job without endTimeUtc",
                                _OBSERVED))
    return problems


def _log_problems(lines: list[bytes], log: list[Any], predicted: list[Any]) -> list[Problem]:
    """The endpoint's importErrors.log against the prediction, line by line."""
    got: dict[int | None, str | None] = {}
    problems = []
    for number, entry in match_log(lines, [e for e in log if isinstance(e, dict)]):
        if number is None:
            problems.append(Problem("jobs-import-log", f"a log line reports no line of the "
                                    f"file: {json.dumps(entry)[:200]}", DOCUMENTED))
            continue
        got[number] = code_name(member(entry, "errorCode"))
    want = {r.line: code_name(r.error.get("errorCode") if r.error else None)
            for r in predicted if r.error is not None}
    for number in sorted(set(want) | {n for n in got if n is not None}):
        if number not in got:
            problems.append(Problem("jobs-import-log", f"line {number}: expected "
                                    f"{want[number]} in the log, the line was applied",
                                    DOCUMENTED))
        elif number not in want:
            problems.append(Problem("jobs-import-log", f"line {number}: expected applied, the "
                                    f"log says {got[number]}", DOCUMENTED))
        elif got[number] != want[number]:
            problems.append(Problem("jobs-import-log", f"line {number}: expected "
                                    f"{want[number]}, the log says {got[number]}",
                                    blamed(DOCUMENTED, decisions.evidence("error-codes"))))
    return problems


def one_active_and_cancel(s: Session, store: _Container) -> None:
    """A second job while one is active is refused; the active one, cancelled, ends so."""
    tag = "k-"
    lines = [json.dumps({"id": f"{s.client.prefix}{tag}{n}", "importMode": "create"}).encode()
             for n in range(20)]
    s.client.track(json.loads(line)["id"] for line in lines)
    store.put(store.name("held.txt"), b"\n".join(lines) + b"\n")
    held = _hold(s, 0)
    exchange, job = _create(s, store.job({"type": "import",
                                          "inputBlobName": store.name("held.txt"),
                                          "outputBlobName": store.name("held.log")}))
    job_id = str(member(job, "jobId")) if isinstance(job, dict) else ""
    if exchange.status != 200 or not job_id:
        s.coverage.miss("the job to hold could not be created", "jobs:one-active",
                        "jobs:cancel")
        return
    second, answer = _create(s, store.job({"type": "export",
                                           "outputBlobName": store.name("second.txt"),
                                           "excludeKeysInExport": True}))
    first, state = _call(s, "GET", f"/jobs/{job_id}")
    active = isinstance(state, dict) and member(state, "status") in ACTIVE
    if second.status < 300 and isinstance(answer, dict) and member(answer, "jobId"):
        _cancel_quietly(s, str(member(answer, "jobId")))
        if active:
            s.judge("jobs-one-active", [Problem(
                "jobs-one-active", "a second job was accepted while one was active",
                DOCUMENTED)], exchanges=[second, first])
            s.coverage.cover("jobs:one-active")
        else:
            s.coverage.miss("the first job ended before the second was asked for",
                            "jobs:one-active")
    else:
        code = code_name(_error_code(second))
        s.judge("jobs-one-active", [] if code in {"JobQuotaExceeded", None} else [Problem(
            "jobs-one-active", f"refused with {code}, expected JobQuotaExceeded",
            _OBSERVED)], exchanges=[second])
        s.coverage.cover("jobs:one-active")
    _, state = _call(s, "GET", f"/jobs/{job_id}")
    cancel, after = _call(s, "DELETE", f"/jobs/{job_id}")
    if held:
        _hold(s, None)
    seen: list[str] = []
    done = _wait(s, job_id, seen)
    if done is None:
        s.coverage.miss("the cancelled job did not end within the run's time", "jobs:cancel")
        return
    ended = {member(state, "status"), member(after, "status")} & set(FINISHED)
    if not held and ended and member(done, "status") != "cancelled":
        s.coverage.miss("the job ended before it was cancelled", "jobs:cancel")
        return
    problems = [] if cancel.status < 300 else [Problem(
        "jobs-cancel", f"DELETE /jobs/{{id}} of an active job: {cancel.status}", _OBSERVED)]
    if member(done, "status") != "cancelled":
        problems.append(Problem("jobs-cancel", f"a cancelled job ended "
                                f"{member(done, 'status')!r}", _OBSERVED))
    s.judge("jobs-cancel", problems, exchanges=[cancel])
    s.coverage.cover("jobs:cancel")
    # what the cancelled job may have applied is unknown: its devices are re-synchronised
    s.resync({json.loads(line)["id"] for line in lines})


def _cancel_quietly(s: Session, job_id: str) -> None:
    with contextlib.suppress(Exception):
        _call(s, "DELETE", f"/jobs/{job_id}")
        _wait(s, job_id, [])


def _error_code(exchange: Exchange) -> str | None:
    from bulkreg_conformance.answers import error_code  # noqa: PLC0415

    return error_code(exchange)


def export_and_round_trip(s: Session, store: _Container, imported: list[str]) -> None:
    """Export the hub; the prefix's lines must be the oracle's devices; imported again under
    new ids, they read back as the originals."""
    live = s.settings.endpoint is not None
    exchange, job = _create(s, store.job({"type": "export",
                                          "outputBlobName": store.name("export.txt"),
                                          "excludeKeysInExport": live}))
    job_id = str(member(job, "jobId")) if isinstance(job, dict) else ""
    done = _wait(s, job_id, []) if exchange.status == 200 and job_id else None
    if done is None or member(done, "status") != "completed":
        s.judge("jobs-export", [Problem("jobs-export", f"the export did not complete: "
                                        f"{exchange.status} {member(done, 'status')}",
                                        DOCUMENTED)], exchanges=[exchange])
        s.coverage.miss("the export did not complete", "jobs:export", "jobs:round-trip")
        return
    prefix = s.client.prefix
    exported: dict[str, dict[str, Any]] = {}
    for line in store.lines(store.name("export.txt")):
        if prefix.encode() in line:  # the prefix's lines only: a live hub exports them all
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict) and str(value.get("id", "")).startswith(prefix):
                    exported[value["id"]] = value
    s.judge("jobs-export", _export_problems(s, imported, exported, live), exchanges=[exchange])
    s.coverage.cover("jobs:export")
    _round_trip(s, store, [exported[i] for i in imported if i in exported])


def _export_problems(s: Session, ids: list[str], exported: dict[str, dict[str, Any]],
                     live: bool) -> list[Problem]:
    problems = []
    for device_id in ids:
        want = s.mirror.oracle.device(device_id)
        twin = s.mirror.oracle.twin(device_id) or {}
        got = exported.get(device_id)
        if want is None:
            continue
        if got is None:
            problems.append(Problem("jobs-export", f"{device_id!r} is not in the export",
                                    DOCUMENTED))
            continue
        pairs = [("status", got.get("status"), want.get("status")),
                 ("statusReason", got.get("statusReason"), want.get("statusReason")),
                 ("tags", got.get("tags"), twin.get("tags")),
                 ("desired", member(got.get("properties"), "desired"),
                  member(twin.get("properties"), "desired")),
                 ("authentication.type", member(got.get("authentication"), "type"),
                  member(want.get("authentication"), "type"))]
        if live:  # excludeKeysInExport
            keys = member(member(got.get("authentication"), "symmetricKey"), "primaryKey")
            if keys:
                problems.append(Problem("jobs-export", f"{device_id!r}: keys exported with "
                                        f"excludeKeysInExport", DOCUMENTED))
        problems += [Problem("jobs-export", f"{device_id!r}: {name}: expected "
                             f"{json.dumps(canonical(w))[:120]}, got "
                             f"{json.dumps(canonical(g))[:120]}", DOCUMENTED)
                     for name, g, w in pairs if not same(g, w)]
    return problems


def _round_trip(s: Session, store: _Container, lines: list[dict[str, Any]]) -> None:
    prefix = s.client.prefix
    renamed = {line["id"]: prefix + "rt-" + line["id"][len(prefix):] for line in lines}
    again = [{**{k: v for k, v in line.items() if k not in {"eTag", "twinETag"}},
              "id": renamed[line["id"]]} for line in lines]
    if s.settings.endpoint is not None:  # keys were left out: the hub makes new ones
        again = [{**line, "authentication": {"type": member(line.get("authentication"),
                                                               "type") or "sas"}}
                 for line in again]
    s.client.track(renamed.values())
    data = [json.dumps(line).encode() for line in again]
    predicted = predict_import(s.mirror.oracle, [line + b"\n" for line in data])
    store.put(store.name("round-trip.txt"), b"\n".join(data) + b"\n")
    exchange, job = _create(s, store.job({"type": "import",
                                          "inputBlobName": store.name("round-trip.txt"),
                                          "outputBlobName": store.name("round-trip.log")}))
    job_id = str(member(job, "jobId")) if isinstance(job, dict) else ""
    done = _wait(s, job_id, []) if exchange.status == 200 and job_id else None
    if done is None:
        s.coverage.miss("the round trip's import did not end", "jobs:round-trip")
        return
    s.judge("jobs-round-trip", [] if member(done, "status") == "completed" and not
            predicted.log else [Problem("jobs-round-trip", f"the re-import ended "
                                        f"{member(done, 'status')!r}", DOCUMENTED)],
            exchanges=[exchange])
    s.mirror.oracle = predicted.registry
    if all(s.read(new, exchange) for new in renamed.values()):
        s.coverage.cover("jobs:round-trip")
