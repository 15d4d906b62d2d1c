"""The import fast path (chunks judged at once by the acceptor) finds exactly what the exact path
finds: every Finding (rule, code, severity, pointer, line, column, message, evidence), in the same
order, and the same entry count, on generated import files, valid and invalid.

Two references run beside ``iter_import`` on every file: the exact path alone (``line`` on every
line: orjson or the exact scanner, the rule checks in Python, positions from the scanner) and the
implementation before the acceptor (``batch`` over runs of 256 lines). The files mix valid lines
drawn by the conformance strategies, written in several styles (orjson's compact form, json's
spaced and ASCII-escaped forms, CRLF, padding), with one-rule mutations of the rule table, text
mutations only a parser sees (repeated keys, escapes, BOM, blank lines, numbers past every
limit), duplicate ids across chunks, long lines around the size guard, and older api-versions.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkreg_conformance import strategies
from bulkreg_validator import Finding, _accept, _import, iter_import
from bulkreg_validator._checks import Context

API_VERSIONS = ["2021-04-12", "2021-04-12", "2020-09-30", "2020-05-31-preview", "2019-03-30"]
Line = bytes | str


@pytest.fixture(autouse=True)
def from_the_first_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The acceptor from line 1 (short files would otherwise never reach it)."""
    monkeypatch.setattr(_import, "WARM_UP", 0)


def _data(line: Line) -> bytes:
    return (line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line).rstrip(
        b"\r\n")


def exact(lines: list[Line], api_version: str) -> tuple[list[Finding], int]:
    """Every line on the exact path alone."""
    state = _import._ImportState(Context("import", api_version))
    found = [f for n, line in enumerate(lines, 1) for f in state.line(n, _data(line))]
    return found, state.entries


def previous(lines: list[Line], api_version: str) -> tuple[list[Finding], int]:
    """The implementation before the acceptor: ``batch`` over runs of 256 lines."""
    state = _import._ImportState(Context("import", api_version))
    pairs = [(n, _data(line)) for n, line in enumerate(lines, 1)]
    found = [f for i in range(0, len(pairs), 256) for f in state.batch(pairs[i:i + 256])]
    return found, state.entries


def current(stream: Iterable[Line], api_version: str) -> tuple[list[Finding], int]:
    items = list(iter_import(stream, api_version=api_version))
    entries = items.pop()
    assert isinstance(entries, int)
    assert all(isinstance(f, Finding) for f in items)
    return items, entries  # type: ignore[return-value]


def assert_same(lines: list[Line], api_version: str, stream: Iterable[Line] | None = None) -> None:
    got = current(lines if stream is None else stream, api_version)
    want = exact(lines, api_version)
    assert got == want, _diff(got[0], want[0])
    assert previous(lines, api_version) == want


def _diff(got: list[Finding], want: list[Finding]) -> str:
    extra = [f for f in got if f not in want]
    missing = [f for f in want if f not in got]
    return f"fast path only: {extra[:3]}; exact path only: {missing[:3]}"


# --- drawing import files ----------------------------------------------------------------------

def _compact(entry: Any) -> bytes:
    try:
        return orjson.dumps(entry)
    except TypeError:  # a lone surrogate (a mutation): as an escape
        return json.dumps(entry, separators=(",", ":")).encode()


STYLES = {
    "orjson": _compact,
    "json": lambda e: json.dumps(e, ensure_ascii=False).encode("utf-8", "surrogatepass"),
    "ascii": lambda e: json.dumps(e).encode("utf-8"),  # \\u escapes, lone surrogates too
    "tight": lambda e: json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"),
    "padded": lambda e: b"  " + _compact(e) + b" \t",
    "crlf": lambda e: _compact(e) + b"\r",
}
# every rule of the table whose mutation keeps one entry (the bulk-only ones drop out)
ENTRY_MUTATIONS = [m for m in strategies.TABLE if m.rule not in (
    "bulk-not-array", "bulk-empty", "too-many-devices", "duplicate-id", "import-mode-missing",
    "twin-metadata-ignored")]
TEXT_MUTATIONS = [
    lambda line: b'{"id":"dup-key",' + line[1:],  # id twice: json-duplicate-key
    lambda line: line[:-1] + b',"tags":{"a":1,"a":2}}',  # maybe tags twice, surely a twice
    lambda line: b'{"statusReason":"a\\u003ab",' + line[1:],  # an escaped ':'
    lambda line: b'{"statusReason":"a:\\"b\\"",' + line[1:],  # escaped quotes
    lambda line: b"\xef\xbb\xbf" + line,
    lambda line: line[: len(line) // 2],
    lambda line: line + b" {}",
    lambda line: b"",
    lambda line: b" \t ",
    lambda line: b"[1]",
    lambda line: b"null",
    lambda line: b'"text"',
    lambda line: b'{"id":"n1","tags":{"n":NaN}}',
    lambda line: b'{"id":"n2","tags":{"n":18446744073709551616}}',
    lambda line: b'{"id":"n3","tags":{"n":1e300,"m":-4503599627370497,"k":4503599627370495}}',
    lambda line: b'{"id":"n4","tags":{"n":4503599627370496.0,"m":1E2,"k":-0.0,"z":1.1e-05}}',
    lambda line: b'{"id":"s1","tags":{"k":"\\ud800"}}',
    lambda line: b'{"id":"s2","tags":{"\\u0000":1,"\\u0061":2}}',
    lambda line: b'{"id":"deep","tags":{"a":' + b"[" * 1100 + b"]" * 1100 + b"}}",
    lambda line: b'{"id":"deep2","tags":{"a":' + b"[" * 300 + b"]" * 300 + b"}}",
    lambda line: b'{"id":"\xff"}',  # invalid UTF-8
    lambda line: b'{"id":"m1","properties":{"desired":{"$metadata":{"$lastUpdated":"x"},'
                 b'"$version":3,"a":1}}}',
    lambda line: b'{"id":"m2","properties":{"reported":{"$version":1.0}}}',
    lambda line: b'{"id":"m3","properties":{"desired":{"$metadata":1}}}',
]
LONG = [  # around the 1 KB key and 2 KB text guards, and the size limits
    lambda: {"tags": {"k" * 1025: 1}},
    lambda: {"tags": {"k" * 1024: 1}},
    lambda: {"tags": {"é" * 513: 1}},
    lambda: {"tags": {"s": "v" * 1500}},
    lambda: {"tags": {"s": "€" * 1366}},
    lambda: {"tags": {"a": [1] * 1100}},
    lambda: {"tags": {"a": [1] * 300, "b": [1] * 300, "c": [1] * 300}},
    lambda: {"tags": {f"k{i}": "a" * 900 for i in range(3)}},
    lambda: {"properties": {"desired": {"s": "😀" * 1025}}},
]


@st.composite
def import_files(draw: st.DrawFn, *, max_size: int = 40) -> list[bytes]:
    entries = draw(strategies.valid_import_lines(min_size=max_size // 4, max_size=max_size,
                                                 twin_size=96))
    ids = [entry["id"] for entry in entries]  # (mutations change entries in place)
    lines: list[bytes] = []
    for drawn in entries:
        entry = drawn
        kind = draw(st.sampled_from(["valid", "entry", "text", "dup-id", "long", "valid"]))
        if kind == "dup-id" and lines:
            entry["id"] = draw(st.sampled_from(ids))
        elif kind == "entry":
            mutated = draw(st.sampled_from(ENTRY_MUTATIONS)).mutate(draw, [entry])
            if isinstance(mutated, bytes):
                lines.append(mutated.removeprefix(b"[").removesuffix(b"]").replace(b"\n", b" "))
                continue
            entry = mutated[0] if isinstance(mutated, list) and mutated else entry
        elif kind == "long":
            entry = {**entry, **draw(st.sampled_from(LONG))()}
        line = STYLES[draw(st.sampled_from(sorted(STYLES)))](entry)
        if kind == "text":
            line = draw(st.sampled_from(TEXT_MUTATIONS))(line)
        lines.append(line)
    return lines


SETTINGS = settings(max_examples=80, deadline=None)


@SETTINGS
@given(lines=import_files(), api_version=st.sampled_from(API_VERSIONS))
def test_generated_files_have_the_exact_paths_findings(lines: list[bytes],
                                                       api_version: str) -> None:
    assert_same(lines, api_version)


@settings(max_examples=40, deadline=None)
@given(lines=import_files(max_size=20), how=st.sampled_from(["str", "file", "mixed"]))
def test_every_kind_of_stream_has_the_same_findings(lines: list[bytes], how: str) -> None:
    if how == "str":  # text lines (invalid UTF-8 as lone surrogates): encoded alike
        assert_same([line.decode("utf-8", "surrogateescape") for line in lines], "2021-04-12")
    elif how == "file":  # a binary file: lines end in \\n (a \\n inside a mutation splits it)
        blob = b"".join(line + b"\n" for line in lines)
        assert_same(io.BytesIO(blob).readlines(), "2021-04-12", io.BytesIO(blob))
    else:  # bytes and str in one iterable
        mixed: list[Line] = [line if i % 2 else line.decode("utf-8", "replace")
                             for i, line in enumerate(lines)]
        assert_same(mixed, "2021-04-12")


# --- realistic files: the benchmark's generator with mistakes sown in ---------------------------

def _benchmark_lines(count: int, seed: int) -> list[bytes]:
    import sys  # noqa: PLC0415 - the benchmark helpers are scripts, not a package

    sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
    try:
        import _data  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    return [line.rstrip(b"\n") for line in _data.import_lines(count, seed=seed)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_benchmark_files_with_mistakes_have_the_same_findings(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if seed == 3:  # and once with the warm-up of a real run: batch first, then chunks
        monkeypatch.setattr(_import, "WARM_UP", 1024)
    lines = _benchmark_lines(1500, seed)
    rng = random.Random(seed)
    for _ in range(40):  # a mistake every ~40 lines: most chunks clean, some not
        at = rng.randrange(len(lines))
        how = rng.randrange(4)
        if how == 0:
            lines[at] = rng.choice(TEXT_MUTATIONS)(lines[at])
        elif how == 1:  # a duplicate id, possibly in the same chunk
            entry = orjson.loads(lines[at])
            entry["id"] = orjson.loads(lines[max(0, at - rng.randrange(1, 40))])["id"]
            lines[at] = orjson.dumps(entry)
        elif how == 2:  # an unknown member (a warning), as Python's json writes it
            entry = orjson.loads(lines[at])
            entry["etag"] = "x"
            lines[at] = json.dumps(entry).encode()
        else:
            lines[at] = json.dumps({**orjson.loads(lines[at]), **rng.choice(LONG)()}).encode()
    for api_version in ("2021-04-12", "2019-03-30"):
        assert_same(lines, api_version)


def test_valid_benchmark_files_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above is not vacuous: clean chunks never reach the older path."""
    lines = _benchmark_lines(2000, 7)

    def no(*args: Any) -> Any:
        raise AssertionError("a clean chunk took the line-by-line path")

    monkeypatch.setattr(_import._ImportState, "batch", no)
    monkeypatch.setattr(_import._ImportState, "refine", no)
    assert current(lines, "2021-04-12") == ([], 2000)


def test_without_jsonschema_rs_the_findings_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _benchmark_lines(300, 4)
    lines[100] = lines[100][:-1] + b',"etag":null}'
    with_rs = current(lines, "2021-04-12")
    monkeypatch.setattr(_accept, "acceptor", lambda: None)
    assert current(lines, "2021-04-12") == with_rs == exact(lines, "2021-04-12")
    assert with_rs[0]


def reach() -> tuple[dict[str, int], set[str]]:
    """How often each way through ``chunk`` is taken, and which rules are found, over 200
    generated files (the test below runs this in a fresh interpreter)."""
    taken: dict[str, int] = {"accepted": 0, "refine": 0, "batch": 0}
    rules: set[str] = set()
    state = _import._ImportState
    chunk, refine, batch, warm_up = state.chunk, state.refine, state.batch, _import.WARM_UP

    def counted(name: str, method: Any) -> Any:
        def wrapper(self: Any, *args: Any) -> Any:
            taken[name] += 1
            return method(self, *args)
        return wrapper

    def chunk_counted(self: Any, first: int, raw: list[Any]) -> Any:
        before = taken["refine"] + taken["batch"]
        found = chunk(self, first, raw)
        taken["accepted"] += taken["refine"] + taken["batch"] == before
        return found

    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(lines=import_files())
    def sample(lines: list[bytes]) -> None:
        found, _ = current(lines, "2021-04-12")
        rules.update(f.rule for f in found)

    state.chunk, state.refine, state.batch = (  # type: ignore[method-assign]
        chunk_counted, counted("refine", refine), counted("batch", batch))
    _import.WARM_UP = 0
    try:
        sample()
    finally:
        state.chunk, state.refine, state.batch = chunk, refine, batch  # type: ignore[method-assign]
        _import.WARM_UP = warm_up
    return taken, rules


_REACH = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("import_parity", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
taken, rules = module.reach()
print(json.dumps({"taken": taken, "rules": sorted(rules)}))
"""


def test_the_generated_files_reach_every_path_and_rule(tmp_path: Path) -> None:
    """The files above take each way through ``chunk`` (accepted at once, refined line by line,
    handed to ``batch``) and carry findings of most rules, duplicate ids across chunks among them,
    so the equality is not vacuous.

    In a fresh interpreter: hypothesis draws some values from the constants of every local
    module loaded, so the same derandomized files differ with what a test session has imported
    before (in a full run they once lacked every etag-required line)."""
    child = subprocess.run([sys.executable, "-c", _REACH, __file__], capture_output=True,
                           text=True, timeout=300, check=False, cwd=tmp_path)  # .hypothesis/
    assert child.returncode == 0, child.stderr[-3000:]
    found = json.loads(child.stdout.strip().splitlines()[-1])
    taken, rules = found["taken"], set(found["rules"])
    assert min(taken.values()) > 0, taken
    assert {"duplicate-id", "json-duplicate-key", "json-syntax", "value-type", "enum-case",
            "unknown-property", "etag-required", "mode-ignored-field", "auth-type-mismatch",
            "twin-key-chars", "twin-key-length", "twin-section-size", "twin-integer-range",
            "import-blank-line"} <= rules, sorted(rules)
