"""The jobs model (``oracle/jobs.py``), pure: reading lines, judging and applying them, the log's
shape, reading a log back against its file, and export lines."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bulkreg_conformance.oracle import Registry
from bulkreg_conformance.oracle.jobs import (
    ERROR_NUMBERS,
    MAX_LINE,
    JobRequest,
    RequestError,
    code_name,
    export_line,
    export_lines,
    job_request,
    match_log,
    predict_import,
    split_lines,
)
from bulkreg_conformance.oracle.model import _HANDLERS
from bulkreg_validator import RULES

SEED = b"\x07" * 32


def _file(*objects: Any) -> bytes:
    return b"".join(o + b"\n" if isinstance(o, bytes) else json.dumps(o).encode() + b"\n"
                    for o in objects)


def _predict(data: bytes, registry: Registry | None = None, batch: int = 1000) -> Any:
    return predict_import(registry or Registry(seed=SEED), io.BytesIO(data), batch=batch)


def _codes(outcome: Any) -> dict[int, str | None]:
    return {r.line: code_name(r.error["errorCode"]) for r in outcome.log}


# --- reading --------------------------------------------------------------------------------


@given(st.lists(st.sampled_from([b"a", b"\n", b"\r\n", b"{}", b"\r", b"xyz\n"]), max_size=30),
       st.lists(st.integers(1, 7), min_size=1, max_size=10))
def test_lines_split_as_a_binary_file_iterates_them(parts: list[bytes],
                                                    sizes: list[int]) -> None:
    data = b"".join(parts)
    chunks, start, index = [], 0, 0
    while start < len(data):
        size = sizes[index % len(sizes)]
        chunks.append(data[start:start + size])
        start, index = start + size, index + 1
    assert list(split_lines(chunks)) == list(io.BytesIO(data))


def test_a_line_over_the_limit_is_skipped_not_held() -> None:
    chunks = [b"ok\n", b"x" * 6, b"x" * 6, b"\nnext\n", b"y" * 11]
    assert list(split_lines(chunks, limit=10)) == [b"ok\n", None, b"next\n", None]
    outcome = predict_import(Registry(seed=SEED), [b'{"id":"d1"}\n', None])  # type: ignore[list-item]
    assert [(r.line, r.error) for r in outcome.log] == [(2, {
        "errorCode": 400006,
        "errorStatus": f"Invalid device format in line: .... the line is longer than "
                       f"{MAX_LINE} bytes"})]


# --- the job request ------------------------------------------------------------------------


def test_job_requests_as_the_sdks_send_them() -> None:
    node_import = {"type": "import", "inputBlobContainerUri": "https://a/in?sig=1",
                   "outputBlobContainerUri": "https://a/out?sig=2"}
    assert job_request(node_import) == JobRequest("import", "https://a/in?sig=1", "devices.txt",
                                                  "https://a/out?sig=2", "importErrors.log",
                                                  False)
    python_export = {"type": "export", "outputBlobContainerUri": "https://a/out",
                     "excludeKeysInExport": True, "storageAuthenticationType": "keyBased",
                     "outputBlobName": "all.txt"}
    assert job_request(python_export) == JobRequest("export", None, "devices.txt",
                                                    "https://a/out", "all.txt", True)
    cased = {"Type": "Export", "OutputBlobContainerUri": "https://a/out"}  # Newtonsoft reads it
    assert isinstance(job_request(cased), JobRequest)
    assert job_request({"type": "export"}) == RequestError(
        400, "ArgumentNull", "outputBlobContainerUri is required for this job type")


# --- judging and applying lines --------------------------------------------------------------


def test_every_code_a_line_can_fail_with_has_its_number() -> None:
    rule_codes = {r.code for r in RULES.values() if r.code and r.severity == "error"}
    state_codes = {"DeviceNotFound", "ModuleNotFound", "DeviceAlreadyExists",
                   "ModuleAlreadyExistsOnDevice", "PreconditionFailed"}
    assert rule_codes | state_codes <= set(ERROR_NUMBERS)
    assert all(str(n)[:3] in ("400", "403", "404", "409", "412", "413", "500")
               for n in ERROR_NUMBERS.values())  # facts §3.3: the first digits are the status
    assert {"createOrUpdate", "createOrUpdateIfMatchETag"} <= set(_HANDLERS)


def test_import_modes_and_their_state_dependent_failures() -> None:
    registry = _predict(_file({"id": "old"}, {"id": "gone"}, {"id": "parent"})).registry
    etag = registry.device("old")["etag"]  # type: ignore[index]
    outcome = _predict(_file(
        {"id": "old", "importMode": "createOrUpdateIfMatchETag", "eTag": "bm90"},
        {"id": "new", "importMode": "createOrUpdateIfMatchETag"},  # new: no etag needed
        {"id": "gone", "importMode": "CreateOrUpdateIfMatchETag"},  # exists, no etag
        {"id": "nothere", "importMode": "Delete"},
        {"id": "x1", "importMode": "create"},
        {"id": "parent", "moduleId": "m1", "importMode": "update"},
    ), registry)
    assert _codes(outcome) == {1: "PreconditionFailed", 3: "PreconditionFailed",
                               4: "DeviceNotFound", 6: "ModuleNotFound"}
    assert outcome.log[-1].error == {"deviceId": "parent", "moduleId": "m1",
                                     "errorCode": 404010, "errorStatus":
                                     "Module m1 on device parent could not be found."}
    assert outcome.registry.device("new") is not None and outcome.applied == 2
    assert registry.device("new") is None  # a prediction leaves its registry as it was
    matched = _predict(_file({"id": "old", "importMode": "createOrUpdateIfMatchETag",
                              "eTag": etag, "status": "disabled"}), registry)
    assert matched.log == []
    assert matched.registry.device("old")["status"] == "disabled"  # type: ignore[index]


def test_the_default_mode_is_create_or_update_and_a_job_never_stops_on_a_line() -> None:
    outcome = _predict(_file({"id": "a"}, b'{"id": ', {"id": "a", "status": "disabled"},
                             b"", {"id": "b", "importMode": "update"}))
    assert _codes(outcome) == {2: "IotHubFormatError", 3: "DeviceDefinedMultipleTimes",
                               5: "DeviceNotFound"}
    assert outcome.applied == 1 and outcome.lines == 5
    assert outcome.registry.device("a")["status"] == "enabled"  # type: ignore[index]


def test_the_log_lines_have_the_services_shapes() -> None:
    outcome = _predict(_file(
        {"id": "e1", "authentication": {"type": "SELF_SIGNED"}},  # IMPORT-LOG's failure
        {"id": "e2", "importMode": "delete"},
        {"status": "enabled"}))
    first, second, third = (r.error for r in outcome.log)
    assert list(first) == ["errorCode", "errorStatus"] and first["errorCode"] == 400012
    assert first["errorStatus"].startswith('Invalid device format in line: {"id": "e1", '
                                           '"authentication": {"type": "SELF_SIGNED"}}. ')
    assert second == {"deviceId": "e2", "errorCode": 404001,
                      "errorStatus": "Device e2 could not be found."}
    assert list(third) == ["errorCode", "errorStatus"] and third["errorCode"] == 400005


@given(st.integers(1, 7))
def test_batches_change_nothing(batch: int) -> None:
    data = _file(*({"id": f"d{i % 9}", "importMode": ["create", "update", "delete"][i % 3]}
                   for i in range(20)), b"{", {"id": "d1"})
    whole, batched = _predict(data), _predict(data, batch=batch)
    assert batched.log == whole.log and batched.applied == whole.applied
    assert sorted(batched.registry.records()) == sorted(whole.registry.records())


# --- reading a log back --------------------------------------------------------------------------


def test_log_lines_are_matched_to_their_file_lines() -> None:
    data = _file({"id": "a"}, {"id": "b", "importMode": "update"}, b"{oops", {"id": "a"},
                 {"status": "enabled"}, {"id": "b", "moduleId": "m", "importMode": "update"},
                 b"{oops")
    outcome = _predict(data)
    assert [r.line for r in outcome.log] == [2, 3, 4, 5, 6, 7]
    matched = list(match_log(io.BytesIO(data), [r.error for r in outcome.log]))
    assert [number for number, _ in matched] == [2, 3, 4, 5, 6, 7]
    stray = {"deviceId": "zz", "errorCode": 404001, "errorStatus": "?"}
    assert [n for n, _ in match_log(io.BytesIO(data), [stray])] == [None]


# --- export ---------------------------------------------------------------------------------------


def test_export_lines_carry_device_and_twin_and_leave_keys_out_on_request() -> None:
    registry = _predict(_file(
        {"id": "z", "status": "disabled", "statusReason": "r", "tags": {"t": 1},
         "properties": {"desired": {"d": 2}, "reported": {"r": 3}}},
        {"id": "x509", "authentication": {"type": "selfSigned",
                                          "x509Thumbprint": {"primaryThumbprint": "a" * 40}}},
        {"id": "edge", "capabilities": {"iotEdge": True}})).registry
    registry = _predict(_file({"id": "z", "moduleId": "m1"}), registry).registry
    assert registry.device("z", "m1") is not None  # a module: not exported
    lines = [json.loads(line) for line in export_lines(registry, exclude_keys=False)]
    assert [line["id"] for line in lines] == ["edge", "x509", "z"]
    z = lines[2]
    assert list(z) == ["id", "eTag", "status", "statusReason", "authentication", "twinETag",
                       "tags", "properties"]
    assert (z["tags"], z["properties"]) == ({"t": 1}, {"desired": {"d": 2}, "reported": {"r": 3}})
    assert z["authentication"]["symmetricKey"]["primaryKey"]
    assert lines[0]["capabilities"] == {"iotEdge": True} and lines[0]["deviceScope"]
    hidden = export_line(registry.records()[("z", "")], exclude_keys=True)
    assert hidden["authentication"]["symmetricKey"] == {"primaryKey": None, "secondaryKey": None}
    thumbs = export_line(registry.records()[("x509", "")], exclude_keys=True)["authentication"]
    assert (thumbs["type"], thumbs["x509Thumbprint"]["primaryThumbprint"]) == ("selfSigned",
                                                                               "a" * 40)


# --- the CLI's progress bar --------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_on_a_terminal_only(monkeypatch: Any) -> None:
    from bulkreg_conformance.jobs_cli import _Progress  # noqa: PLC0415 - the CLI's own part

    monkeypatch.delenv("CI", raising=False)
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = _Progress(stream)
        bar({"status": "running", "progress": 48})
        bar.end()
    assert "[############-------------]  48% running" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r") and pipe.getvalue() == ""
    monkeypatch.setenv("CI", "true")
    quiet = _Terminal()
    _Progress(quiet)({"status": "running", "progress": 10})
    assert quiet.getvalue() == ""
