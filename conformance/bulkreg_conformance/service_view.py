"""The service view: openapi.json as a run holds an endpoint to it (only what the service must do).

Schemathesis reads this view, and the shape checks (declared status, response schema) validate
answers against it: constraints whose rule is a warning, or whose rejection is not ``contract``
or ``documented``, are dropped (schemathesis' negative phase then sends only bodies the service
must reject); ``additionalProperties: false`` is dropped (the service ignores unknown members);
every optional member may be null (decision unset-members) and a per-entry errorCode a number
(decision error-code-form). :func:`representation` reads a response body as the contract's
schema does, whatever representation the endpoint chose where the spec leaves it open.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs

import bulkreg_schema
from bulkreg_conformance.answers import code_name
from bulkreg_conformance.client import Exchange
from bulkreg_conformance.evidence import FAILING
from bulkreg_conformance.expectation import rejection_evidence
from bulkreg_validator import RULES

__all__ = ["declared_statuses", "representation", "response_validator", "service_openapi"]


_TEMPLATES = (
    (re.compile(r"/devices/?$"), "/devices"),
    (re.compile(r"/devices/[^/]+$"), "/devices/{id}"),
    (re.compile(r"/twins/[^/]+$"), "/twins/{id}"),
)


def _operation(exchange: Exchange) -> dict[str, Any] | None:
    path = urlsplit(exchange.url).path
    paths = service_openapi()["paths"]
    for pattern, template in _TEMPLATES:
        if pattern.search(path) and template in paths:
            op: dict[str, Any] | None = paths[template].get(exchange.method.lower())
            return op
    return None


def declared_statuses(exchange: Exchange) -> set[int]:
    op = _operation(exchange)
    return {int(code) for code in op["responses"]} if op else set()


_VALIDATORS: dict[str, Any] = {}


def response_validator(exchange: Exchange, status: int) -> Any | None:
    op = _operation(exchange)
    if not op or str(status) not in op["responses"]:
        return None
    key = f"{exchange.method} {op['operationId']} {status}"
    if key not in _VALIDATORS:
        content = op["responses"][str(status)].get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            _VALIDATORS[key] = None
        else:
            wrapped = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                       "components": service_openapi()["components"], **schema}
            _VALIDATORS[key] = jsonschema_rs.validator_for(wrapped)
    return _VALIDATORS[key]


def representation(value: Any) -> Any:
    """A response body as the contract's schema reads it, whatever representation the endpoint
    chose where the spec leaves it open: members with null dropped, known member names in their
    canonical case, numeric errorCodes as names."""
    if isinstance(value, list):
        return [representation(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            continue
        name = _CANONICAL_MEMBERS.get(key.lower(), key) if isinstance(key, str) else key
        named = code_name(item) or item if name == "errorCode" and not isinstance(item, str) \
            else item
        if isinstance(named, str) and name in _ENUM_MEMBERS:  # "Enabled", as docs print it
            named = _ENUM_MEMBERS[name].get(named.lower(), named)
        out[name] = representation(named)
    return out


# Enum-valued members of reads, whose values an endpoint may print in another case (DOC-IR shows
# "Enabled"): the contract's spelling by lower-cased value.
_ENUM_MEMBERS = {
    name: {v.lower(): v for v in values} for name, values in (
        ("status", ("enabled", "disabled")),
        ("connectionState", ("Disconnected", "Connected")),
        ("type", ("sas", "selfSigned", "certificateAuthority", "none")),
        ("authenticationType", ("sas", "selfSigned", "certificateAuthority", "none")))}


def _member_names(doc: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "properties" and isinstance(value, dict):
                names.update({n.lower(): n for n in value})
            names.update(_member_names(value))
    elif isinstance(doc, list):
        for value in doc:
            names.update(_member_names(value))
    return names


def _required_in_any_case(schema: dict[str, Any]) -> None:
    """``required`` members, present under their name in any case (``message`` for
    ``Message``): each, as "not every member name is another name"."""
    names = schema.pop("required", None)
    if not names:
        return
    schema.setdefault("allOf", []).extend(
        {"not": {"propertyNames": {"not": {"pattern": "^" + "".join(
            f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in name) + "$"}}}}
        for name in names)


# Components only answers carry: their member names may come in another case.
_ANSWERS = ("ErrorBody", "BulkRegistryOperationResult", "DeviceRegistryOperationError",
            "DeviceRegistryOperationWarning", "Device", "Twin", "Module", "RegistryStatistics",
            "JobProperties", "ImportErrorLine")
_CONSTRAINTS = ("pattern", "minLength", "maxLength", "minimum", "maximum", "minItems",
                "maxItems", "propertyNames", "enum", "const", "format")
_SERVICE: list[dict[str, Any]] = []


def service_openapi() -> dict[str, Any]:
    """openapi.json as a run holds an endpoint to it: only what the service must do.

    Constraints whose rule is a warning, or whose rejection is not ``contract`` or
    ``documented``, are dropped (schemathesis' negative phase then sends only bodies the service
    must reject); ``additionalProperties: false`` is dropped (the service ignores unknown
    members), every optional member may be null (decision unset-members) and a per-entry
    errorCode a number (decision error-code-form).
    """
    if not _SERVICE:
        doc = copy.deepcopy(bulkreg_schema.openapi())
        _open(doc)
        for name in _ANSWERS:  # decision responses-grow: member names in any case
            _required_in_any_case(doc["components"]["schemas"].get(name, {}))
        # decision error-code-form: per-entry errorCodes may be names or numbers
        code = doc["components"]["schemas"]["DeviceRegistryOperationError"]["properties"]
        code["errorCode"] = {"anyOf": [code["errorCode"], {"type": "integer"}]}
        _SERVICE.append(doc)
    return _SERVICE[0]


# Rules judged on the text, not the value: twin-integer-range bounds integer literals only
# (1e20 is accepted). JSON Schema sees numbers, not literals; schemathesis writes a Python float
# beyond the bound as a float literal (-1.7976931348623157e+308), which the service accepts, so
# its bound cannot tell a violation. The kit's own suites send the integer literals.
_LITERAL_RULES = frozenset({"twin-integer-range"})


def _weak(rule: Any) -> bool:
    return isinstance(rule, str) and rule in RULES and (
        RULES[rule].severity != "error" or rejection_evidence(rule).level not in FAILING
        or rule in _LITERAL_RULES)


def _open(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _open(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    rule = node.get("x-bulkreg-rule")
    if isinstance(rule, str) and _weak(rule):
        for keyword in _CONSTRAINTS:
            node.pop(keyword, None)
    elif isinstance(rule, dict):
        for keyword, named in rule.items():
            if _weak(named):
                node.pop(keyword, None)
    required = set(node.get("required", [])) if isinstance(node.get("required"), list) else set()
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):  # the keyword: member -> schema
            for name, schema in value.items():
                if name.startswith("$"):  # service-maintained ($metadata, $version): unchecked
                    value[name] = {}
                    continue
                if name not in required and isinstance(schema, dict):
                    _nullable(schema)
                _open(schema)
        elif key in {"$defs", "definitions", "schemas"} and isinstance(value, dict):
            for schema in value.values():  # a name -> schema map (a schema may be "properties")
                _open(schema)
        else:
            _open(value)


def _nullable(schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if isinstance(kind, str) and kind != "null":
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    elif "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]


_CANONICAL_MEMBERS = _member_names(bulkreg_schema.openapi()["components"])
