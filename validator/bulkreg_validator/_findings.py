"""Findings: the records a validation returns, and how raw problems become them.

A check or a schema keyword reports a raw problem (rule, path, message); this module turns it into
a ``Finding`` with the rule's metadata and, when the text was scanned exactly, its line and column,
and sorts them deterministically. It also owns the schema side shared by bulk payloads and import
lines (the compiled schemas, jsonschema-rs acceptance) and the check of one JSON text: the fast
path on orjson, then, for any text with a finding, the exact scanner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import bulkreg_schema

from . import _engine
from ._checks import Context, key_problem
from ._parse import Problem, Scan, decode, fast_load, line_index, position, scan
from ._rules import RULES

__all__ = ["Finding", "Report"]

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
FAST_MAX = 16 * 1024 * 1024


def short_text(data: bytes) -> bool:
    size = len(data)
    if size <= _KEY_MAX_TEXT:
        return True
    if size > _SHORT_TEXT or (b"\\" in data and b'\\"' in data):  # (one byte: memchr)
        return False
    # No run of text between quotes is longer than a key may be. In at most twice that length,
    # any longer run covers the middle offset: only the run around it needs measuring.
    after = data.find(b'"', _KEY_MAX_TEXT)
    return (size if after < 0 else after) - data.rfind(b'"', 0, _KEY_MAX_TEXT) - 1 <= _KEY_MAX_TEXT


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


def show(value: Any, limit: int = 40) -> str:
    if type(value) is str:
        return repr(value if len(value) <= limit else value[:limit] + "…")
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


JSON_TYPES = {str: "a string", int: "a number", float: "a number", bool: "a boolean",
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
        found = JSON_TYPES.get(type(value), type(value).__name__)
        if rule in ("twin-depth", "twin-array-null"):
            return rule, path, f"{where} is {found}: {summary}"
        return rule, path, f"{where} is {found}, expected {' or '.join(kinds)}"
    if keyword == "enum":
        canonical = [e for e in expected if type(value) is str and type(e) is str
                     and e.lower() == value.lower()]
        if canonical:
            return "enum-case", path, f"{where} {show(value)} is written {canonical[0]!r} in " \
                "the contract; the service accepts other casings, other tools may not"
        choices = ", ".join(str(e) for e in expected if e is not None)
        return rule, path, f"{where} {show(value)} is not one of: {choices}"
    if keyword == "additionalProperties":
        near = [d for d in expected if d.lower() == str(value).lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return rule, path, f"unknown member {show(value)}{hint}: {summary}"
    if keyword == "required":
        missing = [n for n in expected if n not in value]
        return rule, path, f"{where} has no {', '.join(missing)}: {summary}"
    if keyword == "pattern" and path and value == path[-1] and rule == "twin-key-chars":
        return rule, path, f"key {show(value)}: {summary}"
    if rule == "auth-key-invalid" and type(value) is str:
        return rule, path, f"{where} {show(value, 16)} {key_problem(value)}: {summary}"
    if keyword in ("maxLength", "minLength"):
        return rule, path, f"{where} has {len(value)} characters: {summary}"
    if keyword in ("maxItems", "minItems"):
        return rule, path, f"{where} has {len(value)} entries: {summary}"
    return rule, path, f"{where} {show(value)}: {summary}"


def _segments(path: Path) -> list[tuple[int, int, str]]:
    return [(0, s, "") if isinstance(s, int) else (1, 0, s) for s in path]


class Locator:
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


def _problems(loc: Locator, problems: Iterable[Problem]) -> list[Finding]:
    return [loc.finding(p.rule, p.path, p.message, p.offset) for p in problems]


def sort_findings(findings: Iterable[Finding], paths: dict[int, Path]) -> list[Finding]:
    """Deterministic order: by position in the text (line, column), then JSON pointer, then
    rule; findings without a position (a parsed value) by pointer, then rule."""
    items = list(findings)
    keyed = sorted(range(len(items)), key=lambda i: (
        items[i].line or 0, items[i].column or 0, _segments(paths[i]), items[i].rule))
    return [items[i] for i in keyed]



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


def text_findings(data: bytes, ctx: Context, checker: Any,
                   line_offset: int = 0) -> tuple[Any, list[Finding], bool]:
    """Check one JSON text. Returns (value or None, findings, readable)."""
    value = fast_load(data) if len(data) <= FAST_MAX else None
    if value is not None:
        raw = checker(value, ctx._replace(exhaustive=not short_text(data),
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
    loc = Locator(sc, line_offset)
    found = _problems(loc, sc.problems)
    paths = {i: p.path for i, p in enumerate(sc.problems)}
    if sc.fatal:
        return None, sort_findings(found, paths), False
    raw = checker(sc.value, ctx._replace(exhaustive=True, literal_numbers=True))
    # a value the scanner replaced (NaN, 1e400, a lone surrogate) has its finding already
    replaced = {p.path for p in sc.problems if p.rule != "json-duplicate-key"}
    for rule, path, message in raw:
        if path in replaced:
            continue
        paths[len(found)] = path
        found.append(loc.finding(rule, path, message))
    return sc.value, sort_findings(found, paths), True
