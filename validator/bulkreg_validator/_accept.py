"""The import fast path's acceptance test: "this line has no finding at all", for a chunk of lines
in one jsonschema-rs call.

It is the ImportLine schema and the rule checks an import line always runs, as one JSON Schema:

- **The schema, rewritten for speed with the same verdicts** (``rewrite``). jsonschema-rs makes a
  Python string of every key that ``propertyNames`` checks; ``patternProperties`` with the same
  pattern and ``additionalProperties: false`` matches the key in place. Subschemas that are a
  bare ``$ref`` are inlined. Nothing is restated: the rewrite reads the shipped schema files.
- **The rule checks as schemas** (``FOLDS``): for each check function of the rule table, a schema
  that accepts only entries on which the check emits nothing. It is built from the constants the
  check itself reads, and may be stricter than the check (a line it refuses is judged by the
  check in Python), never looser: ``tests/test_accept.py`` holds them to that.

A line the acceptor refuses is not wrong: it takes the exact path, which finds what there is.
Checks that no fold covers (twin sizes and byte lengths of long lines, older api-versions) run
in Python on the lines they concern. ``id`` is checked for unsupported characters on the batch's
ids, which the duplicate-id check collects anyway (a jsonschema-rs pattern per line costs more).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

import bulkreg_schema

from . import _checks as c
from ._checks import Check

__all__ = ["FOLDS", "ID_CHARS", "Acceptor", "acceptor", "rewrite"]

Schema = dict[str, Any]
# keywords whose value is one subschema / a map of names to subschemas
_ONE = ("additionalProperties", "items", "propertyNames", "not", "if", "then", "else",
        "contains", "unevaluatedProperties", "unevaluatedItems")
_MANY = ("properties", "patternProperties", "$defs", "dependentSchemas")
_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_INLINED = ("properties", "patternProperties", "additionalProperties")


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (several times faster than copy.deepcopy)."""
    return orjson.loads(orjson.dumps(value))


def _absolute_ref(base: str, ref: str) -> tuple[str, str]:
    """(absolute uri, fragment) of ``ref`` written in the document ``base``."""
    file, _, fragment = ref.partition("#")
    uri = base.rsplit("/", 1)[0] + "/" + file if file and "://" not in file else file or base
    return uri, fragment


def _resolve(documents: dict[str, Schema], base: str, ref: str) -> tuple[str, str, Any]:
    """(absolute uri, fragment, target) of ``ref`` written in the document ``base``."""
    uri, fragment = _absolute_ref(base, ref)
    node: Any = documents[uri]
    for raw in filter(None, fragment.split("/")):
        node = node[raw.replace("~1", "/").replace("~0", "~")]
    return uri, fragment, node


def _subschemas(node: Schema) -> list[tuple[Any, Any]]:
    """(container, key) of every direct subschema of ``node``."""
    found: list[tuple[Any, Any]] = []
    for keyword in _ONE:
        if isinstance(node.get(keyword), dict):
            found.append((node, keyword))
    for keyword in _MANY:
        if isinstance(node.get(keyword), dict):
            found.extend((node[keyword], name) for name in node[keyword])
    for keyword in _LISTS:
        if isinstance(node.get(keyword), list):
            found.extend((node[keyword], i) for i in range(len(node[keyword])))
    return found


def _walk(node: Schema, visit: Callable[[Schema], None]) -> None:
    visit(node)
    for container, key in _subschemas(node):
        if isinstance(container[key], dict):
            _walk(container[key], visit)


def _pattern_of(documents: dict[str, Schema], base: str, names: Any) -> str | None:
    """The pattern of a ``propertyNames`` schema that is only ``type: string`` and ``pattern``
    (directly or through one ``$ref``), else None."""
    if not isinstance(names, dict):
        return None
    if set(names) == {"$ref"}:
        base, _, names = _resolve(documents, base, names["$ref"])
    assertions = {k for k in names if not k.startswith(("x-", "$")) and k not in (
        "title", "description", "default", "examples")}
    if assertions != {"type", "pattern"} or names["type"] != "string":
        return None
    pattern = names["pattern"]
    return pattern if isinstance(pattern, str) else None


def _pattern_properties(documents: dict[str, Schema]) -> None:
    """``propertyNames: P`` + ``additionalProperties: S`` -> ``patternProperties: {P: S}`` +
    ``additionalProperties: false``, in nodes without ``properties``/``patternProperties``:
    every key must match P and every value S, either way (the same verdicts)."""
    for uri, document in documents.items():

        def visit(node: Schema, uri: str = uri) -> None:
            if "properties" in node or "patternProperties" in node:
                return
            pattern = _pattern_of(documents, uri, node.get("propertyNames"))
            extra = node.get("additionalProperties", {})
            if pattern is None or not isinstance(extra, dict):
                return
            del node["propertyNames"]
            node["patternProperties"] = {pattern: extra}
            node["additionalProperties"] = False

        _walk(document, visit)


def _absolute(node: Schema, base: str) -> Schema:
    """A copy of ``node`` whose ``$ref``s are absolute (valid wherever the copy is placed)."""
    node = _copy(node)

    def visit(sub: Schema) -> None:
        ref = sub.get("$ref")
        if isinstance(ref, str):
            sub["$ref"] = "#".join(_absolute_ref(base, ref))

    _walk(node, visit)
    return node


def _inline(documents: dict[str, Schema]) -> dict[str, Schema]:
    """Every subschema of ``properties``, ``patternProperties`` or ``additionalProperties`` that
    is a bare ``$ref`` replaced by (a copy of) its target, so that jsonschema-rs walks one node
    per member instead of two. Refs are made absolute first; a target already being inlined on
    the way down stays a ``$ref`` (recursion), and ``items`` keep theirs, so copies stay few."""
    absolute = {uri: _absolute(doc, uri) for uri, doc in documents.items()}

    def members(node: Schema) -> list[tuple[Any, Any]]:
        found: list[tuple[Any, Any]] = []
        for keyword in _INLINED[:2]:
            if isinstance(node.get(keyword), dict):
                found.extend((node[keyword], name) for name in node[keyword])
        if isinstance(node.get("additionalProperties"), dict):
            found.append((node, "additionalProperties"))
        return found

    def expand(node: Schema, stack: tuple[str, ...]) -> Schema:
        inlinable = {(id(container), key) for container, key in members(node)}
        for container, key in _subschemas(node):
            child = container[key]
            if not isinstance(child, dict):
                continue
            ref = child.get("$ref")
            if ((id(container), key) in inlinable and set(child) == {"$ref"}
                    and isinstance(ref, str) and ref not in stack):
                _, _, target = _resolve(absolute, "", ref)
                if isinstance(target, dict) and _plain(target):
                    body = {k: v for k, v in _copy(target).items()
                            if k not in ("$id", "$schema", "$defs")}
                    container[key] = expand(body, (*stack, ref))
                    continue
            container[key] = expand(child, stack)
        return node

    return {uri: expand(doc, (uri + "#",)) for uri, doc in absolute.items()}


def _plain(schema: Schema) -> bool:
    """No keyword whose meaning depends on where the schema sits (safe to copy elsewhere)."""
    found = False

    def visit(node: Schema) -> None:
        nonlocal found
        found = found or any(k in node for k in ("$anchor", "$dynamicRef", "$dynamicAnchor",
                                                 "$recursiveRef", "unevaluatedProperties",
                                                 "unevaluatedItems"))
        found = found or ("$id" in node and node is not schema)

    _walk(schema, visit)
    return not found


def rewrite(documents: dict[str, Schema]) -> dict[str, Schema]:
    """The schema documents (by ``$id``) rewritten for jsonschema-rs: same verdicts, faster."""
    rewritten = _copy(documents)
    _pattern_properties(rewritten)
    return _inline(rewritten)


# --- the rule checks as schemas ----------------------------------------------------------------

_NONEMPTY: Schema = {"type": "string", "minLength": 1}
_UNSET: Schema = {"enum": [None, "", {}, []]}  # the values for which _checks._present is False
_BLANK: Schema = {"enum": [None, ""]}  # a key or thumbprint _checks._strings leaves out


def _modes(line: Schema) -> list[str]:
    modes = line["properties"]["importMode"]["enum"]
    return [m for m in modes if isinstance(m, str)]


def _fold_modes(line: Schema) -> Schema:
    """etags_required and mode_ignored_fields: per importMode, the fields it needs (non-empty)
    and the fields it ignores (then unset); no importMode: neither check says anything. The
    schema has already accepted the mode's exact spelling (other casings are enum-case)."""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for mode in _modes(line):
        low = mode.lower()
        needed = [f for f, modes in (("eTag", c._ETAG_MODES), ("twinETag", c._TWIN_ETAG_MODES))
                  if low in modes]
        unused = [f for f, users in (("eTag", c._ETAG_USERS), ("twinETag", c._TWIN_ETAG_MODES))
                  if low not in users]
        if low in c._DELETE_MODES:
            unused += [*c._DEVICE_FIELDS, *c._TWIN_FIELDS]
        elif low in c._TWIN_MODES:
            unused += list(c._DEVICE_FIELDS)
        groups.setdefault((tuple(needed), tuple(unused)), []).append(mode)
    branches: list[Schema] = []
    for (needs, ignores), modes in sorted(groups.items(), key=lambda g: -len(g[1])):
        branch: Schema = {"properties": {"importMode": {"enum": modes},
                                         **dict.fromkeys(ignores, _UNSET),
                                         **dict.fromkeys(needs, _NONEMPTY)}}
        if branches or needs:
            branch["required"] = ["importMode", *needs]
        branches.append(branch)
    # the largest group (createOrUpdate, create, update) also takes lines without importMode
    # whose eTag/twinETag are unset; any other line without importMode is accepted last
    return {"anyOf": [*branches, {"not": {"required": ["importMode"]}}]}


def _fold_authentication(line: Schema, documents: dict[str, Schema]) -> Schema:
    """authentication: the three consistent shapes (both keys; no key and no thumbprint; one or
    two thumbprints of the same length) with the types each allows."""
    mechanism = documents[bulkreg_schema.BASE_URI + "AuthenticationMechanism.json"]
    kinds = [k for k in mechanism["properties"]["type"]["enum"] if isinstance(k, str)]
    lengths = bulkreg_schema.contract().thumbprint_lengths

    def of(*names: str) -> list[str]:
        return [k for k in kinds if k.lower() in names]

    keys = ("primaryKey", "secondaryKey")
    prints = ("primaryThumbprint", "secondaryThumbprint")
    no_keys = {"properties": dict.fromkeys(keys, _BLANK)}
    no_prints = {"properties": dict.fromkeys(prints, _BLANK)}
    both_keys = {"type": "object", "required": list(keys),
                 "properties": dict.fromkeys(keys, _NONEMPTY)}
    some_print = {"type": "object", "allOf": [
        {"anyOf": [{"required": [p], "properties": {p: _NONEMPTY}} for p in prints]},
        {"anyOf": [*({"properties": {p: _BLANK}} for p in prints),
                   *({"properties": {p: {"minLength": n, "maxLength": n} for p in prints}}
                     for n in lengths)]},
    ]}
    shapes = [
        {"required": ["symmetricKey"], "properties": {
            "type": {"enum": of("sas")}, "symmetricKey": both_keys, "x509Thumbprint": no_prints}},
        {"properties": {"type": {"enum": of("sas", "certificateauthority", "none")},
                        "symmetricKey": no_keys, "x509Thumbprint": no_prints}},
        {"required": ["x509Thumbprint"], "properties": {
            "type": {"enum": of("selfsigned")}, "symmetricKey": no_keys,
            "x509Thumbprint": some_print}},
    ]
    return {"properties": {"authentication": {"anyOf": shapes}}}


ID_CHARS = c._UNSUPPORTED_ID_CHARS


def _fold_id_chars(line: Schema) -> Schema:
    """unsupported_id_chars for moduleId (``id``: on the batch's ids, see the module doc)."""
    chars = "".join("\\" + ch if ch in "\\]^-" else ch for ch in ID_CHARS)
    return {"properties": {"moduleId": {"pattern": f"^[^{chars}]*$"}}}


# check -> the schema that accepts only entries on which the check emits nothing
FOLDS: dict[Check, Callable[[Schema, dict[str, Schema]], Schema]] = {
    c.unsupported_id_chars: lambda line, docs: _fold_id_chars(line),
    c.etags_required: lambda line, docs: _fold_modes(line),
    c.mode_ignored_fields: lambda line, docs: _fold_modes(line),
    c.authentication: _fold_authentication,
}

_ACCEPT_ID = bulkreg_schema.BASE_URI + "bulkreg-accept-ImportLine.json"


def accept_documents() -> dict[str, Schema]:
    """The rewritten schema documents plus the acceptor's own (``_ACCEPT_ID``): ImportLine with
    every fold. A fold that constrains one member is merged into that member's (inlined)
    subschema, which jsonschema-rs then looks up once; the others apply to the whole line."""
    documents = rewrite(bulkreg_schema.registry())
    line = documents[bulkreg_schema.BASE_URI + "ImportLine.json"]
    accept = _copy(line)  # its refs are absolute: valid under another $id
    accept["$id"] = _ACCEPT_ID
    whole: list[Schema] = []
    for build in FOLDS.values():
        fold = build(line, documents)
        if set(fold) == {"properties"} and all(
                isinstance(accept["properties"].get(name), dict) for name in fold["properties"]):
            for name, sub in fold["properties"].items():
                _merge(accept["properties"][name], sub)
        elif fold not in whole:
            whole.append(fold)
    if whole:
        accept.setdefault("allOf", []).extend(whole)
    documents[_ACCEPT_ID] = accept
    return documents


def _merge(node: Schema, sub: Schema) -> None:
    """``node`` now also requires ``sub`` (as a sibling keyword where it is free, else in allOf)."""
    if any(keyword in node for keyword in sub):
        node.setdefault("allOf", []).append(sub)
    else:
        node.update(sub)


class Acceptor:
    """``one(value)`` / ``many(values)``: True when the line(s) have no schema finding and no
    finding of a folded check (``id`` characters aside, see the module doc)."""

    def __init__(self, one: Callable[[Any], bool], many: Callable[[list[Any]], bool]) -> None:
        self.one = one
        self.many = many


_ACCEPTOR: list[Acceptor | None] = []


def acceptor() -> Acceptor | None:
    """The acceptor on jsonschema-rs, or None when it is not installed (the batch fast path is
    then off; findings are the same)."""
    if not _ACCEPTOR:
        try:
            import jsonschema_rs  # noqa: PLC0415 - only import files pay for loading it
        except ImportError:
            _ACCEPTOR.append(None)
        else:
            registry = jsonschema_rs.Registry(list(accept_documents().items()))
            one = jsonschema_rs.validator_for({"$ref": _ACCEPT_ID}, registry=registry)
            many = jsonschema_rs.validator_for(
                {"type": "array", "items": {"$ref": _ACCEPT_ID}}, registry=registry)
            _ACCEPTOR.append(Acceptor(one.is_valid, many.is_valid))
    return _ACCEPTOR[0]
