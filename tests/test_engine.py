"""The compiled schema engine agrees with the reference implementations on the same schemas."""

from __future__ import annotations

import string
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
import referencing
import referencing.jsonschema
import regress
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bulkreg_schema
from bulkreg_validator import _engine
from bulkreg_validator._findings import fast_accept, schema

DOCS = bulkreg_schema.registry()
NAMES = ["BulkRequest", "ImportLine", "ExportImportDevice", "TwinCollection",
         "AuthenticationMechanism"]


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    # jsonschema reads `pattern` with Python's re, whose `$` also matches before a final "\n";
    # JSON Schema specifies ECMA-262, which regress (a Rust ECMA-262 engine) implements.
    if validator.is_type(instance, "string") and regress.Regex(pattern).find(instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


ECMA_2020_12 = jsonschema.validators.extend(jsonschema.Draft202012Validator,
                                            {"pattern": _ecma_pattern})


def reference(name: str) -> Any:
    # without "$schema", a $ref into another file keeps the extended validator (jsonschema would
    # switch to the stock 2020-12 validator, and Python's pattern semantics, at each new file)
    docs = {uri: {k: v for k, v in doc.items() if k != "$schema"} for uri, doc in DOCS.items()}
    draft = referencing.jsonschema.DRAFT202012
    registry = referencing.Registry().with_resources(
        (uri, draft.create_resource(doc)) for uri, doc in docs.items()
    )
    return ECMA_2020_12(docs[bulkreg_schema.BASE_URI + name + ".json"], registry=registry)


def rust(name: str) -> Any:
    return jsonschema_rs.validator_for(
        {"$ref": bulkreg_schema.BASE_URI + name + ".json"},
        registry=jsonschema_rs.Registry(list(DOCS.items())),
    )


def ours(name: str) -> _engine.Compiled:
    return schema(name) if name in ("BulkRequest", "ImportLine") else _engine.compile_schema(
        DOCS, bulkreg_schema.BASE_URI + name + ".json")


# Keys and strings from the alphabet the rules care about: specials, '.', '$', space, control
# characters, multibyte, and the real field names so that generated objects hit the schemas.
FIELDS = ["id", "moduleId", "eTag", "importMode", "status", "statusReason", "authentication",
          "twinETag", "tags", "properties", "capabilities", "deviceScope", "parentScopes",
          "desired", "reported", "type", "symmetricKey", "primaryKey", "secondaryKey",
          "x509Thumbprint", "primaryThumbprint", "iotEdge", "$metadata", "$version"]
TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-:.+%_#*?!(),=@;$' \n\x01\x85é€😀",
               max_size=12)
WORDS = st.sampled_from(["create", "Create", "delete", "createOrUpdate", "enabled", "Disabled",
                         "sas", "selfSigned", "none", "a" * 129, "",
                         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "0" * 40, "f" * 64])
SCALARS = (st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.sampled_from(
    [2**52 - 1, 2**52, -(2**52), -(2**52) - 1, 1.5, 1e20]) | TEXT | WORDS)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(FIELDS) | TEXT, children, max_size=4),
    max_leaves=24,
)
ENTRY = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6)
DEEP = st.recursive(st.just(1), lambda c: st.dictionaries(st.sampled_from("ab"), c, min_size=1,
                                                         max_size=1), max_leaves=14)
INSTANCES = VALUES | ENTRY | st.lists(ENTRY, max_size=3) | st.builds(
    lambda d: {"id": "x", "tags": d, "properties": {"desired": d}}, DEEP)

SETTINGS = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(instance=INSTANCES)
def test_verdicts_agree_with_jsonschema_and_jsonschema_rs(name: str, instance: Any) -> None:
    compiled = ours(name)
    expected = reference(name).is_valid(instance)
    errors: list[_engine.Error] = []
    compiled.errors(instance, (), errors)
    assert compiled.ok(instance) is expected
    assert (not errors) is expected, errors
    assert rust(name).is_valid(instance) is expected


VALUE_CASES = [c for c in bulkreg_schema.examples() if "payload" in c]  # text cases: no value


@pytest.mark.parametrize("case", VALUE_CASES, ids=lambda c: c["name"])
def test_verdicts_agree_on_the_example_payloads(case: dict[str, Any]) -> None:
    name = "BulkRequest" if case["mode"] == "bulk" else "ImportLine"
    instances = [case["payload"]] if case["mode"] == "bulk" else case["payload"]
    for instance in instances:
        expected = reference(name).is_valid(instance)
        assert ours(name).ok(instance) is expected
        assert fast_accept(name)(instance) is expected


def test_every_twin_depth_is_counted_from_the_section_root() -> None:
    def nested(depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {"property": "value"}
        for _ in range(depth - 1):
            node = {"n": node}
        return node

    compiled = ours("TwinCollection")
    assert compiled.ok({"one": nested(10)})  # the docs' example: 10 objects below the root
    assert not compiled.ok({"one": nested(11)})
    assert reference("TwinCollection").is_valid({"one": nested(10)})


def test_dollar_anchors_like_ecma_not_python() -> None:
    # Python's '$' also matches before a final newline; ECMA-262 (JSON Schema) does not.
    assert not ours("ExportImportDevice").ok({"id": "device\n"})
    assert ours("ExportImportDevice").ok({"id": "device"})


def test_unknown_keywords_are_compile_errors() -> None:
    docs = {"urn:x": {"$id": "urn:x", "format": "date", "x-bulkreg-rule": "value-type"}}
    with pytest.raises(_engine.SchemaError, match="not supported"):
        _engine.compile_schema(docs, "urn:x")


def test_a_constraint_without_a_rule_is_a_compile_error() -> None:
    docs = {"urn:x": {"$id": "urn:x", "maxLength": 3}}
    with pytest.raises(_engine.SchemaError, match="names no rule"):
        _engine.compile_schema(docs, "urn:x")


def test_unresolvable_refs_are_compile_errors() -> None:
    docs = {"urn:x": {"$id": "urn:x", "$ref": "Missing.json"}}
    with pytest.raises(_engine.SchemaError, match="no known schema"):
        _engine.compile_schema(docs, "urn:x")
