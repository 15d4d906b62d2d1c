"""Import files (devices.txt: one device object per line): ``iter_import``, ``validate_import``.

After the first ``WARM_UP`` lines, lines are read in chunks of ``CHUNK``. A chunk is parsed with
orjson, proved free of duplicate keys at once (its re-serialisation is the text itself, or has
as many ':'), and judged by one jsonschema-rs call of the acceptor (``_accept``: the schema and
the rule checks as one schema); its ids go into the id table in one pass. A line the acceptor
refuses is checked alone: by the rule checks in Python, then, if anything is found, by the exact
path, which gives every finding its position. The first lines, and a chunk that cannot be proved
at once (a syntax error, a blank line, a repeated key), take ``_ImportState.batch``: the same
proof and one schema call for a batch, then the rule checks line by line. Either way a line's
findings are the exact path's. Memory stays constant but for the set of ids (duplicates count
across the whole file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import compress, islice, starmap
from operator import itemgetter
from typing import Any

import orjson

import bulkreg_schema

from . import _checks
from ._checks import Check, Context
from ._findings import (
    _KEY_MAX_TEXT,
    FAST_MAX,
    Finding,
    Locator,
    Path,
    Raw,
    Report,
    fast_accept,
    schema_findings,
    short_text,
    show,
    text_findings,
)
from ._parse import _ESCAPED_COLON, scan
from ._rules import RULES, checks_for

__all__ = ["DEFAULT_MAX_FINDINGS", "check_line", "iter_import", "validate_import"]

DEFAULT_MAX_FINDINGS = 10_000


def check_entry(entry: Any, ctx: Context, prefix: Path, out: list[Raw],
                checks: tuple[Check, ...] | None = None) -> None:
    """The rule checks of one entry (an object); paths are made absolute with ``prefix``."""
    if type(entry) is not dict:
        return

    def emit(rule: str, path: Path, message: str) -> None:
        out.append((rule, (*prefix, *path), message))

    for fn in checks if checks is not None else checks_for(ctx):
        fn(entry, ctx, emit)


def check_line(value: Any, ctx: Context, *, schema_ok: bool | None = None) -> list[Raw]:
    """Findings of one import line's object (``schema_ok``: the schema verdict, if known)."""
    out: list[Raw] = []
    if not (fast_accept("ImportLine")(value) if schema_ok is None else schema_ok):
        schema_findings("ImportLine", value, out, ctx)
    check_entry(value, ctx, (), out)
    return out


BATCH = 256  # lines checked together by ``_ImportState.batch``
CHUNK = 16  # lines per acceptor call: a chunk's parsed values stay in the CPU cache
# Lines read by ``batch`` before the acceptor takes over: it costs a few milliseconds to build
# (the rewrite, a larger schema to compile) and saves some microseconds a line, so a short file
# is linted as fast as before it existed.
WARM_UP = 1024
_ID = itemgetter("id")
# a check -> a cheap test that is True only when the check cannot emit (skips its walk)
QUIET: dict[Check, Callable[[dict[str, Any], Context], bool]] = {
    _checks.twin_sections: _checks.twin_sections_quiet}
_SHORT_LINE = _KEY_MAX_TEXT  # no line this long or shorter has a size or byte-length finding


def iter_import(
    stream: Iterable[bytes] | Iterable[str],
    *,
    api_version: str = bulkreg_schema.API_VERSION,
) -> Iterator[Finding | int]:
    """Findings of an import file, line by line, in constant memory (but the id set).

    Yields Findings in line order, and finally the number of entries (an int).
    """
    state = _ImportState(Context("import", api_version))
    lines: Iterator[bytes | str] = iter(stream)
    first = 1
    while chunk := list(islice(lines, CHUNK if first > WARM_UP else BATCH)):
        if first > WARM_UP:
            found: Iterable[Finding] = state.chunk(first, chunk)
        else:
            found = state.batch(state.numbered(first, chunk))
        yield from found
        first += len(chunk)
    yield state.entries


class _ImportState:
    """What an import run carries from line to line: the id table and the entry count."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.quick = ctx._replace(exhaustive=False)
        self.checks = checks_for(ctx)
        self.quick_checks = checks_for(self.quick)
        self.ids: dict[str, int] = {}
        self.entries = 0
        from . import _accept  # noqa: PLC0415 - bulk payloads never load the acceptor

        self._acceptor: Callable[[], _accept.Acceptor | None] = _accept.acceptor
        self.id_chars = _accept.ID_CHARS
        # the checks no fold of the acceptor covers, run in Python on accepted lines
        self.unfolded = tuple(ch for ch in self.checks if ch not in _accept.FOLDS)
        self.quick_unfolded = tuple(ch for ch in self.quick_checks if ch not in _accept.FOLDS)
        self._accept: Any = None

    @property
    def accept(self) -> Any:
        if self._accept is None:
            self._accept = fast_accept("ImportLine")
        return self._accept

    @property
    def accept_many(self) -> Any:
        return fast_accept("ImportLine", many=True)

    def chunk(self, first: int, raw: list[Any]) -> list[Finding]:
        """The findings of lines ``first``... (``raw``: as the stream gave them)."""
        if type(raw[0]) is str:
            raw = [line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
                   for line in raw]
        accept = self._acceptor()
        longest = max(map(len, raw))
        if accept is None or longest > FAST_MAX:
            return list(self.batch(self.numbered(first, raw)))
        # each line parsed alone; then the chunk proved free of repeated keys at once: when its
        # re-serialisation is the lines' own text (line ends aside), every line is orjson's
        # output for its value, which cannot repeat a key; otherwise ':' are counted (fast_load)
        try:
            values = list(map(orjson.loads, raw))
            again = orjson.dumps(values)
            joined = b",".join(raw)
        except (orjson.JSONDecodeError, TypeError):  # TypeError: nesting, or str among bytes
            return list(self.batch(self.numbered(first, raw)))
        text = joined.replace(b"\n", b"")
        if not (len(again) == len(text) + 2 and again.startswith(text, 1)) and (
                again.count(b":") != joined.count(b":") or _ESCAPED_COLON.search(joined)):
            return list(self.batch(self.numbered(first, raw)))
        if not accept.many(values):
            return list(self.refine(first, raw, values))
        ids: list[str] = list(map(_ID, values))
        if any(map("\n".join(ids).__contains__, self.id_chars)) or (
                (self.quick_unfolded or longest > _SHORT_LINE)
                and not all(starmap(self.unfolded_clean, self.unfolded_due(raw, values)))):
            return list(self.refine(first, raw, values))
        known = self.ids
        before = len(known)
        all(map(known.setdefault, ids, range(first, first + len(ids))))  # line numbers: truthy
        self.entries += len(ids)
        if len(known) - before == len(ids):
            return []
        return [self.duplicate(lineno, line.rstrip(b"\r\n"), device_id)
                for lineno, line, device_id in zip(range(first, first + len(ids)), raw, ids,
                                                   strict=True)
                if known[device_id] != lineno]

    @staticmethod
    def numbered(first: int, raw: list[Any]) -> list[tuple[int, bytes]]:
        return [(lineno, (line.encode("utf-8", "surrogatepass") if isinstance(line, str)
                          else line).rstrip(b"\r\n"))
                for lineno, line in enumerate(raw, first)]

    def unfolded_due(self, raw: list[bytes], values: list[Any]) -> Iterable[tuple[bytes, Any]]:
        """The (line, value) pairs that have checks left after the acceptor: all of them for
        an older api-version, else the lines long enough for sizes and byte lengths."""
        if self.quick_unfolded:
            return zip(raw, values, strict=True)
        return compress(zip(raw, values, strict=True), map(_SHORT_LINE.__lt__, map(len, raw)))

    def unfolded_clean(self, line: bytes, value: Any) -> bool:
        """No finding from the checks no fold covers (``value`` is an accepted object)."""
        if len(line) <= _SHORT_LINE and not self.quick_unfolded:
            return True
        data = line.rstrip(b"\r\n")
        ctx, checks = (self.quick, self.quick_unfolded) if short_text(data) else (
            self.ctx, self.unfolded)
        found: list[Raw] = []

        def emit(rule: str, path: Path, message: str) -> None:
            found.append((rule, path, message))

        for check in checks:
            quiet = QUIET.get(check)
            if quiet is None or not quiet(value, ctx):
                check(value, ctx, emit)
        return not found

    def clean(self, line: bytes, value: Any) -> bool:
        """One line of a proved chunk has no finding (duplicate ids aside)."""
        accept = self._acceptor()
        assert accept is not None
        return (accept.one(value)
                and not any(ch in value["id"] for ch in self.id_chars)
                and self.unfolded_clean(line, value))

    def refine(self, first: int, raw: list[bytes], values: list[Any]) -> Iterator[Finding]:
        """A proved chunk with some line the acceptor refused: line by line, in order."""
        for lineno, line, value in zip(range(first, first + len(raw)), raw, values,
                                       strict=True):
            data = line.rstrip(b"\r\n")
            if not self.clean(line, value):
                yield from self.line(lineno, data)
                continue
            self.entries += 1
            device_id = value["id"]
            if self.ids.setdefault(device_id, lineno) != lineno:
                yield self.duplicate(lineno, data, device_id)

    def batch(self, lines: list[tuple[int, bytes]]) -> Iterator[Finding]:
        """The first lines, and chunks ``chunk`` cannot prove at once: parse each line, prove
        the batch free of duplicate keys at once, validate it with one schema call, run the rule
        checks line by line; any line with a finding is redone exactly by ``line``."""
        values = self.parse_all(lines)
        if values is None:
            for lineno, data in lines:
                yield from self.line(lineno, data)
            return
        schema_ok = self.accept_many(values)
        raw: list[Raw] = []
        found = raw.append

        def emit(rule: str, path: Path, message: str) -> None:
            found((rule, path, message))

        quick, quick_checks, full, full_checks = (self.quick, self.quick_checks, self.ctx,
                                                  self.checks)
        ids = self.ids
        for (lineno, data), value in zip(lines, values, strict=True):
            ctx, checks = (quick, quick_checks) if short_text(data) else (full, full_checks)
            if schema_ok or self.accept(value):
                for check in checks:
                    check(value, ctx, emit)
            else:
                raw.append(("", (), ""))  # the schema said no: the exact path explains it
            if raw:
                raw.clear()
                yield from self.line(lineno, data)
                continue
            self.entries += 1
            device_id = value.get("id")
            if type(device_id) is str and ids.setdefault(device_id, lineno) != lineno:
                yield self.duplicate(lineno, data, device_id)

    def parse_all(self, lines: list[tuple[int, bytes]]) -> list[Any] | None:
        """Every line's object, or None when some line needs the exact path."""
        values = []
        loads = orjson.loads
        colons = 0
        try:
            for _, data in lines:
                if len(data) > FAST_MAX or _ESCAPED_COLON.search(data):
                    return None
                colons += data.count(b":")
                value = loads(data)
                if type(value) is not dict:
                    return None
                values.append(value)
        except (orjson.JSONDecodeError, TypeError):  # TypeError: orjson's recursion limit
            return None
        # see fast_load: fewer ':' after re-serialising means a repeated key somewhere
        # (blank lines and a BOM already failed orjson.loads)
        try:
            again = orjson.dumps(values)
        except TypeError:  # deeper than orjson.dumps goes
            return None
        return values if colons == again.count(b":") else None

    def line(self, lineno: int, data: bytes) -> Iterator[Finding]:
        """The exact path for one line."""
        if not data.strip(b" \t\r"):
            row = RULES["import-blank-line"]
            yield Finding(row.id, row.code, row.severity, "", lineno, 1,
                          "blank line: an import file holds one device object per line",
                          row.evidence)
            return
        self.entries += 1
        value, found, readable = text_findings(data, self.ctx, check_line, lineno - 1)
        yield from found
        if readable and type(value) is dict:
            device_id = value.get("id")
            if type(device_id) is str and self.ids.setdefault(device_id, lineno) != lineno:
                yield self.duplicate(lineno, data, device_id)

    def duplicate(self, lineno: int, data: bytes, device_id: str) -> Finding:
        first = self.ids[device_id]
        loc = Locator(scan(data.decode("utf-8", "replace")), lineno - 1)
        return loc.finding("duplicate-id", ("id",),
                           f"device id {show(device_id)} already appears at line {first}; an id "
                           "may appear only once per import file")


def validate_import(
    stream: Iterable[bytes] | Iterable[str],
    *,
    api_version: str = bulkreg_schema.API_VERSION,
    max_findings: int = DEFAULT_MAX_FINDINGS,
) -> Report:
    """Check a newline-delimited import file (devices.txt) read from ``stream``."""
    kept: list[Finding] = []
    left_out = 0
    entries = 0
    for item in iter_import(stream, api_version=api_version):
        if isinstance(item, int):
            entries = item
        elif len(kept) < max_findings:
            kept.append(item)
        else:
            left_out += 1
    return Report(tuple(kept), entries, left_out)
