"""A small JSON Schema 2020-12 compiler for the keywords our schema files use.

Each schema node compiles to two closures: ``ok(value) -> bool``, the fast path that allocates
nothing, and ``errors(value, path, out)``, which appends ``(rule, path, keyword, detail)`` for
every failing keyword. The validator runs ``ok`` first and ``errors`` only for entries that fail,
so valid input pays for one walk without any path bookkeeping.

Only the keywords below are supported; any other keyword in a schema file is a compile error, so a
new constraint cannot be added to the contract and silently ignored here. ``tests/test_engine.py``
checks the verdicts against the reference ``jsonschema`` implementation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import bulkreg_schema

__all__ = ["Compiled", "SchemaError", "compile_schema"]

Path = tuple[str | int, ...]
Error = tuple[str, Path, str, Any, Any]  # rule, path, keyword, expected, value
Ok = Callable[[Any], bool]
Errors = Callable[[Any, Path, list[Error]], None]

ANNOTATIONS = frozenset({
    "$schema", "$id", "title", "description", "$defs", "default", "examples",
    "x-bulkreg-rule",  # the rule a keyword's failure belongs to
    "x-bulkreg-decoded-bytes",  # the decoded length a base64 pattern encodes (for generators)
    "x-bulkreg-mode-semantics",  # which importModes need etags, delete, touch only the twin
    "x-bulkreg-api-versions",  # the current api-version and the older ones SDKs used
})
DEFAULT_RULES = {
    "type": "value-type", "enum": "enum-value", "additionalProperties": "unknown-property",
}


class SchemaError(Exception):
    """A schema file uses something this compiler does not support (a bug in the contract)."""


def _is_type(value: Any, name: str) -> bool:
    kind = type(value)
    if name == "string":
        return kind is str
    if name == "object":
        return kind is dict
    if name == "array":
        return kind is list
    if name == "boolean":
        return kind is bool
    if name == "null":
        return value is None
    if name == "number":
        return kind is int or kind is float
    if name == "integer":
        return kind is int or (kind is float and value.is_integer())
    raise SchemaError(f"unknown type {name!r}")


_PY_TYPES = {
    "string": (str,), "object": (dict,), "array": (list,), "boolean": (bool,),
    "null": (type(None),), "number": (int, float), "integer": (int,),
}


def _type_check(names: list[str]) -> Ok:
    """A fast membership test on ``type(value)``; floats need the integer special case."""
    kinds = frozenset(k for name in names for k in _PY_TYPES[name])
    if "integer" in names and "number" not in names:
        return lambda v: type(v) in kinds or (type(v) is float and v.is_integer())
    return lambda v: type(v) in kinds


def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` with its ECMA-262 meaning, as JSON Schema specifies (see bulkreg_schema)."""
    try:
        return bulkreg_schema.ecma_regex(pattern)
    except ValueError as exc:
        raise SchemaError(str(exc)) from exc


class Compiled:
    """The compiled form of one schema node."""

    __slots__ = ("errors", "ok")

    def __init__(self) -> None:
        self.ok: Ok = _never
        self.errors: Errors = _none


def _never(value: Any) -> bool:
    raise SchemaError("schema used before it was compiled")


def _none(value: Any, path: Path, out: list[Error]) -> None:
    raise SchemaError("schema used before it was compiled")


class _Compiler:
    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        self.documents = documents
        self.cache: dict[tuple[str, str], Compiled] = {}
        self.building: set[tuple[str, str]] = set()

    def resolve(self, base: str, ref: str) -> tuple[str, str, dict[str, Any]]:
        file, _, fragment = ref.partition("#")
        uri = base.rsplit("/", 1)[0] + "/" + file if file and "://" not in file else file or base
        if uri not in self.documents:
            raise SchemaError(f"$ref {ref!r} from {base} names no known schema ({uri})")
        node: Any = self.documents[uri]
        for raw in filter(None, fragment.split("/")):
            token = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or token not in node:
                raise SchemaError(f"$ref {ref!r} from {base}: no {token!r}")
            node = node[token]
        return uri, fragment, node

    def node(self, uri: str, fragment: str, schema: dict[str, Any]) -> Compiled:
        key = (uri, fragment)
        if key in self.cache:
            return self.cache[key]
        compiled = self.cache[key] = Compiled()
        self.building.add(key)
        errs = self.keywords(uri, fragment, schema)
        compiled.errors = _each(errs)
        compiled.ok = self.fused_ok(uri, fragment, schema)
        self.building.discard(key)
        return compiled

    def ok_of(self, target: Compiled, key: tuple[str, str]) -> Ok:
        # A finished node's ok is bound directly; one still being built (a recursive schema)
        # is reached through the Compiled object, which is filled in when it is done.
        return (lambda v: target.ok(v)) if key in self.building else target.ok

    def fused_ok(self, uri: str, fragment: str, schema: dict[str, Any]) -> Ok:
        """One closure per node that dispatches on the value's type once (the fast path).

        Keywords are grouped by the JSON type they constrain, so a value pays only for the
        keywords that apply to it: a twin string skips the number bounds and vice versa.
        """
        where = f"{uri}#{fragment}"
        general: list[Ok] = []  # $ref, type, enum: any value
        strings: list[Ok] = []
        arrays: list[Ok] = []
        objects: list[Ok] = []
        low = schema.get("minimum", -math.inf)
        high = schema.get("maximum", math.inf)
        for keyword, value in schema.items():
            if keyword == "$ref":
                ref_uri, ref_fragment, target = self.resolve(uri, value)
                general.append(self.ok_of(self.node(ref_uri, ref_fragment, target),
                                          (ref_uri, ref_fragment)))
            elif keyword in ("type", "enum"):
                general.append(self.assertion(keyword, value, schema, where))
            elif keyword in ("pattern", "maxLength", "minLength"):
                strings.append(self.assertion(keyword, value, schema, where))
            elif keyword in ("minItems", "maxItems"):
                arrays.append(self.assertion(keyword, value, schema, where))
            elif keyword == "required":
                objects.append(self.assertion(keyword, value, schema, where))
            elif keyword in ("minimum", "maximum"):
                self.assertion(keyword, value, schema, where)  # validates the keyword

        def sub(suffix: str) -> Ok:
            key = (uri, f"{fragment}/{suffix}")
            return self.ok_of(self.cache[key], key)

        props = {name: sub(f"properties/{name}") for name in schema.get("properties", {})}
        extra_schema = schema.get("additionalProperties", True)
        closed = extra_schema is False
        extra = sub("additionalProperties") if isinstance(extra_schema, dict) else None
        names = sub("propertyNames") if "propertyNames" in schema else None
        items = sub("items") if "items" in schema else None
        bounded = "minimum" in schema or "maximum" in schema
        has_object = bool(props) or closed or extra is not None or names is not None or objects
        if len(general) == 1 and not (strings or has_object or items or arrays or bounded):
            return general[0]  # a bare $ref or a single assertion: no wrapper call
        if schema.get("type") == "string" and len(general) == 1 and set(schema) & {
                "pattern", "maxLength", "minLength"} == {"pattern"} and not (
                has_object or items or arrays or bounded):
            search = _ecma_pattern(schema["pattern"]).search  # keys and ids: one call each
            return lambda v: type(v) is str and search(v) is not None
        general_all = _all(general) if general else None
        string_all = _all(strings) if strings else None
        array_all = _all(arrays) if arrays else None
        object_all = _all(objects) if objects else None
        get = props.get

        def object_ok(v: dict[str, Any]) -> bool:
            if object_all is not None and not object_all(v):
                return False
            for k, x in v.items():
                if names is not None and not names(k):
                    return False
                check = get(k)
                if check is not None:
                    if not check(x):
                        return False
                elif closed or (extra is not None and not extra(x)):
                    return False
            return True

        def ok(v: Any) -> bool:
            if general_all is not None and not general_all(v):
                return False
            t = type(v)
            if t is str:
                return string_all is None or string_all(v)
            if t is dict:
                return not has_object or object_ok(v)
            if t is int or t is float:
                return not bounded or low <= v <= high
            if t is list:
                if array_all is not None and not array_all(v):
                    return False
                if items is not None:
                    for x in v:
                        if not items(x):
                            return False
            return True

        return ok

    def rule_for(self, schema: dict[str, Any], keyword: str, where: str) -> str:
        note = schema.get("x-bulkreg-rule")
        if isinstance(note, str):
            return note
        if isinstance(note, dict) and keyword in note:
            return str(note[keyword])
        if keyword in DEFAULT_RULES:
            return DEFAULT_RULES[keyword]
        raise SchemaError(f"{where}: keyword {keyword!r} names no rule (x-bulkreg-rule)")

    def keywords(self, uri: str, fragment: str, schema: dict[str, Any]) -> list[Errors]:
        """The detailed (error-collecting) half of every keyword; compiles subschemas too."""
        where = f"{uri}#{fragment}"
        errs: list[Errors] = []

        def child(sub: Any, suffix: str) -> Compiled:
            if not isinstance(sub, dict):
                raise SchemaError(f"{where}/{suffix}: only object subschemas are supported")
            return self.node(uri, f"{fragment}/{suffix}", sub)

        for keyword, value in schema.items():
            if keyword in ANNOTATIONS:
                continue
            if keyword == "$ref":
                target = self.node(*self.resolve(uri, value))
                errs.append(_ref_errors(target))
                continue
            if keyword == "properties":
                known = {name: child(sub, f"properties/{name}") for name, sub in value.items()}
                errs.append(_properties_errors(known))
                continue
            if keyword == "items":
                errs.append(_items_errors(child(value, "items")))
                continue
            if keyword == "propertyNames":
                names = child(value, "propertyNames")
                errs.append(_property_names_errors(names))
                continue
            if keyword == "additionalProperties":
                declared = frozenset(schema.get("properties", {}))
                if value is False:
                    rule = self.rule_for(schema, keyword, where)
                    errs.append(_closed_errors(declared, rule))
                else:
                    extra = child(value, "additionalProperties")
                    errs.append(_additional_errors(declared, extra))
                continue
            rule = self.rule_for(schema, keyword, where)
            test = self.assertion(keyword, value, schema, where)
            errs.append(_assertion_errors(test, rule, keyword, value))
        return errs

    def assertion(self, keyword: str, value: Any, schema: dict[str, Any], where: str) -> Ok:
        if keyword == "type":
            names = value if isinstance(value, list) else [value]
            for name in names:
                _is_type(None, name)  # rejects unknown type names at compile time
            return _type_check(names)
        if keyword == "enum":
            strings = frozenset(v for v in value if type(v) is str)
            others = [v for v in value if type(v) is not str]
            return lambda v: v in strings if type(v) is str else any(
                type(v) is type(o) and v == o for o in others
            )
        if keyword == "pattern":
            search = _ecma_pattern(value).search
            return lambda v: type(v) is not str or search(v) is not None
        if keyword == "maxLength":
            return lambda v: type(v) is not str or len(v) <= value
        if keyword == "minLength":
            return lambda v: type(v) is not str or len(v) >= value
        if keyword == "maxItems":
            return lambda v: type(v) is not list or len(v) <= value
        if keyword == "minItems":
            return lambda v: type(v) is not list or len(v) >= value
        if keyword == "maximum":
            return lambda v: not (type(v) is int or type(v) is float) or v <= value
        if keyword == "minimum":
            return lambda v: not (type(v) is int or type(v) is float) or v >= value
        if keyword == "required":
            required = tuple(value)
            return lambda v: type(v) is not dict or all(n in v for n in required)
        raise SchemaError(f"{where}: keyword {keyword!r} is not supported by this compiler")


def _true(value: Any) -> bool:
    return True


def _all(oks: list[Ok]) -> Ok:
    if not oks:
        return _true
    if len(oks) == 1:
        return oks[0]
    if len(oks) == 2:
        first, second = oks
        return lambda v: first(v) and second(v)
    checks = tuple(oks)

    def every(v: Any) -> bool:
        for check in checks:
            if not check(v):
                return False
        return True

    return every


def _each(errs: list[Errors]) -> Errors:
    checks = tuple(errs)

    def run(value: Any, path: Path, out: list[Error]) -> None:
        for check in checks:
            check(value, path, out)

    return run


def _ref_errors(target: Compiled) -> Errors:
    # through the Compiled object: a recursive target is filled in after this is built
    def run(value: Any, path: Path, out: list[Error]) -> None:
        target.errors(value, path, out)

    return run


def _assertion_errors(test: Ok, rule: str, keyword: str, expected: Any) -> Errors:
    def run(value: Any, path: Path, out: list[Error]) -> None:
        if not test(value):
            out.append((rule, path, keyword, expected, value))

    return run



def _properties_errors(known: dict[str, Compiled]) -> Errors:
    def run(value: Any, path: Path, out: list[Error]) -> None:
        if type(value) is dict:
            for name, sub in known.items():
                if name in value:
                    sub.errors(value[name], (*path, name), out)

    return run



def _closed_errors(declared: frozenset[str], rule: str) -> Errors:
    def run(value: Any, path: Path, out: list[Error]) -> None:
        if type(value) is dict:
            for name in value:
                if name not in declared:
                    out.append(
                        (rule, (*path, name), "additionalProperties", sorted(declared), name))

    return run



def _additional_errors(declared: frozenset[str], extra: Compiled) -> Errors:
    def run(value: Any, path: Path, out: list[Error]) -> None:
        if type(value) is dict:
            for name, item in value.items():
                if name not in declared:
                    extra.errors(item, (*path, name), out)

    return run


def _items_errors(sub: Compiled) -> Errors:
    def run(value: Any, path: Path, out: list[Error]) -> None:
        if type(value) is list:
            for index, item in enumerate(value):
                sub.errors(item, (*path, index), out)

    return run



def _property_names_errors(names: Compiled) -> Errors:
    # A key's error points at the member it names (the key is where the member starts).
    def run(value: Any, path: Path, out: list[Error]) -> None:
        if type(value) is dict:
            for name in value:
                names.errors(name, (*path, name), out)

    return run


def compile_schema(documents: dict[str, dict[str, Any]], uri: str) -> Compiled:
    """Compile the schema with ``$id`` ``uri``; ``documents`` maps every ``$id`` to its schema."""
    compiler = _Compiler(documents)
    return compiler.node(uri, "", documents[uri])
