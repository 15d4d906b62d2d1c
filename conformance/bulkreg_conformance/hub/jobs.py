"""Import and export jobs on the reference hub: ``POST /jobs/create``, ``GET /jobs``,
``GET /jobs/{id}``, ``DELETE /jobs/{id}`` (facts §6.2-6.3), run on a thread of their own.

What a job does to the registry and writes to its log is the oracle's business
(``oracle/jobs.py``); this module owns the job records and their life cycle (``enqueued`` ->
``running`` -> ``completed`` | ``failed`` | ``cancelled``), the one-active-job rule (a second job
gets 403 JobQuotaExceeded, CS ``CreateJobAsync``), the blob I/O (``blob.py``) and durability.

An import applies its lines in batches. Each batch is planned and written under the hub's
registry lock (other requests run between batches), and with ``--db`` its changes, the job's
progress and the batch's log lines are one SQLite transaction. The batch's log lines are then
staged as one block of importErrors.log (block id: the batch's last line number) and the block
list is committed every second and at the end. So the log never holds a line that was not
applied, and after a kill the restarted hub ends the job ``failed``, stages the last batch's
lines again from the database and commits every block up to the last applied line: no line is
applied twice or applied without its log line, and the failure reason says which lines were
applied.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from bulkreg_conformance.oracle.jobs import (
    ACTIVE,
    ImportLines,
    JobRequest,
    Judged,
    RequestError,
    export_lines,
    job_request,
    plan_lines,
    split_lines,
)
from bulkreg_conformance.oracle.model import Changes, Plan

if TYPE_CHECKING:
    from .app import Hub

__all__ = ["Jobs"]

_JSON = {"Content-Type": "application/json; charset=utf-8"}
_META = "job:"  # store meta rows: job:<id> the record, jobpending:<id> its last batch's log
_PENDING = "jobpending:"
BATCH_LINES = 1000  # lines applied per registry transaction (not a contract limit)
_BLOCK = 4 * 1024 * 1024  # export: bytes per staged block
_COMMIT_EVERY = 1.0  # seconds between commits of the log's block list


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _block_id(last_line: int) -> str:
    return f"{last_line:012d}"  # fixed width (required per blob), sorts in line order


def _applied(lines: int, blob: str) -> str:
    if lines == 0:
        return "No line was applied."
    return f"Lines 1-{lines} of {blob} were applied; lines after {lines} were not."


class _Stopped(Exception):
    """The job ends early: cancelled, or the hub is stopping."""


@dataclass
class Job:
    """One job's record. Fields change only under ``Jobs.lock``."""

    id: str
    request: JobRequest
    status: str = "enqueued"
    progress: int = 0
    start: str | None = None
    end: str | None = None
    failure: str | None = None
    lines: int = 0  # import: lines applied so far (all lines up to this number are done)
    eof: bool = False  # import: the whole input was read
    logged: int = 0  # import: the log is committed with the errors of lines 1..logged
    cancel: bool = False
    blocks: list[str] = field(default_factory=list)  # import: log blocks staged, in order

    def wire(self) -> dict[str, Any]:
        """The JobProperties the SDKs read (PY270 JobProperties; CS JobProperties: progress
        and excludeKeysInExport are never null)."""
        req = self.request
        importing = req.type == "import"
        return {
            "jobId": self.id,
            "startTimeUtc": self.start,
            "endTimeUtc": self.end,
            "type": req.type,
            "status": self.status,
            "progress": self.progress,
            "inputBlobContainerUri": req.input_uri,
            "inputBlobName": req.input_blob if importing else None,
            "outputBlobContainerUri": req.output_uri,
            "outputBlobName": req.output_blob,
            "excludeKeysInExport": req.exclude_keys,
            "storageAuthenticationType": "keyBased",
            "failureReason": self.failure,
            "includeConfigurations": False,
        }

    def record(self) -> bytes:
        return orjson.dumps({**self.wire(), "_lines": self.lines,
                             "_request": list(self.request)})

    @classmethod
    def from_record(cls, data: bytes) -> Job:
        raw = orjson.loads(data)
        return cls(raw["jobId"], JobRequest(*raw["_request"]), raw["status"], raw["progress"],
                   raw["startTimeUtc"], raw["endTimeUtc"], raw["failureReason"], raw["_lines"])


class Jobs:
    """The jobs of one hub; ``respond`` answers the /jobs routes."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.lock = threading.Condition()
        self.jobs: dict[str, Job] = {}  # in creation order
        self.batch_lines = BATCH_LINES
        self.hold_after: int | None = None  # test hook: hold an import after this many lines
        self.storage_retries = 2  # retries of a failed storage call (blob.py)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._recover()

    # -- HTTP -----------------------------------------------------------------------------------

    def respond(self, method: str, rest: tuple[str, ...], body: bytes) -> Plan:
        if method == "GET" and not rest:
            with self.lock:
                return _ok([job.wire() for job in self.jobs.values()])
        if method == "POST":
            if rest != ("create",):
                return self.hub.registry.error(404, "GenericNotFound",
                                               f"no such resource: /jobs/{'/'.join(rest)}")
            return self._create(body)
        job_id = rest[0]
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return self.hub.registry.error(404, "JobNotFound",
                                               f"The job with id '{job_id}' does not exist.")
            if method == "DELETE":
                self._cancel(job)
            return _ok(job.wire())

    def _create(self, body: bytes) -> Plan:
        try:
            parsed = orjson.loads(body or b"null")
        except orjson.JSONDecodeError:
            return self.hub.registry.error(400, "IotHubFormatError", "the body is not valid JSON")
        request = job_request(parsed)
        if isinstance(request, RequestError):
            return self.hub.registry.error(*request)
        with self.lock:
            if self._stopping:
                return self.hub.registry.error(503, "ServiceUnavailable", "the hub is stopping")
            if any(job.status in ACTIVE for job in self.jobs.values()):
                # facts §6.3: one active import/export job per hub, all tiers (DOC-BULK)
                return self.hub.registry.error(403, "JobQuotaExceeded",
                                               "Job quota has been exceeded.")
            job = Job(str(uuid.uuid4()), request)
            self.jobs[job.id] = job
        self._save(job)  # outside self.lock: the lock order is hub.lock, then self.lock
        wire = job.wire()
        self._thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                        name=f"bulkreg-job-{job.id[:8]}")
        self._thread.start()
        return _ok(wire)

    def _cancel(self, job: Job) -> None:
        """Cancel an active job (it stops before its next batch); an ended job is left as it
        is (decision: cancelling a finished job answers it unchanged)."""
        if job.status in ACTIVE:
            job.cancel = True
            self.lock.notify_all()

    # -- test hooks and shutdown ----------------------------------------------------------------

    def hold(self, after_lines: int | None) -> None:
        """Hold any import job once it has applied ``after_lines`` lines, until ``hold(None)``
        or a cancel (a test hook, like the fault knobs; also on /_bulkreg/admin)."""
        with self.lock:
            self.hold_after = after_lines
            self.lock.notify_all()

    _KNOBS: ClassVar[dict[str, int]] = {"holdAfterLines": 0, "batchLines": 1,
                                        "storageRetries": 0}  # name: minimum value

    def configure(self, values: Any) -> None:
        """The admin endpoint's ``{"jobs": {"holdAfterLines": N | null, "batchLines": N,
        "storageRetries": N}}``; ValueError names a bad value."""
        known = ", ".join(self._KNOBS)
        if type(values) is not dict:
            raise ValueError(f"jobs takes an object: {known}")
        for name, value in values.items():
            if name not in self._KNOBS:
                raise ValueError(f"unknown jobs knob {name!r}; known: {known}")
            nullable = name == "holdAfterLines" and value is None
            if not nullable and not (type(value) is int and value >= self._KNOBS[name]):
                raise ValueError(f"jobs knob {name} must be a whole number >= "
                                 f"{self._KNOBS[name]}")
        self.batch_lines = values.get("batchLines", self.batch_lines)
        self.storage_retries = values.get("storageRetries", self.storage_retries)
        if "holdAfterLines" in values:
            self.hold(values["holdAfterLines"])

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no job is active (tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the active job after its current batch (it ends failed, saying which lines
        were applied) and wait for its thread."""
        with self.lock:
            self._stopping = True
            self.lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        with self.lock:
            active = [j for j in self.jobs.values() if j.status in ACTIVE]
            return {"jobs": len(self.jobs), "active": active[0].id if active else None,
                    "linesApplied": active[0].lines if active else None,
                    "holdAfterLines": self.hold_after, "batchLines": self.batch_lines,
                    "storageRetries": self.storage_retries}

    # -- records --------------------------------------------------------------------------------

    def _save(self, job: Job, changes: Changes | None = None,
              pending: bytes | None = None) -> None:
        """Persist ``job``'s record (with ``changes`` and its last batch's log lines, in one
        transaction) and adopt ``changes``. Called under the hub's lock when ``changes``."""
        meta = {_META + job.id: job.record()}
        if pending is not None:
            meta[_PENDING + job.id] = pending
        hub = self.hub
        if changes is None:
            with hub.lock:
                hub.store.write(Changes({}, hub.registry.counter), meta)
            return
        hub.store.write(changes, meta)
        hub.registry.adopt(changes)

    def _update(self, job: Job, **values: Any) -> None:
        with self.lock:
            for name, value in values.items():
                setattr(job, name, value)
        self._save(job)

    def _recover(self) -> None:
        """Load the job records of a --db hub; a job still active was cut by a kill: it ends
        failed, its log completed up to the last applied line."""
        records = self.hub.store.load_meta(_META)
        pending = self.hub.store.load_meta(_PENDING)
        jobs = []
        for data in records.values():
            with contextlib.suppress(ValueError, KeyError, TypeError):  # not one of ours
                jobs.append(Job.from_record(data))
        for job in sorted(jobs, key=lambda j: (j.start or "", j.id)):
            self.jobs[job.id] = job
            if job.status not in ACTIVE:
                continue
            reason = "The hub stopped while the job was running (killed or crashed). "
            if job.request.type == "import":
                reason += _applied(job.lines, job.request.input_blob)
                reason += self._repair_log(job, pending.get(_PENDING + job.id))
            else:
                reason += f"{job.request.output_blob} was not written."
            job.status, job.end, job.failure = "failed", _now(), reason
            self._save(job)

    def _repair_log(self, job: Job, pending: bytes | None) -> str:
        """Commit every log block up to the job's last applied line (the last batch's block
        staged again from the database first): the log of exactly the applied lines."""
        try:
            from .blob import BlockBlob, StorageFailure  # noqa: PLC0415 - storage only when used
        except ImportError:
            return " importErrors.log could not be completed: azure-storage-blob is missing."
        log = BlockBlob(job.request.output_uri, job.request.output_blob,
                        retries=self.storage_retries)
        try:
            if pending:
                last, _, data = pending.partition(b"\n")
                log.stage(last.decode(), data)
            committed, staged = log.blocks()
            keep = sorted({b for b in committed + staged if b.isdigit() and int(b) <= job.lines})
            log.commit(keep)
        except StorageFailure as exc:
            return f" {job.request.output_blob} could not be completed: {exc.reason}"
        return f" Their errors are in {job.request.output_blob}."

    # -- running --------------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        self._update(job, status="running", start=_now())
        try:
            from .blob import StorageFailure  # noqa: PLC0415 - storage only when used
        except ImportError:
            self._finish(job, "failed", "azure-storage-blob is not installed: pip install "
                                        "'bulkreg[conform]'")
            return
        try:
            if job.request.type == "import":
                self._import(job)
            else:
                self._export(job)
        except StorageFailure as exc:
            self._finish(job, "failed", self._reason(job, exc.reason))
        except _Stopped:
            if job.cancel:
                self._finish(job, "cancelled", self._reason(job, "Cancelled."))
            else:
                self._finish(job, "failed", self._reason(job, "The hub was stopped during "
                                                              "the job."))
        except Exception as exc:  # a hub bug: the job fails, the hub keeps serving
            self._finish(job, "failed", self._reason(
                job, f"ServerError (500001): the job failed on {type(exc).__name__}."))
        else:
            self._finish(job, "completed", None, progress=100)  # not a contract limit: %

    def _reason(self, job: Job, what: str) -> str:
        """``what`` happened, then which lines were applied and what the log holds."""
        req = job.request
        what = what if what.endswith(".") else what + "."
        if req.type == "export":
            return f"{what} {req.output_blob} was not written."
        if job.eof and job.lines:
            applied = f"All {job.lines} lines of {req.input_blob} were applied."
        else:
            applied = _applied(job.lines, req.input_blob)
        if job.logged < job.lines:
            applied += (f" {req.output_blob} holds the errors of lines 1-{job.logged} only."
                        if job.logged else f" {req.output_blob} holds none of their errors.")
        return f"{what} {applied}"

    def _finish(self, job: Job, status: str, failure: str | None, **values: Any) -> None:
        self._update(job, status=status, end=_now(), failure=failure, **values)

    def _checkpoint(self, job: Job, wanted: int, *, holdable: bool = True) -> int:
        """Before a batch: raise _Stopped when cancelled or stopping; wait while held. How many
        lines the batch may take (a hold stops an import exactly at its line)."""
        with self.lock:
            while True:
                if job.cancel or self._stopping:
                    raise _Stopped
                hold = self.hold_after if holdable else None
                if hold is None or job.lines < hold:
                    return wanted if hold is None else min(wanted, hold - job.lines)
                self.lock.wait()

    def _import(self, job: Job) -> None:
        from .blob import BlockBlob, StorageFailure, open_input  # noqa: PLC0415

        req = job.request
        assert req.input_uri is not None
        log = BlockBlob(req.output_uri, req.output_blob, retries=self.storage_retries)
        log.reset()  # the log exists (empty: no error) and the SAS may write
        size, chunks = open_input(req.input_uri, req.input_blob, retries=self.storage_retries)
        counted = _Counted(chunks)
        lines = split_lines(counted)
        reader = ImportLines()
        staged = 0  # the errors of lines 1..staged are staged
        last_commit = time.monotonic()
        try:
            while True:
                batch = list(itertools.islice(lines, self._checkpoint(job, self.batch_lines)))
                if not batch:
                    with self.lock:
                        job.eof = True
                    break
                judged = reader.judge(batch)
                errors = self._apply(job, judged, min(99, counted.read * 100 // size))
                if errors:
                    job.blocks.append(_block_id(job.lines))
                    log.stage(job.blocks[-1], errors)
                staged = job.lines
                if time.monotonic() - last_commit >= _COMMIT_EVERY:
                    log.commit(job.blocks)
                    job.logged, last_commit = staged, time.monotonic()
        finally:  # however the job ends, the log gets every block staged so far
            with contextlib.suppress(StorageFailure):
                log.commit(job.blocks)
                job.logged = staged

    def _apply(self, job: Job, judged: list[Judged], progress: int) -> bytes:
        """Apply one batch under the hub's lock: registry changes, progress and the batch's
        log lines in one transaction. Returns the log lines (bytes, maybe empty)."""
        hub = self.hub
        with hub.lock:
            changes, results = plan_lines(hub.registry, judged)
            errors = b"".join(orjson.dumps(r.error) + b"\n" for r in results
                              if r.error is not None)
            last = judged[-1].line
            with self.lock:
                job.lines, job.progress = last, progress
            pending = _block_id(last).encode() + b"\n" + errors if errors else b""
            self._save(job, changes, pending)
        return errors

    def _export(self, job: Job) -> None:
        from .blob import BlockBlob  # noqa: PLC0415 - storage only when used

        req = job.request
        out = BlockBlob(req.output_uri, req.output_blob, retries=self.storage_retries)
        with self.hub.lock:
            snapshot = self.hub.registry.copy()  # copy-on-write: cheap under the lock
        total = max(1, len(snapshot))
        blocks: list[str] = []
        buffer: list[bytes] = []
        size = 0
        for written, line in enumerate(export_lines(snapshot, exclude_keys=req.exclude_keys), 1):
            buffer.append(line)
            size += len(line)
            if size >= _BLOCK:
                self._checkpoint(job, 1, holdable=False)
                blocks.append(_block_id(len(blocks)))
                out.stage(blocks[-1], b"".join(buffer))
                buffer, size = [], 0
                self._update(job, progress=min(99, written * 100 // total))
        if buffer:
            blocks.append(_block_id(len(blocks)))
            out.stage(blocks[-1], b"".join(buffer))
        self._checkpoint(job, 1, holdable=False)
        out.commit(blocks)  # devices.txt appears whole, or not at all


class _Counted:
    """Chunks passed through, counting the bytes read (for the job's progress)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.read += len(chunk)
            yield chunk


def _ok(body: Any) -> Plan:
    return Plan(200, dict(_JSON), body, Changes({}, 0))
