"""The validator predicts the job's log: ``bulkreg lint --mode import`` and the importErrors.log
of a real job (the hub over HTTP, Azurite) agree line for line, on every import case of
``examples/`` and on generated files; the lines lint does not flag fail only with a
state-dependent code, exactly as the oracle (``predict_import``) predicted, which also predicts
the registry the job leaves."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bulkreg_schema
from bulkreg_conformance.azurite import Azurite
from bulkreg_conformance.hub.cli import BackgroundHub
from bulkreg_conformance.oracle.jobs import code_name, match_log, predict_import
from bulkreg_conformance.strategies import TABLE, valid_import_lines

from .conftest import HubJobs, download, fresh_container, upload

# errors only the registry can tell (facts §3.2): the oracle predicts them, lint cannot
STATE_CODES = {"DeviceNotFound", "ModuleNotFound", "DeviceAlreadyExists",
               "ModuleAlreadyExistsOnDevice", "PreconditionFailed"}
_GENERATED = "generated"


def _raw(case: dict[str, Any]) -> bytes:
    if "base64" in case:
        return base64.b64decode(case["base64"])
    if "text" in case:
        return str(case["text"]).encode("utf-8")
    return b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n"
                    for line in case["payload"])


IMPORT_CASES = [c for c in bulkreg_schema.examples() if c["mode"] == "import"]


def lint(paths: list[Path]) -> list[dict[int, str]]:
    """``bulkreg lint --mode import --format json`` on ``paths``: per file, the code of each
    line's first error finding."""
    done = subprocess.run([sys.executable, "-m", "bulkreg_validator", "lint", "--mode", "import",
                           "--format", "json", *map(str, paths)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr
    files = json.loads(done.stdout)["files"]
    assert [f["path"] for f in files] == [str(p) for p in paths]
    out = []
    for entry in files:
        first: dict[int, str] = {}
        for finding in entry["findings"]:
            if finding["severity"] == "error":
                first.setdefault(finding["line"], finding["code"])
        out.append(first)
    return out


class Run:
    """One import job through the hub, with what was predicted before it ran."""

    def __init__(self, hub: BackgroundHub, jobs: HubJobs, azurite: Azurite,
                 data: bytes, seeded: list[dict[str, Any]] | None = None) -> None:
        hub.hub.reset()
        if seeded:
            hub.hub.seed(seeded, "2021-04-12")
        before = hub.hub.registry.copy()
        self.predicted = predict_import(before, io.BytesIO(data))
        source, target = fresh_container(azurite), fresh_container(azurite)
        upload(source, "devices.txt", data)
        self.job = jobs.run_import(source, target)
        self.log = [json.loads(line) for line in download(target, "importErrors.log").splitlines()]
        self.lines = [n for n, _ in match_log(io.BytesIO(data), self.log)]
        self.after = hub.hub.registry.copy()
        self.data = data

    def check(self, flagged: dict[int, str]) -> None:
        assert self.job["status"] == "completed", self.job  # lines that fail never fail a job
        assert None not in self.lines, "every log line names its file line"
        logged = dict(zip(self.lines, (code_name(e["errorCode"]) for e in self.log),
                          strict=True))
        for line, code in flagged.items():  # lint's errors are the log's, code for code
            assert logged.get(line) == code, (line, code, logged)
        for line, code in logged.items():  # the other logged lines depend on the registry
            assert line in flagged or code in STATE_CODES, (line, code)
        assert [(r.line, r.error) for r in self.predicted.log] == list(
            zip(self.lines, self.log, strict=True))
        assert _comparable(self.after) == _comparable(self.predicted.registry)


def _comparable(registry: Any) -> dict[Any, Any]:
    """The records without the timestamps (the prediction ran at another moment)."""
    drop = {"statusUpdatedTime", "desiredUpdated", "reportedUpdated"}
    return {key: {k: v for k, v in record.items() if k not in drop}
            for key, record in registry.records().items()}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    return tmp_path


def test_every_import_example(azurite: Azurite, hub: BackgroundHub, jobs: HubJobs,
                              files: Path) -> None:
    runs, paths = [], []
    for index, case in enumerate(IMPORT_CASES):
        data = _raw(case)
        path = files / f"{index:03d}-{case['name']}.txt"
        path.write_bytes(data)
        paths.append(path)
        runs.append(Run(hub, jobs, azurite, data))
    for case, run, flagged in zip(IMPORT_CASES, runs, lint(paths), strict=True):
        try:
            run.check(flagged)
        except AssertionError as exc:
            raise AssertionError(f"example {case['name']}: {exc}") from exc
    assert any(run.log for run in runs) and any(not run.log for run in runs)


USERS_FILE = b"".join(line + b"\n" for line in (
    # the failures of facts §6.3, in one file
    b'{"id":"ev0","importMode":"createOrUpdate","status":"Enabled","authentication":'
    b'{"thumbprint":{"primaryThumbprint":"DE89B7BBD215E7E47ECD372F61205712D71DD521"},'
    b'"type":"SELF_SIGNED"}}',                                  # 400012, as IMPORT-LOG shows
    b'{"id":"ev1","status":"Enabled","thumbprint":"x"}',      # accepted: casing, unknown member
    b'{"id":"ev2","importMode":"update"}',                     # 404001: the device is absent
    b'{"id":"ev1","importMode":"delete"}',                     # 400011: ev1 is already defined
    b"",                                                       # a blank line: skipped
    b'{"id":"ev3","tags":["not","an","object"]}',             # tags must be an object
    b'{"id":"ev4","importMode":"updateIfMatchETag","eTag":"MQ=="}',  # absent: 404001
    b'{"id":"ev5","importMode":"createOrUpdateIfMatchETag"}',  # created
))


def test_the_failures_users_hit(azurite: Azurite, hub: BackgroundHub, jobs: HubJobs,
                                files: Path) -> None:
    path = files / "users.txt"
    path.write_bytes(USERS_FILE)
    run = Run(hub, jobs, azurite, USERS_FILE)
    run.check(lint([path])[0])
    assert [(line, code_name(e["errorCode"])) for line, e in zip(run.lines, run.log,
                                                                  strict=True)] == [
        (1, "DeserializationError"), (3, "DeviceNotFound"), (4, "DeviceDefinedMultipleTimes"),
        (6, "DeserializationError"), (7, "DeviceNotFound")]
    assert sorted(k[0] for k in run.after.records()) == ["ev1", "ev5"]


# --- generated files ------------------------------------------------------------------------

_ENTRY_MUTATIONS = [m for m in TABLE if m.rule not in (
    "too-many-devices", "bulk-empty", "bulk-not-array", "duplicate-id")]


@st.composite
def _line(draw: st.DrawFn, entry: dict[str, Any], earlier: list[str]) -> bytes:
    """One line of a file: the valid entry, one targeted mutation of it, or a line-level
    fault (a duplicate id, a blank line, broken JSON, a BOM, a stray byte, CRLF)."""
    kind = draw(st.sampled_from(["valid", "valid", "valid", "mutated", "mutated", "cased",
                                 "duplicate", "blank", "broken", "crlf", "bom", "byte"]))
    text = json.dumps(entry, ensure_ascii=False).encode()
    if kind == "cased":  # enum values in another case (facts §6.3): accepted, but not these
        field, value = draw(st.sampled_from([("status", "Enabled"), ("status", "DISABLED"),
                                             ("importMode", "CreateOrUpdate"),
                                             ("authentication", {"type": "SELF_SIGNED"}),
                                             ("authentication", {"type": "SAS"})]))
        return json.dumps({**entry, field: value}).encode()
    if kind == "mutated":
        mutation = draw(st.sampled_from(_ENTRY_MUTATIONS))
        result = mutation.mutate(draw, [json.loads(text)])
        if isinstance(result, list) and len(result) == 1:
            return json.dumps(result[0]).encode()
        return result if isinstance(result, bytes) and b"\n" not in result else text
    if kind == "duplicate" and earlier:
        return json.dumps({**entry, "id": draw(st.sampled_from(earlier))}).encode()
    return {"blank": b"  ", "broken": text[:-1], "crlf": text + b"\r",
            "bom": b"\xef\xbb\xbf" + text,  # a byte order mark, then the object
            "byte": text.replace(b'"id": "', b'"id": "\xff', 1),  # not UTF-8
            }.get(kind, text)


@st.composite
def import_files(draw: st.DrawFn) -> tuple[bytes, list[dict[str, Any]]]:
    """A file of mixed lines, and the entries to seed the hub with first (about half of the
    file's ids exist, so update, delete and the IfMatch modes meet both outcomes)."""
    entries = draw(valid_import_lines(min_size=1, max_size=12, twin_size=128))
    lines: list[bytes] = []
    for entry in entries:
        lines.append(draw(_line(entry, [e["id"] for e in entries[:len(lines)]])))
    seeded = [{"id": e["id"], "importMode": "create"} for e in entries if draw(st.booleans())]
    return b"".join(line + b"\n" for line in lines), seeded


def test_generated_files(azurite: Azurite, hub: BackgroundHub, jobs: HubJobs,
                         files: Path) -> None:
    runs: list[Run] = []
    paths: list[Path] = []

    @settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])
    @given(import_files())
    def one(drawn: tuple[bytes, list[dict[str, Any]]]) -> None:
        data, seeded = drawn
        path = files / f"{_GENERATED}-{len(paths):03d}.txt"
        path.write_bytes(data)
        run = Run(hub, jobs, azurite, data, seeded)
        paths.append(path)
        runs.append(run)

    one()
    flagged = lint(paths)
    for path, run, lines in zip(paths, runs, flagged, strict=True):
        try:
            run.check(lines)
        except AssertionError as exc:
            raise AssertionError(f"{path.name} ({run.data!r}): {exc}") from exc
    codes = {code_name(e["errorCode"]) for run in runs for e in run.log}
    assert codes & STATE_CODES and codes - STATE_CODES  # both kinds were exercised
