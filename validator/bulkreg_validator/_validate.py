"""Validation: parse -> schema pass -> rule checks -> located, sorted findings in a Report.

Valid input takes the fast path (orjson, the compiled schema's boolean walk, the checks); only a
payload with findings is scanned again exactly, to give each finding its line and column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import orjson

import bulkreg_schema

from . import _engine
from ._checks import Check, Context, checks_for, key_problem
from ._parse import _ESCAPED_COLON, Problem, Scan, decode, fast_load, line_index, position, scan
from ._rules import LIMITS, RULES

__all__ = ["Finding", "Report", "validate", "validate_import"]

Path = tuple[str | int, ...]
# When the twin walk can be skipped (Context.exhaustive False): the docs' size algorithm counts at
# most 4 bytes per byte of JSON text (a number "1," counts 8), so a text of at most 2048 bytes
# keeps tags under 8 KB and desired/reported under 32 KB, and its strings under 4 KB. A key over
# 1 KB of UTF-8 needs over 1 KB of text between two quote characters (an escape is never shorter
# in the text than in UTF-8), unless the key holds an escaped quote.
_SHORT_TEXT = 2048
_KEY_MAX_TEXT = 1024
# Larger texts skip the orjson fast path (which would hold two more copies) and go straight to the
# exact scanner: no valid payload comes near (100 entries of at most ~80 KB of twin each).
_FAST_MAX = 16 * 1024 * 1024
DEFAULT_MAX_FINDINGS = 10_000


def _short_text(data: bytes) -> bool:
    size = len(data)
    if size <= _KEY_MAX_TEXT:
        return True
    if size > _SHORT_TEXT or b'\\"' in data:
        return False
    return max(map(len, data.split(b'"'))) <= _KEY_MAX_TEXT


class Finding(NamedTuple):
    """One problem, as the hub would see it."""

    rule: str
    code: str | None
    severity: str
    pointer: str  # RFC 6901, into the payload (bulk) or into the line's object (import)
    line: int | None
    column: int | None
    message: str
    evidence: str


class Report(NamedTuple):
    findings: tuple[Finding, ...]
    entries: int  # devices seen (array entries, or non-blank import lines)
    truncated: int = 0  # findings left out beyond max_findings

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        """No error finding (warnings allowed)."""
        return not any(f.severity == "error" for f in self.findings)


# --- compiled schemas, loaded once on first use ------------------------------------------------

_COMPILED: dict[str, _engine.Compiled] = {}


def schema(name: str) -> _engine.Compiled:
    if name not in _COMPILED:
        documents = bulkreg_schema.registry()
        uri = bulkreg_schema.BASE_URI + name + ".json"
        _COMPILED[name] = _engine.compile_schema(documents, uri)
    return _COMPILED[name]


# --- findings ----------------------------------------------------------------------------------

Raw = tuple[str, Path, str]  # rule, path, message


def pointer(path: Path) -> str:
    return "".join("/" + str(seg).replace("~", "~0").replace("/", "~1") for seg in path)


def _show(value: Any, limit: int = 40) -> str:
    if type(value) is str:
        return repr(value if len(value) <= limit else value[:limit] + "…")
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


_JSON_TYPES = {str: "a string", int: "a number", float: "a number", bool: "a boolean",
               dict: "an object", list: "an array", type(None): "null"}


def _field(path: Path) -> str:
    for seg in reversed(path):
        if type(seg) is str:
            return seg
        return f"entry {seg}" if len(path) == 1 else f"item {seg}"
    return "the value"


def schema_message(error: _engine.Error) -> Raw:
    rule, path, keyword, expected, value = error
    where = _field(path)
    summary = RULES[rule].summary
    if keyword == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        found = _JSON_TYPES.get(type(value), type(value).__name__)
        if rule in ("twin-depth", "twin-array-null"):
            return rule, path, f"{where} is {found}: {summary}"
        return rule, path, f"{where} is {found}, expected {' or '.join(kinds)}"
    if keyword == "enum":
        canonical = [e for e in expected if type(value) is str and type(e) is str
                     and e.lower() == value.lower()]
        if canonical:
            return "enum-case", path, f"{where} {_show(value)} is written {canonical[0]!r} in " \
                "the contract; the service accepts other casings, other tools may not"
        choices = ", ".join(str(e) for e in expected if e is not None)
        return rule, path, f"{where} {_show(value)} is not one of: {choices}"
    if keyword == "additionalProperties":
        near = [d for d in expected if d.lower() == str(value).lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return rule, path, f"unknown member {_show(value)}{hint}: {summary}"
    if keyword == "required":
        missing = [n for n in expected if n not in value]
        return rule, path, f"{where} has no {', '.join(missing)}: {summary}"
    if keyword == "pattern" and path and value == path[-1] and rule == "twin-key-chars":
        return rule, path, f"key {_show(value)}: {summary}"
    if rule == "auth-key-invalid" and type(value) is str:
        return rule, path, f"{where} {_show(value, 16)} {key_problem(value)}: {summary}"
    if keyword in ("maxLength", "minLength"):
        return rule, path, f"{where} has {len(value)} characters: {summary}"
    if keyword in ("maxItems", "minItems"):
        return rule, path, f"{where} has {len(value)} entries: {summary}"
    return rule, path, f"{where} {_show(value)}: {summary}"


def _segments(path: Path) -> list[tuple[int, int, str]]:
    return [(0, s, "") if isinstance(s, int) else (1, 0, s) for s in path]


class _Locator:
    """Turns raw findings into Findings with line/column from an exact scan of the text."""

    def __init__(self, sc: Scan | None, line_offset: int = 0) -> None:
        self.scan = sc
        self.line_offset = line_offset
        self.lines = line_index(sc.text) if sc is not None else None

    def where(self, path: Path, offset: int | None = None) -> tuple[int | None, int | None]:
        if self.scan is None:
            return None, None
        if offset is None:
            starts = self.scan.starts
            probe = path
            while probe not in starts and probe:
                probe = probe[:-1]
            offset = starts.get(probe, 0)
        line, column = position(self.scan.text, offset, self.lines)
        return line + self.line_offset, column

    def finding(self, rule: str, path: Path, message: str, offset: int | None = None) -> Finding:
        row = RULES[rule]
        line, column = self.where(path, offset)
        return Finding(rule, row.code, row.severity, pointer(path), line, column, message,
                       row.evidence)


def _problems(loc: _Locator, problems: Iterable[Problem]) -> list[Finding]:
    return [loc.finding(p.rule, p.path, p.message, p.offset) for p in problems]


def _sorted(findings: Iterable[Finding], paths: dict[int, Path]) -> list[Finding]:
    """Deterministic order: by position in the text (line, column), then JSON pointer, then
    rule; findings without a position (a parsed value) by pointer, then rule."""
    items = list(findings)
    keyed = sorted(range(len(items)), key=lambda i: (
        items[i].line or 0, items[i].column or 0, _segments(paths[i]), items[i].rule))
    return [items[i] for i in keyed]


# --- checking a parsed value -------------------------------------------------------------------


def _python_problems(value: Any, out: list[Raw]) -> None:
    """What a parsed Python value holds that JSON cannot (validate() of a parsed payload).

    Iterative, like the scanner: a deep value costs no stack.
    """
    limit = LIMITS["json_max_depth"]
    stack: list[tuple[Any, Path]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        kind = type(node)
        if kind is float and not math.isfinite(node):
            out.append(("json-nonfinite", path, f"{node!r} is not a JSON number"))
        elif kind is str:
            _surrogates(node, path, out)
        elif kind is dict or kind is list:
            if len(path) >= limit:
                out.append(("json-depth", path, f"nesting deeper than {limit} levels"))
                return
            pairs = node.items() if kind is dict else enumerate(node)
            for key, item in pairs:
                if kind is dict and type(key) is not str:
                    out.append(("value-type", path, f"member name {_show(key)} is not a string"))
                    continue
                if type(key) is str:
                    _surrogates(key, (*path, key), out)
                stack.append((item, (*path, key)))
        elif kind not in _JSON_TYPES:
            out.append(("value-type", path, f"{kind.__name__} is not a JSON value"))


def _surrogates(text: str, path: Path, out: list[Raw]) -> None:
    if not text.isascii():  # O(1): ASCII strings cannot hold a surrogate
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            out.append(("json-lone-surrogate", path, f"the string holds a lone surrogate "
                        f"U+{ord(text[exc.start]):04X}, which UTF-8 cannot carry"))


def check_entry(entry: Any, ctx: Context, prefix: Path, out: list[Raw],
                checks: tuple[Check, ...] | None = None) -> None:
    """The rule checks of one entry (an object); paths are made absolute with ``prefix``."""
    if type(entry) is not dict:
        return

    def emit(rule: str, path: Path, message: str) -> None:
        out.append((rule, (*prefix, *path), message))

    for fn in checks if checks is not None else checks_for(ctx):
        fn(entry, ctx, emit)


def _duplicate(ids: dict[str, Any], entry: Any, where: Any, path: Path, out: list[Raw],
               describe: str) -> None:
    if type(entry) is not dict:
        return
    device_id = entry.get("id")
    if type(device_id) is not str:
        return
    first = ids.setdefault(device_id, where)
    if first != where:
        out.append(("duplicate-id", (*path, "id"),
                    f"device id {_show(device_id)} already appears at {describe.format(first)}; "
                    "an id may appear only once per call (import: per file)"))


def schema_findings(name: str, value: Any, out: list[Raw], ctx: Context) -> None:
    """The findings of schema ``name`` on ``value``.

    The schema bounds every twin number to +-2^52 (JSON Schema cannot tell 1e300 from an integer
    literal); the hub limits integer literals only (EDGE checks JTokenType.Integer). When numbers
    keep their literal's type (``ctx.literal_numbers``), a float's range finding is a float
    literal's and is dropped. orjson's values do not keep it (2^64 arrives as a float), so there
    the finding stays and sends the text to the exact scanner, which judges the literal's digits.
    """
    errors: list[_engine.Error] = []
    schema(name).errors(value, (), errors)
    out.extend(schema_message(e) for e in errors
               if not (e[0] == "twin-integer-range" and type(e[4]) is float
                       and ctx.literal_numbers))


def _short(entry: Any) -> bool:
    """True when no twin size or byte limit can be exceeded in ``entry`` (see _SHORT_TEXT): its
    compact re-serialisation is no longer than any text it came from."""
    try:
        return _short_text(orjson.dumps(entry))
    except TypeError:  # too deep to serialise: not short
        return False


def check_bulk(value: Any, ctx: Context) -> list[Raw]:
    out: list[Raw] = []
    accepted = fast_accept("BulkRequest") if ctx.accelerate else schema("BulkRequest").ok
    if not accepted(value):
        schema_findings("BulkRequest", value, out, ctx)
    if type(value) is list:
        ids: dict[str, int] = {}
        full, quick = ctx._replace(exhaustive=True), ctx._replace(exhaustive=False)
        full_checks, quick_checks = checks_for(full), checks_for(quick)
        prefix: Path = ()

        def emit(rule: str, path: Path, message: str) -> None:
            out.append((rule, (*prefix, *path), message))

        for index, entry in enumerate(value):
            if type(entry) is not dict:
                continue
            prefix = (index,)
            entry_ctx, checks = (quick, quick_checks) if _short(entry) else (full, full_checks)
            for check in checks:
                check(entry, entry_ctx, emit)
            _duplicate(ids, entry, index, prefix, out, "/{}/id")
    return out


_ACCEPT: dict[str, Any] = {}


def fast_accept(name: str, *, many: bool = False) -> Any:
    """A boolean validator of schema ``name`` (``many``: of a list of them) for hot loops,
    on jsonschema-rs when it is installed.

    The Rust engine reads the same schema files and only says yes or no; every no is explained by
    the compiled Python schema, so findings are the same either way (tests/test_engine.py checks
    that the engines agree).
    """
    key = name + ("[]" if many else "")
    if key not in _ACCEPT:
        target = {"$ref": bulkreg_schema.BASE_URI + name + ".json"}
        try:
            import jsonschema_rs  # noqa: PLC0415 - only import files pay for loading it

            registry = jsonschema_rs.Registry(list(bulkreg_schema.registry().items()))
            document = {"type": "array", "items": target} if many else target
            _ACCEPT[key] = jsonschema_rs.validator_for(document, registry=registry).is_valid
        except ImportError:
            ok = schema(name).ok
            _ACCEPT[key] = (lambda values: all(map(ok, values))) if many else ok
    return _ACCEPT[key]


def check_line(value: Any, ctx: Context, *, schema_ok: bool | None = None) -> list[Raw]:
    """Findings of one import line's object (``schema_ok``: the schema verdict, if known)."""
    out: list[Raw] = []
    if not (fast_accept("ImportLine")(value) if schema_ok is None else schema_ok):
        schema_findings("ImportLine", value, out, ctx)
    check_entry(value, ctx, (), out)
    return out


# --- entry points ------------------------------------------------------------------------------


def _as_bytes(payload: str) -> tuple[bytes | None, Finding | None]:
    try:
        return payload.encode("utf-8"), None
    except UnicodeEncodeError as exc:
        line, column = position(payload, exc.start)
        rule = RULES["json-lone-surrogate"]
        return None, Finding(rule.id, rule.code, rule.severity, "", line, column,
                             f"the text holds a lone surrogate U+{ord(payload[exc.start]):04X}",
                             rule.evidence)


def _text_findings(data: bytes, ctx: Context, checker: Any,
                   line_offset: int = 0) -> tuple[Any, list[Finding], bool]:
    """Check one JSON text. Returns (value or None, findings, readable)."""
    value = fast_load(data) if len(data) <= _FAST_MAX else None
    if value is not None:
        raw = checker(value, ctx._replace(exhaustive=not _short_text(data),
                                          literal_numbers=False))
        if not raw:
            return value, [], True
        value = None  # the exact scan below parses again: hold one parsed copy at a time
    text, bad = decode(data)
    if text is None:
        assert bad is not None
        # the text before the bad byte decodes alike with replacement characters
        line, column = position(data.decode("utf-8", "replace"), bad.offset)
        row = RULES[bad.rule]
        return None, [Finding(bad.rule, row.code, row.severity, "", line + line_offset, column,
                              bad.message, row.evidence)], False
    sc = scan(text)
    loc = _Locator(sc, line_offset)
    found = _problems(loc, sc.problems)
    paths = {i: p.path for i, p in enumerate(sc.problems)}
    if sc.fatal:
        return None, _sorted(found, paths), False
    raw = checker(sc.value, ctx._replace(exhaustive=True, literal_numbers=True))
    # a value the scanner replaced (NaN, 1e400, a lone surrogate) has its finding already
    replaced = {p.path for p in sc.problems if p.rule != "json-duplicate-key"}
    for rule, path, message in raw:
        if path in replaced:
            continue
        paths[len(found)] = path
        found.append(loc.finding(rule, path, message))
    return sc.value, _sorted(found, paths), True


def validate(payload: Any, *, api_version: str = bulkreg_schema.API_VERSION,
             accelerate: bool = False) -> Report:
    """Check a bulk payload: bytes or str of JSON text, or an already parsed value.

    Never raises for bad payloads; every problem is a Finding in the Report. ``accelerate``
    checks the schema with jsonschema-rs (same verdicts): worth its ~50 ms import in a
    long-running process such as the reference hub, not in a one-shot lint.
    """
    ctx = Context("bulk", api_version, accelerate=accelerate)
    if isinstance(payload, bytes | bytearray | memoryview):
        payload = bytes(payload)
    elif isinstance(payload, str):
        payload, bad = _as_bytes(payload)
        if bad is not None:
            return Report((bad,), 0)
    else:
        raw: list[Raw] = []
        _python_problems(payload, raw)
        if not any(r[0] == "json-depth" for r in raw):
            raw.extend(check_bulk(payload, ctx))
        loc = _Locator(None)
        found = [loc.finding(*r) for r in raw]
        entries = len(payload) if type(payload) is list else 0
        return Report(tuple(_sorted(found, {i: r[1] for i, r in enumerate(raw)})), entries)
    value, found, _ = _text_findings(payload, ctx, check_bulk)
    entries = len(value) if type(value) is list else 0
    return Report(tuple(found), entries)


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
            ctx, checks = (quick, quick_checks) if _short_text(data) else (full, full_checks)
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
                if len(data) > _FAST_MAX or _ESCAPED_COLON.search(data):
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
        value, found, readable = _text_findings(data, self.ctx, check_line, lineno - 1)
        yield from found
        if readable and type(value) is dict:
            device_id = value.get("id")
            if type(device_id) is str and self.ids.setdefault(device_id, lineno) != lineno:
                yield self.duplicate(lineno, data, device_id)

    def duplicate(self, lineno: int, data: bytes, device_id: str) -> Finding:
        first = self.ids[device_id]
        loc = _Locator(scan(data.decode("utf-8", "replace")), lineno - 1)
        return loc.finding("duplicate-id", ("id",),
                           f"device id {_show(device_id)} already appears at line {first}; an id "
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
