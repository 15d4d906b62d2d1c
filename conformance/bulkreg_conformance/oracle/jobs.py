"""Import and export jobs as a model: lines in, registry changes and importErrors.log lines out.

Pure, like the rest of the oracle: no HTTP, no storage, no clock of its own. The reference hub's
job runner (``hub/jobs.py``) reads and writes the blobs and persists what this module plans; a
conformance suite predicts with the same functions what any hub's job must write.

How a line is judged (facts §6.1-6.3, DOC-BULK):

- The validator's import checks, across the whole file (``duplicate-id`` counts every earlier
  line), decide the state-independent half: a line with an error finding fails with the code of
  its first error finding; a blank line is skipped (a warning, no log line); any other line is
  applied. ``bulkreg lint --mode import`` runs the same checks, so it predicts these lines.
- The lines left are applied in file order as the bulk call applies an entry
  (``Registry.plan_entries``), the import default ``createOrUpdate`` and ``createOrUpdateIfMatch
  ETag`` included: DeviceNotFound, ModuleNotFound, DeviceAlreadyExists, ModuleAlreadyExistsOnDevice
  and PreconditionFailed depend on the registry, so the oracle predicts them, not lint.
- Each failed line writes one importErrors.log line with a numeric errorCode: a line that cannot
  be read as an ExportImportDevice (IotHubFormatError, DeserializationError) as the service writes
  it, ``{"errorCode":400012,"errorStatus":"Invalid device format in line: <line>. <why>"}``
  (IMPORT-LOG); any other as ``{"deviceId":…,"errorCode":404001,"errorStatus":…}``
  (azure-functions-host#1641), with ``moduleId`` when the line names one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import orjson

import bulkreg_schema
from bulkreg_validator import Finding
from bulkreg_validator._checks import Context
from bulkreg_validator._import import _ImportState

from .model import Changes, Record, Registry, device_etag, twin_etag

__all__ = [
    "ACTIVE",
    "DEVICES_BLOB",
    "ERRORS_BLOB",
    "ERROR_NUMBERS",
    "FINISHED",
    "MAX_LINE",
    "ImportLines",
    "ImportOutcome",
    "JobRequest",
    "Judged",
    "LineResult",
    "RequestError",
    "code_name",
    "export_line",
    "export_lines",
    "job_request",
    "match_log",
    "plan_lines",
    "predict_import",
    "split_lines",
]

ACTIVE = ("enqueued", "running")
FINISHED = ("completed", "failed", "cancelled")
DEVICES_BLOB = "devices.txt"  # CS CommonConstants.ExportDevicesBlobName; DOC-BULK import input
ERRORS_BLOB = "importErrors.log"  # CS CommonConstants.ImportDevicesOutputBlobName
# decision: a line longer than this fails as IotHubFormatError without being held whole; it is
# also the validator's fast-path limit and the hub's body limit (no valid device comes near).
MAX_LINE = 16 * 1024 * 1024
_ECHO = 4 * 1024  # bytes of a line echoed in a format error's errorStatus

# The numeric errorCodes an import log carries (facts §3.3, §6.1: CS ErrorCode.cs): every code
# the validator's rules and the per-mode handlers can give a line, and the job-level ones.
ERROR_NUMBERS = {
    "InvalidProtocolVersion": 400001, "ArgumentInvalid": 400004, "ArgumentNull": 400005,
    "IotHubFormatError": 400006, "BlobContainerValidationError": 400008,
    "DeviceDefinedMultipleTimes": 400011, "DeserializationError": 400012,
    "JobQuotaExceeded": 403003, "DeviceNotFound": 404001, "JobNotFound": 404002,
    "ModuleNotFound": 404010, "DeviceAlreadyExists": 409001,
    "ModuleAlreadyExistsOnDevice": 409301, "PreconditionFailed": 412001,
    "TooManyDevices": 413002, "ServerError": 500001,
}
_NAMES = {number: name for name, number in ERROR_NUMBERS.items()}
# codes meaning "the line is not an ExportImportDevice": logged as the service logs them (no id)
_FORMAT_CODES = frozenset({"IotHubFormatError", "DeserializationError"})

_CONTRACT = bulkreg_schema.contract()


def code_name(code: Any) -> str | None:
    """An errorCode as its name, whether a log line carries the number or the name."""
    if isinstance(code, bool) or code is None:
        return None
    if isinstance(code, int):
        return _NAMES.get(code, str(code))
    return str(code)


# --- the job request (POST /jobs/create) -------------------------------------------------------


class JobRequest(NamedTuple):
    type: str  # "import" | "export"
    input_uri: str | None
    input_blob: str  # import: the devices blob to read (default devices.txt)
    output_uri: str
    # export: the devices blob written (default devices.txt); import: the error log (default
    # importErrors.log; ARM's importDevices: "the blob name to use for storing the status")
    output_blob: str
    exclude_keys: bool


class RequestError(NamedTuple):
    status: int
    code: str
    message: str


def _member(body: dict[str, Any], name: str) -> Any:
    """A member by its wire name, matched case-insensitively like the service's JSON reader
    (Node sends storageAuthenticationType 'IdentityBased')."""
    if name in body:
        return body[name]
    lowered = name.lower()
    return next((v for k, v in body.items() if isinstance(k, str) and k.lower() == lowered), None)


def _container_uri(value: Any, name: str) -> str | RequestError:
    if value is None or value == "":
        return RequestError(400, "ArgumentNull", f"{name} is required for this job type")
    if type(value) is not str or not value.lower().startswith(("https://", "http://")):
        return RequestError(400, "ArgumentInvalid",
                            f"{name} must be the https URI of a blob container with a SAS token")
    return value


def job_request(body: Any) -> JobRequest | RequestError:
    """The job a ``POST /jobs/create`` body asks for, or why it is refused (before any storage
    is touched: a storage problem fails the job, it does not refuse the request)."""
    if type(body) is not dict:
        return RequestError(400, "ArgumentInvalid", "the body must be a JobProperties object")
    kind = _member(body, "type")
    kind = kind.lower() if type(kind) is str else kind
    if kind not in ("import", "export"):
        return RequestError(400, "ArgumentInvalid",
                            f"job type {kind!r} is not supported here: use import or export")
    auth = _member(body, "storageAuthenticationType")
    if auth is not None and (type(auth) is not str or auth.lower() != "keybased"):
        # decision: no managed identity here; only container SAS URIs (keyBased) reach storage
        return RequestError(400, "ArgumentInvalid",
                            f"storageAuthenticationType {auth!r} is not supported: this hub has "
                            "no managed identity; give container SAS URIs (keyBased)")
    if _member(body, "includeConfigurations") is True:
        return RequestError(400, "ArgumentInvalid",
                            "includeConfigurations: this hub has no configurations")
    output = _container_uri(_member(body, "outputBlobContainerUri"), "outputBlobContainerUri")
    if isinstance(output, RequestError):
        return output
    source: str | None = None
    if kind == "import":
        given = _container_uri(_member(body, "inputBlobContainerUri"), "inputBlobContainerUri")
        if isinstance(given, RequestError):
            return given
        source = given
    names = []
    for member, default in (("inputBlobName", DEVICES_BLOB),
                            ("outputBlobName", DEVICES_BLOB if kind == "export" else ERRORS_BLOB)):
        value = _member(body, member)
        if value is not None and (type(value) is not str or not value.strip()):
            return RequestError(400, "ArgumentInvalid", f"{member} must be a blob name")
        names.append(value or default)
    exclude = _member(body, "excludeKeysInExport")
    if exclude is not None and type(exclude) is not bool:
        return RequestError(400, "ArgumentInvalid", "excludeKeysInExport must be true or false")
    return JobRequest(kind, source, names[0], output, names[1], exclude is True)


# --- import: reading and judging lines ----------------------------------------------------------


def split_lines(chunks: Iterable[bytes], limit: int = MAX_LINE) -> Iterator[bytes | None]:
    """The lines of a stream given in chunks, as a binary file iterates them (split after
    b"\\n", no empty line after a final newline), holding one line at a time. A line longer
    than ``limit`` is skipped as it streams by and given as None."""
    pending: list[bytes] = []
    size = 0
    skipping = False
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                piece = chunk[start:]
                if piece and not skipping:
                    size += len(piece)
                    if size > limit:
                        skipping, pending, size = True, [], 0
                    else:
                        pending.append(piece)
                break
            piece = chunk[start:end + 1]
            if skipping or size + len(piece) > limit:
                yield None
            else:
                pending.append(piece)
                yield b"".join(pending)
            pending, size, skipping = [], 0, False
            start = end + 1
    if skipping:
        yield None
    elif pending:
        yield b"".join(pending)


class LineResult(NamedTuple):
    line: int  # 1-based line number in the input blob
    error: dict[str, Any] | None  # its importErrors.log object; None: applied, or a blank line


def _log_error(code: str, text: str, data: bytes, value: Any) -> dict[str, Any]:
    number = ERROR_NUMBERS.get(code, ERROR_NUMBERS["ArgumentInvalid"])
    if code in _FORMAT_CODES:
        echo = data[:_ECHO].decode("utf-8", "replace") + ("…" if len(data) > _ECHO else "")
        return {"errorCode": number,
                "errorStatus": f"Invalid device format in line: {echo}. {text}"}
    out: dict[str, Any] = {}
    if type(value) is dict and type(value.get("id")) is str:
        out["deviceId"] = value["id"]
        if type(value.get("moduleId")) is str and value["moduleId"]:
            out["moduleId"] = value["moduleId"]
    out.update(errorCode=number, errorStatus=text)
    return out


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # integers beyond 64 bits: the stdlib keeps them
        try:
            return json.loads(data)
        except ValueError:
            return None


class Judged(NamedTuple):
    """One line after the validator: its first error finding, or its value to apply."""

    line: int
    data: bytes  # without its line ending
    error: Finding | None  # the first error finding
    blank: bool  # a blank line: skipped, no log line
    value: Any  # the line's object, for a line with no error (else None)


class ImportLines:
    """One import file's lines, judged batch by batch in file order and applied to a registry.

    The validator's import state (the ids seen, for duplicate-id) lives across batches, so a
    file checked here in batches gets exactly the findings ``bulkreg lint`` gives it whole."""

    def __init__(self, *, api_version: str = bulkreg_schema.API_VERSION) -> None:
        self._state = _ImportState(Context("import", api_version))  # as iter_import
        self.lines = 0  # lines read so far

    def judge(self, lines: list[bytes | None]) -> list[Judged]:
        """The validator's verdict on the next lines of the file (None: a line over MAX_LINE)."""
        numbered = []
        too_long = set()
        for data in lines:
            self.lines += 1
            if data is None:
                too_long.add(self.lines)
                numbered.append((self.lines, b"{}"))  # judged as an empty object, then refused
            else:
                numbered.append((self.lines, data.rstrip(b"\r\n")))
        first: dict[int, Finding] = {}
        blank = set()
        for finding in self._state.batch(numbered):
            if finding.line is None:
                continue
            if finding.rule == "import-blank-line":
                blank.add(finding.line)
            elif finding.severity == "error":
                first.setdefault(finding.line, finding)
        judged = []
        for number, text in numbered:
            error, data = first.get(number), text
            if number in too_long:
                error = Finding("import-line-length", "IotHubFormatError", "error", "", number,
                                1, f"the line is longer than {MAX_LINE} bytes", "inferred")
                data = b"..."
            value = None
            if error is None and number not in blank:
                value = _entry(_loads(data))
            elif error is not None and error.code not in _FORMAT_CODES:
                value = _loads(data)  # for the deviceId of its log line
            judged.append(Judged(number, data, error, number in blank, value))
        return judged


def _entry(value: dict[str, Any]) -> dict[str, Any]:
    """A judged line as the model's entry: importMode canonical (enum values are read
    case-insensitively; the validator accepted it), absent meaning createOrUpdate."""
    mode = value.get("importMode")
    if type(mode) is str:
        value["importMode"] = _CONTRACT.canonical_mode(mode) or mode
    return value


def plan_lines(registry: Registry, judged: list[Judged]) -> tuple[Changes, list[LineResult]]:
    """What applying ``judged`` lines to ``registry`` changes, and each line's result."""
    entries: list[dict[str, Any]] = []
    owners: list[int] = []
    results: list[LineResult] = []
    for index, item in enumerate(judged):
        if item.error is not None:
            results.append(LineResult(item.line, _log_error(
                item.error.code or "ArgumentInvalid", item.error.message, item.data, item.value)))
            continue
        results.append(LineResult(item.line, None))
        if not item.blank:
            entries.append(item.value)
            owners.append(index)
    changes, problems = registry.plan_entries(entries)
    for index, problem in zip(owners, problems, strict=True):
        if problem is not None:
            item = judged[index]
            results[index] = LineResult(item.line, _log_error(
                problem["errorCode"], problem["errorStatus"], item.data, item.value))
    return changes, results


class ImportOutcome(NamedTuple):
    log: list[LineResult]  # the failed lines, in file order
    lines: int
    applied: int  # lines applied (neither failed nor blank)
    registry: Registry  # the state after the job


def predict_import(registry: Registry, lines: Iterable[bytes], *,
                   api_version: str = bulkreg_schema.API_VERSION,
                   batch: int = 1000) -> ImportOutcome:
    """What an import job of ``lines`` (a file's lines, as a binary file iterates them) writes
    to importErrors.log and leaves in the registry; ``registry`` itself is unchanged."""
    state = registry.copy()
    reader = ImportLines(api_version=api_version)
    log: list[LineResult] = []
    applied = 0
    pending: list[bytes | None] = []

    def run() -> int:
        judged = reader.judge(pending)
        changes, results = plan_lines(state, judged)
        state.adopt(changes)
        log.extend(r for r in results if r.error is not None)
        return sum(1 for r, j in zip(results, judged, strict=True)
                   if r.error is None and not j.blank)

    for line in lines:
        pending.append(line if line is None or len(line) <= MAX_LINE else None)
        if len(pending) == batch:
            applied += run()
            pending = []
    if pending:
        applied += run()
    return ImportOutcome(log, reader.lines, applied, state)


# --- the log, read back -------------------------------------------------------------------------


def match_log(lines: Iterable[bytes], log: Iterable[dict[str, Any]]
              ) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """Each importErrors.log object with the number of the input line it reports (None when no
    line after the previous match does), for a log written in file order, as this hub writes
    it. A format error quotes its line; any other names the line's deviceId (and moduleId): the
    next line with that id, and for DeviceDefinedMultipleTimes one whose id came before."""
    read = _read_ids(lines)
    exhausted = False
    for entry in log:
        found = None
        if not exhausted:
            for number, text, ids, repeated in read:
                if _reports(entry, text, ids, repeated):
                    found = number
                    break
            else:
                exhausted = True
        yield found, entry


def _read_ids(lines: Iterable[bytes]
              ) -> Iterator[tuple[int, bytes, tuple[Any, Any] | None, bool]]:
    """Each line with its (id, moduleId) and whether its id appeared on an earlier line."""
    seen: set[str] = set()
    for number, data in enumerate(lines, 1):
        text = data.rstrip(b"\r\n")
        value = _loads(text) if text.strip() else None
        ids = None
        repeated = False
        if type(value) is dict and type(value.get("id")) is str:
            ids = (value["id"], value.get("moduleId") or None)
            repeated = value["id"] in seen
            seen.add(value["id"])
        yield number, text, ids, repeated


def _reports(entry: dict[str, Any], text: bytes, ids: tuple[Any, Any] | None,
             repeated: bool) -> bool:
    status = entry.get("errorStatus")
    if not text.strip(b" \t\r"):
        return False  # a blank line is skipped, never logged
    if "deviceId" not in entry:
        if isinstance(status, str) and status.startswith("Invalid device format in line: "):
            echo = text[:_ECHO].decode("utf-8", "replace")
            return status.startswith(f"Invalid device format in line: {echo}")
        return ids is None  # a line without an id (ArgumentNull)
    if ids is None or ids != (entry["deviceId"], entry.get("moduleId") or None):
        return False
    return repeated or code_name(entry.get("errorCode")) != "DeviceDefinedMultipleTimes"


# --- export ---------------------------------------------------------------------------------------


def export_line(record: Record, *, exclude_keys: bool) -> dict[str, Any]:
    """A device and its twin as an ExportImportDevice line (DOC-BULK's export sample): no
    importMode (re-imported, it means createOrUpdate); service-maintained $metadata and $version
    left out, as the service exports them (MicrosoftDocs/azure-docs#116520); with
    excludeKeysInExport the symmetric keys are null ("keys are exported as null", JobProperties)."""
    auth = record["authentication"]
    if exclude_keys:
        auth = {**auth, "symmetricKey": {"primaryKey": None, "secondaryKey": None}}
    line: dict[str, Any] = {"id": record["deviceId"]}
    if record["moduleId"]:
        line["moduleId"] = record["moduleId"]
    line.update(eTag=device_etag(record["version"]), status=record["status"])
    if record["statusReason"] is not None:
        line["statusReason"] = record["statusReason"]
    line["authentication"] = auth
    if record["capabilities"].get("iotEdge"):
        line["capabilities"] = {"iotEdge": True}
    if record["deviceScope"]:
        line["deviceScope"] = record["deviceScope"]
    if record["parentScopes"]:
        line["parentScopes"] = list(record["parentScopes"])
    line.update(twinETag=twin_etag(record["twinVersion"]), tags=record["tags"],
                properties={"desired": record["desired"], "reported": record["reported"]})
    return line


def export_lines(registry: Registry, *, exclude_keys: bool) -> Iterator[bytes]:
    """Every device of ``registry`` (modules are not exported) as a devices.txt line, in
    device-id order, each ending in a newline."""
    records = registry.records()
    for key in sorted(k for k in records if not k[1]):
        yield orjson.dumps(export_line(records[key], exclude_keys=exclude_keys)) + b"\n"
