"""Hostile input: each gives a clear finding, never a traceback, in bounded memory.

Each case runs in a fresh interpreter so that its peak RSS (``VmHWM``, the high-water mark of the
process's memory since its exec; not ``ru_maxrss``, which Linux carries over from the parent)
measures that case alone. The bound is generous: twice the input's size (one decoded and
one parsed copy of a 50 MB string are fair) plus 50 MB. The CLI cases run the real ``bulkreg``
console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from .conformance.hostile import PEAK_KIB

MB = 1024 * 1024
HEADROOM = 50 * MB
# A huge line is held as read, as decoded text and as parsed value: up to three copies of the
# input. The bound guards against anything worse (copies per step, quadratic growth).
COPIES = 3
MAX_MESSAGE = 500


class Hostile(NamedTuple):
    name: str
    setup: str  # Python that binds ``data`` (the input) in the child
    call: str  # the expression that validates ``data``
    rule: str  # the finding it must produce ("": any error finding)


ENTRY = "b'[{\"id\":\"d1\",\"importMode\":\"create\",'"
CASES = [
    Hostile("deep-arrays-100000", "data = b'[' * 100_000 + b']' * 100_000",
            "validate(data)", "json-depth"),
    Hostile("deep-objects-100000", "data = b'{\"a\":' * 100_000 + b'1' + b'}' * 100_000",
            "validate(data)", "json-depth"),
    Hostile("deep-tags-100000", f"data = {ENTRY} + b'\"tags\":{{\"a\":' + b'[' * 100_000"
            " + b']' * 100_000 + b'}}]'", "validate(data)", "json-depth"),
    Hostile("deep-import-line-100000", "data = b'{\"id\":\"d1\"}\\n{\"id\":\"d2\",\"tags\":' + "
            "b'[' * 100_000 + b']' * 100_000 + b'}\\n'",
            "validate_import(io.BytesIO(data))", "json-depth"),
    Hostile("deep-parsed-value-100000",
            "data = []\ncur = data\nfor _ in range(100_000):\n    cur.append([])\n"
            "    cur = cur[0]", "validate(data)", "json-depth"),
    Hostile("status-reason-50mb", f"data = {ENTRY} + b'\"statusReason\":\"' + b'r' * 50 * MB"
            " + b'\"}]'", "validate(data)", "status-reason-length"),
    Hostile("status-reason-50mb-import", "data = b'{\"id\":\"d1\",\"statusReason\":\"' + "
            "b'r' * 50 * MB + b'\"}\\n'", "validate_import(io.BytesIO(data))",
            "status-reason-length"),
    Hostile("tag-string-50mb", f"data = {ENTRY} + b'\"tags\":{{\"x\":\"' + b'r' * 50 * MB"
            " + b'\"}}]'", "validate(data)", "twin-string-length"),
    Hostile("invalid-utf8", f"data = {ENTRY} + b'\"statusReason\":\"\\xff\\xfe\"}}]'",
            "validate(data)", "json-encoding"),
    Hostile("lone-surrogate-escape", f"data = {ENTRY} + b'\"statusReason\":\"\\\\ud800\"}}]'",
            "validate(data)", "json-lone-surrogate"),
    Hostile("lone-surrogate-raw-str",
            "data = '[{\"id\":\"d1\",\"importMode\":\"create\",\"statusReason\":\"\\ud800\"}]'",
            "validate(data)", "json-lone-surrogate"),
    Hostile("lone-surrogate-parsed-value",
            "data = [{'id': 'd1', 'importMode': 'create', 'statusReason': '\\udc00'}]",
            "validate(data)", "json-lone-surrogate"),
    Hostile("duplicate-keys",
            f"data = {ENTRY} + b'\"status\":\"enabled\",\"status\":\"disabled\"}}]'",
            "validate(data)", "json-duplicate-key"),
    Hostile("nan", f"data = {ENTRY} + b'\"tags\":{{\"x\":NaN}}}}]'", "validate(data)",
            "json-nonfinite"),
    Hostile("integer-10-pow-400", f"data = {ENTRY} + b'\"tags\":{{\"x\":1' + b'0' * 400"
            " + b'}}]'", "validate(data)", "json-number-range"),
    Hostile("integer-10-pow-400000", f"data = {ENTRY} + b'\"tags\":{{\"x\":1' + b'0' * 400_000"
            " + b'}}]'", "validate(data)", "json-number-range"),
    Hostile("float-1e400", f"data = {ENTRY} + b'\"tags\":{{\"x\":1e400}}}}]'", "validate(data)",
            "json-number-range"),
    Hostile("bom", "data = b'\\xef\\xbb\\xbf[{\"id\":\"d1\",\"importMode\":\"create\"}]'",
            "validate(data)", "json-encoding"),
    Hostile("empty", "data = b''", "validate(data)", "json-syntax"),
    Hostile("garbage-1mb", "data = random.Random(20240601).randbytes(1 * MB)",
            "validate(data)", "json-encoding"),
    Hostile("garbage-1mb-import", "data = random.Random(20240602).randbytes(1 * MB)",
            "validate_import(io.BytesIO(data))", "json-encoding"),
    Hostile("garbage-ascii", "data = bytes(random.Random(7).choice(b'[]{}\",:0123456789eE.-tfn ')"
            " for _ in range(200_000))", "validate(data)", ""),
]

CHILD = PEAK_KIB + """
import io, json, random, sys
from bulkreg_validator import validate, validate_import
MB = 1024 * 1024
{setup}
size = len(data) if isinstance(data, (bytes, str)) else 0
before = peak_kib()
report = {call}
after = peak_kib()
findings = [dict(rule=f.rule, severity=f.severity, pointer=f.pointer[:200],
                 message=f.message, line=f.line) for f in report.findings[:50]]
print(json.dumps(dict(size=size, grown=(after - before) * 1024, findings=findings,
                      count=len(report.findings))))
"""


def run_child(case: Hostile) -> dict[str, Any]:
    code = CHILD.format(setup=case.setup, call=case.call)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Hostile) -> None:
    result = run_child(case)
    rules = [f["rule"] for f in result["findings"] if f["severity"] == "error"]
    assert (case.rule in rules) if case.rule else rules, result["findings"]
    # clear: short messages that do not echo the hostile input back
    for finding in result["findings"]:
        assert finding["message"], finding
        assert len(finding["message"]) < MAX_MESSAGE, finding["message"][:200]
    assert result["count"] < 10_000
    assert result["grown"] < COPIES * result["size"] + HEADROOM, \
        f"peak RSS grew {result['grown'] / MB:.0f} MB for {result['size'] / MB:.1f} MB of input"


def test_empty_import_file_is_no_crash() -> None:
    result = run_child(Hostile("empty-import", "data = b''", "validate_import(io.BytesIO(data))",
                               ""))
    assert result["findings"] == [] or all(f["severity"] for f in result["findings"])


# --- the CLI -------------------------------------------------------------------------------------


def _cli_available() -> bool:
    try:
        import bulkreg_validator.cli  # noqa: F401, PLC0415 - optional until the CLI lands
    except ImportError:
        return False
    return True


needs_cli = pytest.mark.skipif(not _cli_available(),
                               reason="bulkreg_validator.cli does not exist yet")


def _lint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    script = Path(sys.executable).with_name("bulkreg")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bulkreg_validator"]
    return subprocess.run([*command, "lint", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
                          check=False)


def _one_line_error(proc: subprocess.CompletedProcess[str], path: Path) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if str(path) in line]
    assert len(errors) == 1, proc.stderr
    assert len(errors[0]) < MAX_MESSAGE


@needs_cli
def test_cli_directory_is_a_usage_error(tmp_path: Path) -> None:
    folder = tmp_path / "payloads"
    folder.mkdir()
    _one_line_error(_lint(str(folder), cwd=tmp_path), folder)


@needs_cli
def test_cli_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.json"
    _one_line_error(_lint(str(missing), cwd=tmp_path), missing)


@needs_cli
@pytest.mark.parametrize(("name", "content"), [
    ("deep.json", b"[" * 100_000 + b"]" * 100_000),
    ("garbage.json", bytes(range(256)) * 64),
    ("empty.json", b""),
    ("nan.jsonl", b'{"id":"d1","tags":{"x":NaN}}\n'),
])
def test_cli_hostile_file_gives_findings_not_a_traceback(tmp_path: Path, name: str,
                                                         content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    proc = _lint("--format", "json", str(path), cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    findings = [f for file in report["files"] for f in file["findings"]]
    assert any(f["severity"] == "error" for f in findings), findings
