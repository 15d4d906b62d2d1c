"""The contract as data: generated files in sync, valid documents, rules wired both ways."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi

import bulkreg_schema
from bulkreg_validator import RULES

ROOT = Path(__file__).resolve().parents[1]
SPEC_DEFINITIONS = ["ExportImportDevice", "AuthenticationMechanism", "SymmetricKey",
                    "X509Thumbprint", "DeviceCapabilities", "PropertyContainer",
                    "BulkRegistryOperationResult", "DeviceRegistryOperationError",
                    "DeviceRegistryOperationWarning"]


def walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_committed_schema_files_match_the_generator() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "schema/tools/build_schemas.py"),
                             "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", bulkreg_schema.SCHEMA_NAMES)
def test_each_schema_is_valid_2020_12_with_id_and_description(name: str) -> None:
    doc = bulkreg_schema.load(name)
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"{bulkreg_schema.BASE_URI}{name}.json"
    assert doc["description"]


def test_every_spec_definition_and_the_request_shapes_have_a_schema() -> None:
    assert {*SPEC_DEFINITIONS, "BulkRequest", "ImportLine"} <= set(bulkreg_schema.SCHEMA_NAMES)


def test_wire_names_are_exact() -> None:
    device = bulkreg_schema.load("ExportImportDevice")["properties"]
    assert {"eTag", "twinETag", "importMode", "id", "moduleId", "parentScopes"} <= set(device)
    assert "etag" not in device and "deviceId" not in device


def test_error_codes_are_the_spec_enum() -> None:
    spec = Path(__file__).resolve().parents[2] / "shared/spec/000_e3eb2d47e3550246.txt"
    codes = bulkreg_schema.load("DeviceRegistryOperationError")["properties"]["errorCode"]["enum"]
    assert len(codes) == len(set(codes)) == 217
    if spec.exists():  # the CI checkout has shared/ beside it; a wheel test does not
        bullets = [line[4:].strip() for line in spec.read_text().splitlines()
                   if line.startswith("  • ")]
        assert set(codes) <= set(bullets)
    assert {"DeviceAlreadyExists", "DeviceNotFound", "PreconditionFailed", "TooManyDevices",
            "DeviceDefinedMultipleTimes"} <= set(codes)


def annotated_rules() -> set[str]:
    found: set[str] = set()
    for name in bulkreg_schema.SCHEMA_NAMES:
        for node in walk(bulkreg_schema.load(name)):
            if isinstance(node, dict) and "x-bulkreg-rule" in node:
                note = node["x-bulkreg-rule"]
                found.update([note] if isinstance(note, str) else note.values())
    return found


def test_schema_annotations_name_schema_rules_and_every_schema_rule_is_annotated() -> None:
    found = annotated_rules()
    assert found <= set(RULES), found - set(RULES)
    assert all(RULES[rule].where == "schema" for rule in found)
    defaults = {"value-type", "enum-value", "enum-case", "unknown-property"}  # keyword defaults
    schema_rules = {r.id for r in RULES.values() if r.where == "schema"}
    assert schema_rules - defaults <= found


def test_openapi_is_valid_offline_and_embeds_the_same_schemas() -> None:
    doc = bulkreg_schema.openapi()
    validate_openapi(doc)
    assert not [n for n in walk(doc) if isinstance(n, dict)
                and str(n.get("$ref", "#")).split("#")[0]], "no external $ref: loads offline"
    post = doc["paths"]["/devices"]["post"]
    assert post["parameters"][0]["name"] == "api-version" and post["parameters"][0]["required"]
    assert {"200", "400", "401", "413", "429"} <= set(post["responses"])
    for path in ("/devices/{id}", "/twins/{id}"):
        assert path in doc["paths"]
    components = doc["components"]["schemas"]
    for name in bulkreg_schema.SCHEMA_NAMES:
        original = bulkreg_schema.load(name)
        embedded = components[name]
        assert embedded["description"] == original["description"]
        assert json.dumps(embedded).count("pattern") == json.dumps(original).count("pattern")
    # the service ignores unknown members: the operation's schemas accept them (schemathesis'
    # negative phase must not expect a rejection for one)
    assert not [n for n in walk(doc) if isinstance(n, dict)
                and n.get("additionalProperties") is False]


def test_package_data_paths_exist() -> None:
    assert bulkreg_schema.path("BulkRequest").is_file()
    assert bulkreg_schema.openapi_path().is_file()
    with pytest.raises(KeyError, match="no schema named"):
        bulkreg_schema.path("Nope")


def test_contract_values_are_read_from_the_schema_files() -> None:
    contract = bulkreg_schema.contract()
    device = bulkreg_schema.load("ExportImportDevice")["properties"]
    assert contract.id_max_length == device["id"]["maxLength"] == 128
    assert contract.status_reason_max_length == 128 and contract.max_entries == 100
    assert contract.bulk_modes == tuple(device["importMode"]["enum"])
    assert set(contract.import_modes) - set(contract.bulk_modes) == {
        "createOrUpdate", "createOrUpdateIfMatchETag"}
    assert contract.key_decoded_bytes == (16, 64) and contract.twin_max_depth == 10
    assert contract.twin_integer_range == (-(2**52), 2**52 - 1)
    assert contract.id_pattern.match("a" * 128) and not contract.id_pattern.match("a" * 129)
    assert not contract.id_pattern.match("device\n") and not contract.id_pattern.match("")
    assert contract.api_versions[0] == bulkreg_schema.API_VERSION
    assert contract.etag_modes >= {"updateIfMatchETag", "deleteIfMatchETag"}
    assert contract.twin_etag_modes == {"updateTwinIfMatchETag"}
    assert contract.delete_modes == {"delete", "deleteIfMatchETag"}
    assert contract.twin_only_modes == {"updateTwin", "updateTwinIfMatchETag"}
    assert contract.thumbprint_lengths == (40, 64)
