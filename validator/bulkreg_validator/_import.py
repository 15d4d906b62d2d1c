"""Import files (devices.txt: one device object per line): ``iter_import``, ``validate_import``.

Lines are read in batches of ``BATCH``: each batch is parsed with orjson, proved free of duplicate
keys at once and validated with one jsonschema-rs call; a line with any finding is redone exactly,
alone. Memory stays constant but for the set of ids (duplicates count across the whole file).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

import bulkreg_schema

from ._checks import Check, Context
from ._findings import (
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


BATCH = 256  # lines checked together on the fast path


def iter_import(
    stream: Iterable[bytes] | Iterable[str],
    *,
    api_version: str = bulkreg_schema.API_VERSION,
) -> Iterator[Finding | int]:
    """Findings of an import file, line by line, in constant memory (but the id set).

    Yields Findings in line order, and finally the number of entries (an int).
    """
    state = _ImportState(Context("import", api_version))
    batch: list[tuple[int, bytes]] = []
    lines: Iterable[bytes | str] = stream
    for lineno, line in enumerate(lines, 1):
        data = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
        batch.append((lineno, data.rstrip(b"\r\n")))
        if len(batch) == BATCH:
            yield from state.batch(batch)
            batch = []
    yield from state.batch(batch)
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
        self.accept = fast_accept("ImportLine")
        self.accept_many = fast_accept("ImportLine", many=True)

    def batch(self, lines: list[tuple[int, bytes]]) -> Iterator[Finding]:
        """Fast path: parse each line, prove the batch free of duplicate keys at once, validate
        it with one schema call; any line with a finding is redone exactly by ``line``."""
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
