"""The registry operations SDKs call beside the bulk one: list, query, statistics, modules.

Pure functions of a ``Registry`` returning a ``Plan``, like the model's own operations; the hub
serves them (``GET /devices``, ``POST /devices/query``, ``GET /statistics/devices``,
``PUT/GET/DELETE /devices/{id}/modules/{mid}``, ``GET /devices/{id}/modules``).

The query language is the subset the SDKs' query helpers and the docs' registry examples use:
``SELECT * FROM devices`` (or ``devices.modules``) with an optional ``WHERE`` of comparisons
(``= != <> < <= > >=``) between a twin path (``deviceId``, ``status``, ``tags.a.b``,
``properties.desired.x``, …) and a literal, ``IS_DEFINED(path)``, ``STARTSWITH(path, 's')``,
``ENDSWITH(path, 's')``, combined with ``AND``, ``OR``, ``NOT`` and parentheses; and
``SELECT COUNT() AS name FROM devices [WHERE …]``. Pages: ``x-ms-max-item-count`` (default 100,
at most 1000) and an opaque ``x-ms-continuation`` token, present only while more pages follow.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

import bulkreg_schema

from .model import (
    _DEVICE_MEMBERS,
    _JSON,
    Changes,
    Plan,
    Registry,
    _delete,
    _device_fields,
    _device_wire,
    _if_match,
    _new_twin,
    _twin_wire,
    _Tx,
    device_etag,
)

__all__ = ["delete_module", "list_devices", "list_modules", "put_module", "query",
           "statistics"]

TOP_MAX = 1000  # facts §5: top outside 1..1000 is treated as 1000
PAGE_DEFAULT, PAGE_MAX = 100, 1000  # not a contract limit: query pages (SDK defaults)
_MODULE_MEMBERS = frozenset({"authentication", "managedBy"})


def _ok(body: Any, registry: Registry, headers: dict[str, str] | None = None) -> Plan:
    return Plan(200, {**_JSON, **(headers or {})}, body, Changes({}, registry.counter))


def _devices(registry: Registry) -> list[dict[str, Any]]:
    """Device records (no modules), in id order: the order of every listing here."""
    records = registry.records()
    return [records[key] for key in sorted(k for k in records if not k[1])]


def list_devices(registry: Registry, top: str | None, *,
                 api_version: str = bulkreg_schema.API_VERSION) -> Plan:
    """GET /devices[?top=n]: up to ``top`` devices (1..1000; anything else means 1000)."""
    count = int(top) if top is not None and top.strip().isdigit() else TOP_MAX
    if not 1 <= count <= TOP_MAX:
        count = TOP_MAX
    return _ok([_device_wire(r, api_version) for r in _devices(registry)[:count]], registry)


def statistics(registry: Registry) -> Plan:
    """GET /statistics/devices: device counts (modules are not devices)."""
    devices = _devices(registry)
    enabled = sum(1 for r in devices if r["status"] == "enabled")
    return _ok({"totalDeviceCount": len(devices), "enabledDeviceCount": enabled,
                "disabledDeviceCount": len(devices) - enabled}, registry)


# --- modules -----------------------------------------------------------------------------------


def _module_wire(record: dict[str, Any], api_version: str) -> dict[str, Any]:
    wire = _device_wire(record, api_version)
    wire["managedBy"] = record.get("managedBy")
    return wire


def list_modules(registry: Registry, device_id: str, *,
                 api_version: str = bulkreg_schema.API_VERSION) -> Plan:
    records = registry.records()
    if (device_id, "") not in records:
        return registry.error(404, "DeviceNotFound", f"Device {device_id} could not be found.")
    keys = sorted(k for k in records if k[0] == device_id and k[1])
    return _ok([_module_wire(records[k], api_version) for k in keys], registry)


def get_module(registry: Registry, device_id: str, module_id: str, *,
               api_version: str = bulkreg_schema.API_VERSION) -> Plan:
    record = registry.records().get((device_id, module_id))
    if record is None:
        return _module_absent(registry, device_id, module_id)
    return _ok(_module_wire(record, api_version), registry)


def _module_absent(registry: Registry, device_id: str, module_id: str) -> Plan:
    return registry.error(404, "ModuleNotFound",
                          f"Module {module_id} on device {device_id} could not be found.")


def put_module(registry: Registry, device_id: str, module_id: str, body: bytes,
               if_match: str | None, *, api_version: str = bulkreg_schema.API_VERSION) -> Plan:
    """PUT /devices/{id}/modules/{mid}: create without If-Match (the device must exist),
    update with "*" or a matching etag, like PUT /devices/{id}."""
    parsed, problem = registry._single_body(device_id, body, "deviceId")
    if problem is not None:
        return problem
    if parsed.get("moduleId") not in (None, module_id):
        return registry.error(400, "ArgumentInvalid",
                              "moduleId in the body does not match the request URI")
    records = registry.records()
    if (device_id, "") not in records:
        return registry.error(404, "DeviceNotFound", f"Device {device_id} could not be found.")
    old = records.get((device_id, module_id))
    match = _if_match(if_match)
    if match is None and old is not None:
        return registry.error(409, "ModuleAlreadyExistsOnDevice",
                              f"A module with ID '{module_id}' is already registered on device "
                              f"'{device_id}'.")
    if match is not None and old is None:
        return _module_absent(registry, device_id, module_id)
    if match not in (None, "*") and old is not None and device_etag(old["version"]) != match:
        return registry.error(412, "PreconditionFailed",
                              f"Precondition failed: etag did not match, existing:"
                              f"{device_etag(old['version'])} given:{match}")
    entry = {k: v for k, v in parsed.items()
             if k in _MODULE_MEMBERS | _DEVICE_MEMBERS and v is not None}
    entry.update(id=device_id, moduleId=module_id)
    tx = _Tx(registry)
    record = {**(old or _new_twin(tx, {})), **_device_fields(tx, entry, old),
              "managedBy": entry.get("managedBy")}
    tx.put((device_id, module_id), record)
    return Plan(200, dict(_JSON), _module_wire(record, api_version), tx.done())


def delete_module(registry: Registry, device_id: str, module_id: str,
                  if_match: str | None) -> Plan:
    old = registry.records().get((device_id, module_id))
    if old is None:
        return _module_absent(registry, device_id, module_id)
    match = _if_match(if_match)
    if match not in (None, "*") and device_etag(old["version"]) != match:
        return registry.error(412, "PreconditionFailed",
                              f"Precondition failed: etag did not match, existing:"
                              f"{device_etag(old['version'])} given:{match}")
    tx = _Tx(registry)
    _delete(tx, (device_id, module_id), {}, old)
    return Plan(204, {}, None, tx.done())


# --- query -------------------------------------------------------------------------------------


class QueryError(ValueError):
    """A query outside the supported subset, with what was expected where."""


_TOKEN = re.compile(r"""\s*(?:
    (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | '(?P<single>(?:[^'\\]|\\.|'')*)'
  | "(?P<double>(?:[^"\\]|\\.)*)"
  | (?P<op><>|!=|<=|>=|=|<|>|\(|\)|,|\*)
  | (?P<name>\$?[A-Za-z_][A-Za-z0-9_$-]*(?:\.\$?[A-Za-z_][A-Za-z0-9_$-]*)*)
)""", re.VERBOSE)

Predicate = Callable[[dict[str, Any]], bool]
_UNDEFINED = object()


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None or found.end() == pos:
            raise QueryError(f"unexpected text at position {pos}: {text[pos:pos + 20]!r}")
        pos = found.end()
        kind = found.lastgroup
        value = found.group(kind or 0)
        if kind == "number":
            out.append(("literal", float(value) if any(c in value for c in ".eE") else
                        int(value)))
        elif kind in ("single", "double"):
            out.append(("literal", value.replace("''", "'") if kind == "single" else value))
        elif kind == "name" and value.upper() in {"TRUE", "FALSE", "NULL"}:
            out.append(("literal", {"TRUE": True, "FALSE": False, "NULL": None}[value.upper()]))
        else:
            out.append((kind or "op", value))
    return out


def _lookup(twin: dict[str, Any], path: str) -> Any:
    node: Any = twin
    for part in path.split("."):
        if type(node) is not dict or part not in node:
            return _UNDEFINED
        node = node[part]
    return node


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is _UNDEFINED:
        return False
    if op == "=":
        return (type(left) is type(right) and left == right) or \
            (isinstance(left, int | float) and isinstance(right, int | float)
             and not isinstance(left, bool) and not isinstance(right, bool) and left == right)
    if op in ("!=", "<>"):
        return not _compare("=", left, right)
    comparable = (isinstance(left, str) and isinstance(right, str)) or (
        isinstance(left, int | float) and isinstance(right, int | float)
        and not isinstance(left, bool) and not isinstance(right, bool))
    if not comparable:
        return False
    result: bool = {"<": left < right, "<=": left <= right, ">": left > right,
                    ">=": left >= right}[op]
    return result


class _Parser:
    """Recursive descent over the WHERE clause: OR of ANDs of (NOT) terms."""

    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", None)

    def keyword(self, word: str) -> bool:
        kind, value = self.peek()
        if kind == "name" and str(value).upper() == word:
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, value: Any = None) -> Any:
        got_kind, got = self.peek()
        if got_kind != kind or (value is not None and got != value):
            shown = "the end" if got_kind == "end" else repr(got)
            raise QueryError(f"expected {value or kind}, found {shown}")
        self.pos += 1
        return got

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self.keyword("OR"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else lambda t: any(p(t) for p in terms)

    def conjunction(self) -> Predicate:
        terms = [self.negation()]
        while self.keyword("AND"):
            terms.append(self.negation())
        return terms[0] if len(terms) == 1 else lambda t: all(p(t) for p in terms)

    def negation(self) -> Predicate:
        if self.keyword("NOT"):
            inner = self.negation()
            return lambda t: not inner(t)
        return self.term()

    def term(self) -> Predicate:
        if self.peek() == ("op", "("):
            self.pos += 1
            inner = self.disjunction()
            self.expect("op", ")")
            return inner
        name = str(self.expect("name"))
        function = name.upper()
        if function in _FUNCTIONS and self.peek() == ("op", "("):
            self.pos += 1
            path = str(self.expect("name"))
            argument = None
            if function != "IS_DEFINED":
                self.expect("op", ",")
                argument = self.expect("literal")
                if not isinstance(argument, str):
                    raise QueryError(f"{function} takes a string")
            self.expect("op", ")")
            return _FUNCTIONS[function](path, argument)
        kind, op = self.peek()
        if kind != "op" or op not in {"=", "!=", "<>", "<", "<=", ">", ">="}:
            raise QueryError(f"expected a comparison after {name}")
        self.pos += 1
        literal = self.expect("literal")
        return lambda t: _compare(op, _lookup(t, name), literal)


def _is_defined(path: str, _: Any) -> Predicate:
    return lambda t: _lookup(t, path) is not _UNDEFINED


def _starts(path: str, prefix: Any) -> Predicate:
    return lambda t: isinstance(v := _lookup(t, path), str) and v.startswith(prefix)


def _ends(path: str, suffix: Any) -> Predicate:
    return lambda t: isinstance(v := _lookup(t, path), str) and v.endswith(suffix)


_FUNCTIONS: dict[str, Callable[[str, Any], Predicate]] = {
    "IS_DEFINED": _is_defined, "STARTSWITH": _starts, "ENDSWITH": _ends}


def parse_query(text: str) -> tuple[str, str | None, Predicate]:
    """(source: 'devices' or 'devices.modules', COUNT() alias or None, WHERE predicate)."""
    parser = _Parser(_tokens(text))
    if not parser.keyword("SELECT"):
        raise QueryError("a query starts with SELECT")
    alias = None
    if parser.peek() == ("op", "*"):
        parser.pos += 1
    elif parser.keyword("COUNT"):
        parser.expect("op", "(")
        parser.expect("op", ")")
        alias = "COUNT"
        if parser.keyword("AS"):
            alias = str(parser.expect("name"))
    else:
        raise QueryError("only SELECT * and SELECT COUNT() are supported")
    if not parser.keyword("FROM"):
        raise QueryError("expected FROM")
    source = str(parser.expect("name"))
    if source not in ("devices", "devices.modules"):
        raise QueryError(f"only FROM devices and FROM devices.modules are supported, not {source}")
    predicate: Predicate = lambda _: True  # noqa: E731 - the no-WHERE case
    if parser.keyword("WHERE"):
        predicate = parser.disjunction()
    if parser.peek()[0] != "end":
        raise QueryError(f"unexpected {parser.peek()[1]!r} after the query")
    return source, alias, predicate


def _token_for(text: str, offset: int) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return base64.urlsafe_b64encode(f"{offset}:{digest}".encode()).decode()


def _offset_of(token: str, text: str) -> int | None:
    try:
        offset, _, digest = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if not offset.isdigit() or _token_for(text, int(offset)) != token or not digest:
        return None
    return int(offset)


def query(registry: Registry, body: Any, page_size: str | None, continuation: str | None, *,
          api_version: str = bulkreg_schema.API_VERSION) -> Plan:
    """POST /devices/query: one page of matching twins, oldest id first."""
    text = body.get("query") if type(body) is dict else None
    if not isinstance(text, str) or not text.strip():
        return registry.error(400, "ArgumentInvalid",
                              'the body must be {"query": "SELECT * FROM devices ..."}')
    try:
        source, alias, predicate = parse_query(text)
    except QueryError as exc:
        return registry.error(400, "ArgumentInvalid", f"query not supported: {exc}")
    records = registry.records()
    modules = source == "devices.modules"
    twins = [_twin_wire(records[k], api_version) for k in sorted(records)
             if bool(k[1]) == modules]
    matching = [t for t in twins if predicate(t)]
    if alias is not None:
        return _ok([{alias: len(matching)}], registry, {"x-ms-item-type": "JSON"})
    size = PAGE_DEFAULT
    if page_size is not None:
        if not page_size.strip().isdigit() or int(page_size) < 1:
            return registry.error(400, "ArgumentInvalid",
                                  "x-ms-max-item-count must be a whole number >= 1")
        size = min(int(page_size), PAGE_MAX)
    offset = 0
    if continuation:
        found = _offset_of(continuation, text)
        if found is None:
            return registry.error(400, "ArgumentInvalid",
                                  "x-ms-continuation is not a token of this query")
        offset = found
    page = matching[offset:offset + size]
    headers = {"x-ms-item-type": "Twin"}
    if offset + size < len(matching):
        headers["x-ms-continuation"] = _token_for(text, offset + size)
    return _ok(page, registry, headers)
