"""The service view of openapi.json (what schemathesis and the response checks hold an endpoint
to): only constraints the service must enforce, unknown members allowed, unset members nullable,
service-maintained members unchecked, per-entry errorCodes named or numeric."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs

import bulkreg_schema
from bulkreg_conformance.expectation import rejection_evidence
from bulkreg_conformance.service_view import service_openapi
from bulkreg_validator import RULES

VIEW = service_openapi()
SCHEMAS = VIEW["components"]["schemas"]


def _valid(name: str, value: Any) -> bool:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "components": VIEW["components"], "$ref": f"#/components/schemas/{name}"}
    return bool(jsonschema_rs.validator_for(schema).is_valid(value))


def test_the_contract_keeps_what_the_service_must_refuse() -> None:
    assert rejection_evidence("device-id-format").level == "contract"
    assert not _valid("BulkRequest", [{"id": "bad id /", "importMode": "create"}])
    empty_must_fail = rejection_evidence("bulk-empty").level in {"contract", "documented"}
    assert _valid("BulkRequest", []) is not empty_must_fail  # bulk-empty: only clients refuse
    assert not _valid("BulkRequest", [{"id": f"d{n}"} for n in range(101)])
    assert not _valid("BulkRequest", {"id": "d"})  # not an array


def test_what_the_service_may_accept_is_not_refused() -> None:
    entry = {"id": "d1", "importMode": "create", "anUnknownMember": {"": None},
             "statusReason": "r" * 500,  # decision unenforced-limits
             "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "short",
                                                                "secondaryKey": None},
                                "": None},
             "properties": {"reported": {"$metadata": None, "$version": {}}}}
    assert _valid("BulkRequest", [entry])
    assert "additionalProperties\": false" not in json.dumps(VIEW)


def test_unset_members_and_numeric_codes_are_representations() -> None:
    assert _valid("Device", {"deviceId": "d1", "statusReason": None, "parentScopes": None,
                             "modelId": "", "X-New": 1})
    assert _valid("BulkRegistryOperationResult", {
        "isSuccessful": False, "errors": [{"deviceId": "d1", "errorCode": 404001}]})
    assert not _valid("BulkRegistryOperationResult", {"isSuccessful": "no"})


def test_the_shipped_document_is_left_as_it_is() -> None:
    original = bulkreg_schema.openapi()["components"]["schemas"]
    assert original["ExportImportDevice"]["properties"]["statusReason"].get("maxLength") == 128
    assert RULES["status-reason-length"].severity == "error"
    assert "maxLength" not in SCHEMAS["ExportImportDevice"]["properties"]["statusReason"]


def test_number_bounds_judged_by_the_literal_are_left_to_the_kit() -> None:
    """twin-integer-range bounds integer literals; a float literal beyond it is accepted. The
    view cannot tell the two (schemathesis sent -1.7976931348623157e+308, the service accepted
    it, and negative_data_rejection failed a faithful hub), so it does not hold that bound."""
    assert RULES["twin-integer-range"].severity == "error"
    far = [{"id": "d1", "importMode": "create", "tags": {"a": -1.7976931348623157e+308,
                                                          "b": [{"c": -(2 ** 60)}]}}]
    assert _valid("BulkRequest", far)
    assert '"minimum": -4503599627370496' in json.dumps(bulkreg_schema.openapi())
    assert '"minimum": -4503599627370496' not in json.dumps(VIEW)
