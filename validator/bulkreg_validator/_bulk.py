"""Bulk payloads (the body of POST /devices): ``validate``.

Valid input takes the fast path (orjson, the compiled schema's boolean walk, the checks); only a
payload with findings is scanned again exactly, to give each finding its line and column. A value
parsed by the caller is checked as it is, without positions.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

import bulkreg_schema

from ._checks import Context
from ._findings import (
    JSON_TYPES,
    Finding,
    Locator,
    Path,
    Raw,
    Report,
    fast_accept,
    schema,
    schema_findings,
    short_text,
    show,
    sort_findings,
    text_findings,
)
from ._parse import position
from ._rules import LIMITS, RULES, checks_for

__all__ = ["check_bulk", "validate"]

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
                    out.append(("value-type", path, f"member name {show(key)} is not a string"))
                    continue
                if type(key) is str:
                    _surrogates(key, (*path, key), out)
                stack.append((item, (*path, key)))
        elif kind not in JSON_TYPES:
            out.append(("value-type", path, f"{kind.__name__} is not a JSON value"))


def _surrogates(text: str, path: Path, out: list[Raw]) -> None:
    if not text.isascii():  # O(1): ASCII strings cannot hold a surrogate
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            out.append(("json-lone-surrogate", path, f"the string holds a lone surrogate "
                        f"U+{ord(text[exc.start]):04X}, which UTF-8 cannot carry"))

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
                    f"device id {show(device_id)} already appears at {describe.format(first)}; "
                    "an id may appear only once per call (import: per file)"))



def _short(entry: Any) -> bool:
    """True when no twin size or byte limit can be exceeded in ``entry`` (see _SHORT_TEXT): its
    compact re-serialisation is no longer than any text it came from."""
    try:
        return short_text(orjson.dumps(entry))
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


def validate(payload: Any, *, api_version: str = bulkreg_schema.API_VERSION,
             accelerate: bool = False) -> Report:
    """Check a bulk payload: bytes or str of JSON text, or an already parsed value.

    Never raises for bad payloads; every problem is a Finding in the Report. ``accelerate``
    checks the schema with jsonschema-rs (same verdicts): worth its ~50 ms import in a
    long-running process such as the reference hub, not in a one-shot lint.
    """
    return validate_parsed(payload, api_version=api_version, accelerate=accelerate)[1]


def validate_parsed(payload: Any, *, api_version: str = bulkreg_schema.API_VERSION,
                    accelerate: bool = False) -> tuple[Any, Report]:
    """``validate``, also returning the value the report judged, so that a caller acting on the
    payload (the reference hub) parses it once.

    The value is exact wherever the report has no error of request scope: every integer literal
    keeps its digits (a text orjson would round goes to the exact scanner, because the schema
    bounds twin numbers and unknown members are findings). With such an error it may be None or
    hold the scanner's stand-ins (NaN, lone surrogates, duplicate keys) and must not be used.
    """
    ctx = Context("bulk", api_version, accelerate=accelerate)
    if isinstance(payload, bytes | bytearray | memoryview):
        payload = bytes(payload)
    elif isinstance(payload, str):
        payload, bad = _as_bytes(payload)
        if bad is not None:
            return None, Report((bad,), 0)
    else:
        raw: list[Raw] = []
        _python_problems(payload, raw)
        if not any(r[0] == "json-depth" for r in raw):
            raw.extend(check_bulk(payload, ctx))
        loc = Locator(None)
        found = [loc.finding(*r) for r in raw]
        entries = len(payload) if type(payload) is list else 0
        return payload, Report(tuple(sort_findings(found, {i: r[1] for i, r in enumerate(raw)})),
                               entries)
    value, found, _ = text_findings(payload, ctx, check_bulk)
    entries = len(value) if type(value) is list else 0
    return value, Report(tuple(found), entries)
