"""Write the contract as data: the JSON Schema files and openapi.json.

The service definition (``spec/000_…txt``, Swagger 2.0 ``service.json`` of azure-iot-hub-python)
has no ``required`` arrays, types twin values as ``object`` and states the limits in prose. This
script turns that definition plus the limits of ``docs/evidence.md`` that JSON Schema can express
into JSON Schema 2020-12 documents. The output files are committed; ``tests/test_schema.py`` fails
when they drift from this script. Run it with ``python schema/tools/build_schemas.py``.

Every constraint keyword carries the rule it belongs to in ``x-bulkreg-rule`` (a rule id, or an
object keyword -> rule id); the rule table in ``bulkreg_validator`` gives the rule its errorCode,
severity and evidence. Keywords without an annotation fall back to the rule the validator
registers for that keyword (``type`` -> ``value-type``, ``enum`` -> ``enum-value``,
``additionalProperties: false`` -> ``unknown-property``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# the package beside this folder, also from a checkout that is not installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bulkreg_schema

API_VERSION = "2021-04-12"
BASE = f"https://bulkreg.dev/schema/{API_VERSION}/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
OUT = Path(__file__).resolve().parent.parent / "bulkreg_schema"

# SWG, CS (docs/evidence.md#device-ids): the C# client regex, the widest set (18 specials).
ID_PATTERN = r"^[A-Za-z0-9\-:.+%_#*?!(),=@;$']+$"
ID_MAX_LENGTH = 128
# SWG PropertyContainer, DOC-TW: no C0/C1 control characters, '.', '$' or space.
KEY_PATTERN = r"^[^.$ \u0000-\u001F\u007F-\u009F]+$"
# desired/reported roots also carry the service-maintained $metadata and $version (DOC-BULK).
PROPERTY_ROOT_KEY_PATTERN = r"^(\$metadata|\$version|[^.$ \u0000-\u001F\u007F-\u009F]+)$"
MAX_TWIN_DEPTH = 10  # SWG, DOC-TW, EDGE: section root is depth 0; objects/arrays up to 10
# DOC-TW, EDGE: twin integers lie in [-2^52, 2^52-1]. JSON Schema cannot see literals (it counts
# 1e20 as an integer), so the bounds apply to every number here; the validator, which keeps each
# literal's digits, drops the finding for float literals such as 1e20 (EDGE limits integer tokens).
TWIN_NUMBER_RANGE = {"minimum": -(2**52), "maximum": 2**52 - 1}
TWIN_NUMBER_RULES = {"minimum": "twin-integer-range", "maximum": "twin-integer-range"}
# CS SymmetricKey: base64 of 16..64 bytes; "" means "generate" (NODE).
KEY_DECODED_BYTES = (16, 64)


def base64_pattern(low: int, high: int) -> str:
    """Base64 text of ``low``..``high`` bytes, or "": n bytes are q full 4-character groups plus
    a tail, n = 3q (no tail), 3q+1 ("xx=="), 3q+2 ("xxx=")."""
    char = "[A-Za-z0-9+/]"
    tails = {0: "", 1: f"{char}{{2}}==", 2: f"{char}{{3}}="}
    branches = [
        f"(?:{char}{{4}}){{{-(-(low - r) // 3)},{(high - r) // 3}}}{tail}"
        for r, tail in tails.items()
    ]
    return f"^$|^(?:{'|'.join(branches)})$"


KEY_PATTERN_B64 = base64_pattern(*KEY_DECODED_BYTES)
THUMBPRINT_PATTERN = r"^([0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})?$"  # CS: SHA-1 or SHA-256
BULK_MODES = [
    "create", "update", "updateIfMatchETag", "delete", "deleteIfMatchETag",
    "updateTwin", "updateTwinIfMatchETag",
]
IMPORT_MODES = ["createOrUpdate", "createOrUpdateIfMatchETag", *BULK_MODES]  # DOC-BULK, CS
# What each importMode does (DOC-BULK "Import behavior"): which need the device's
# eTag, which the twin's twinETag, which delete, which write only the twin.
MODE_SEMANTICS = {
    "etag": ["updateIfMatchETag", "deleteIfMatchETag", "createOrUpdateIfMatchETag"],
    "twinEtag": ["updateTwinIfMatchETag"],
    "delete": ["delete", "deleteIfMatchETag"],
    "twinOnly": ["updateTwin", "updateTwinIfMatchETag"],
    "create": ["create", "createOrUpdate", "createOrUpdateIfMatchETag"],
}
# PY210, PY223, CS: the versions SDKs used for this operation, current first. The hub accepts them;
# a conformance run accepts an endpoint that refuses all but the current one.
API_VERSIONS = [API_VERSION, "2020-09-30", "2020-06-30-preview", "2020-05-31-preview",
                "2020-03-13", "2020-03-01", "2019-10-01"]

NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": name}


def document(name: str, description: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "$id": BASE + name + ".json",
        "title": name,
        "description": description,
        **body,
    }


def string_pair(names: tuple[str, str], pattern: str, rule: str,
                notes: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object of two optional strings sharing one pattern (keys, thumbprints)."""
    return {
        "type": ["object", "null"],
        "properties": {
            name: {"type": ["string", "null"], "pattern": pattern, "x-bulkreg-rule": rule,
                   **(notes or {})}
            for name in names
        },
        "additionalProperties": False,
    }


def twin_collection() -> dict[str, Any]:
    defs: dict[str, Any] = {
        "key": {
            "description": "A twin key: UTF-8, case-sensitive, without C0/C1 control characters, "
            "'.', '$' or space (its 1 KB UTF-8 limit is rule twin-key-length).",
            "type": "string",
            "pattern": KEY_PATTERN,
            "x-bulkreg-rule": "twin-key-chars",
        },
        "propertyRootKey": {
            "description": "A key at the root of desired/reported: a twin key, or the "
            "service-maintained $metadata / $version.",
            "type": "string",
            "pattern": PROPERTY_ROOT_KEY_PATTERN,
            "x-bulkreg-rule": "twin-key-chars",
        },
        f"level{MAX_TWIN_DEPTH + 1}": {
            "description": f"A value inside an object or array at depth {MAX_TWIN_DEPTH}: only "
            "scalars, since a nested object or array would be at depth "
            f"{MAX_TWIN_DEPTH + 1}.",
            "type": ["string", "number", "boolean", "null"],
            **TWIN_NUMBER_RANGE,
            "x-bulkreg-rule": {"type": "twin-depth", **TWIN_NUMBER_RULES},
        },
    }
    for depth in range(MAX_TWIN_DEPTH, 0, -1):
        defs[f"level{depth}"] = {
            "description": f"A value whose object or array, if it is one, is at depth {depth}.",
            "propertyNames": ref("#/$defs/key"),
            "additionalProperties": ref(f"#/$defs/level{depth + 1}"),
            "items": ref(f"#/$defs/item{depth + 1}"),
            **TWIN_NUMBER_RANGE,
            "x-bulkreg-rule": TWIN_NUMBER_RULES,
        }
    for depth in range(1, MAX_TWIN_DEPTH + 2):
        defs[f"item{depth}"] = {
            "description": "An array item: any twin value but null.",
            "$ref": f"#/$defs/level{depth}",
            "type": ["string", "number", "boolean", "object", "array"],
            "x-bulkreg-rule": "twin-array-null",
        }
    defs["properties"] = {
        "description": "The root (depth 0) of properties.desired or properties.reported.",
        "type": ["object", "null"],
        "properties": {
            "$metadata": {"type": "object", "description": "Service-maintained; not validated."},
            "$version": {"type": "integer", "description": "Service-maintained."},
        },
        "propertyNames": ref("#/$defs/propertyRootKey"),
        "additionalProperties": ref("#/$defs/level1"),
    }
    return document(
        "TwinCollection",
        "The root (depth 0) of twin tags, desired or reported. Keys exclude control characters, "
        "'.', '$' and space; values are any JSON value (api-version >= 2019-10-01 allows arrays); "
        f"objects and arrays nest at most {MAX_TWIN_DEPTH} deep below the root; array items are "
        "never null.",
        {
            "type": ["object", "null"],
            "propertyNames": ref("#/$defs/key"),
            "additionalProperties": ref("#/$defs/level1"),
            "$defs": defs,
        },
    )


def device_fields(import_mode: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": {
            "description": "The device id: case-sensitive, 1-128 ASCII alphanumerics and "
            "- : . + % _ # * ? ! ( ) , = @ ; $ '",
            "type": "string",
            "minLength": 1,
            "maxLength": ID_MAX_LENGTH,
            "pattern": ID_PATTERN,
            "x-bulkreg-rule": "device-id-format",
        },
        "moduleId": {
            "description": "The module id, if applicable; same characters as a device id.",
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": ID_MAX_LENGTH,
            "pattern": ID_PATTERN,
            "x-bulkreg-rule": "module-id-format",
        },
        "eTag": {**NULLABLE_STRING, "description": "Weak device ETag (updateIfMatchETag, "
                 "deleteIfMatchETag)."},
        "importMode": import_mode,
        "status": {
            "description": "enabled or disabled.",
            "enum": ["enabled", "disabled"],
        },
        "statusReason": {
            "description": "Up to 128 characters; all UTF-8 characters are allowed.",
            "type": ["string", "null"],
            "maxLength": 128,
            "x-bulkreg-rule": {"maxLength": "status-reason-length"},
        },
        "authentication": ref("AuthenticationMechanism.json"),
        "twinETag": {**NULLABLE_STRING, "description": "Weak twin ETag "
                     "(updateTwinIfMatchETag)."},
        "tags": ref("TwinCollection.json"),
        "properties": ref("PropertyContainer.json"),
        "capabilities": ref("DeviceCapabilities.json"),
        "deviceScope": {**NULLABLE_STRING, "description": "The scope of the device."},
        "parentScopes": {
            "description": "Scopes of the parent edge device; for now at most one element.",
            "type": ["array", "null"],
            "items": {"type": "string"},
            "maxItems": 1,
            "x-bulkreg-rule": {"maxItems": "parent-scopes-count"},
        },
    }


def export_import_device() -> dict[str, Any]:
    return document(
        "ExportImportDevice",
        "One entry of a bulk registry call. Every property but id is optional; properties the "
        "service does not know are ignored by it (reported as warnings).",
        {
            "type": "object",
            "required": ["id"],
            "properties": device_fields({
                "description": "The registry operation.",
                "enum": BULK_MODES,
                "x-bulkreg-mode-semantics": {
                    kind: [m for m in modes if m in BULK_MODES]
                    for kind, modes in MODE_SEMANTICS.items()},
            }),
            "additionalProperties": False,
            "x-bulkreg-rule": {"required": "device-id-missing"},
        },
    )


def import_line() -> dict[str, Any]:
    import_mode = {
        "description": "The import operation; createOrUpdate when omitted.",
        "enum": IMPORT_MODES,
        "default": "createOrUpdate",
        "x-bulkreg-mode-semantics": MODE_SEMANTICS,
    }
    fields = {
        name: import_mode if name == "importMode"
        else ref(f"ExportImportDevice.json#/properties/{name}")
        for name in device_fields({})
    }
    return document(
        "ImportLine",
        "One line of an import job's devices.txt: an ExportImportDevice whose importMode may "
        "also be createOrUpdate or createOrUpdateIfMatchETag.",
        {
            "type": "object",
            "required": ["id"],
            "properties": fields,
            "additionalProperties": False,
            "x-bulkreg-rule": {"required": "device-id-missing"},
        },
    )


def definitions(error_codes: list[str]) -> dict[str, dict[str, Any]]:
    docs = {
        "AuthenticationMechanism": document(
            "AuthenticationMechanism",
            "How the device authenticates. Omitted or null: SAS with generated keys.",
            {
                "type": ["object", "null"],
                "properties": {
                    "symmetricKey": ref("SymmetricKey.json"),
                    "x509Thumbprint": ref("X509Thumbprint.json"),
                    "type": {"enum": ["sas", "selfSigned", "certificateAuthority", "none"]},
                },
                "additionalProperties": False,
            },
        ),
        "SymmetricKey": document(
            "SymmetricKey",
            "Base64 primary and secondary keys; both or neither (empty or null: generated).",
            string_pair(("primaryKey", "secondaryKey"), KEY_PATTERN_B64, "auth-key-invalid",
                        {"x-bulkreg-decoded-bytes": list(KEY_DECODED_BYTES)}),
        ),
        "X509Thumbprint": document(
            "X509Thumbprint",
            "SHA-1 (40 hex) or SHA-256 (64 hex) certificate thumbprints.",
            string_pair(("primaryThumbprint", "secondaryThumbprint"), THUMBPRINT_PATTERN,
                        "auth-thumbprint-format"),
        ),
        "DeviceCapabilities": document(
            "DeviceCapabilities",
            "The status of capabilities enabled on the device.",
            {
                "type": ["object", "null"],
                "properties": {"iotEdge": {"type": "boolean"}},
                "additionalProperties": False,
            },
        ),
        "PropertyContainer": document(
            "PropertyContainer",
            "The desired and reported properties of the twin.",
            {
                "type": ["object", "null"],
                "properties": {
                    "desired": ref("TwinCollection.json#/$defs/properties"),
                    "reported": ref("TwinCollection.json#/$defs/properties"),
                },
                "additionalProperties": False,
            },
        ),
        "TwinCollection": twin_collection(),
        "ExportImportDevice": export_import_device(),
        "ImportLine": import_line(),
        "BulkRequest": document(
            "BulkRequest",
            "The body of POST /devices: a bare array of 1 to 100 ExportImportDevice entries.",
            {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": ref("ExportImportDevice.json"),
                "x-bulkreg-api-versions": API_VERSIONS,
                "x-bulkreg-rule": {
                    "type": "bulk-not-array",
                    "minItems": "bulk-empty",
                    "maxItems": "too-many-devices",
                },
            },
        ),
        "DeviceRegistryOperationError": document(
            "DeviceRegistryOperationError",
            "The device registry operation error details.",
            {
                "type": "object",
                "properties": {
                    "deviceId": NULLABLE_STRING,
                    "errorCode": {"enum": error_codes, "description": "The error code."},
                    "errorStatus": NULLABLE_STRING,
                    "moduleId": NULLABLE_STRING,
                    "operation": NULLABLE_STRING,
                },
            },
        ),
        "DeviceRegistryOperationWarning": document(
            "DeviceRegistryOperationWarning",
            "The device registry operation warning details.",
            {
                "type": "object",
                "properties": {
                    "deviceId": NULLABLE_STRING,
                    "warningCode": {"enum": ["DeviceRegisteredWithoutTwin"]},
                    "warningStatus": NULLABLE_STRING,
                },
            },
        ),
        "BulkRegistryOperationResult": document(
            "BulkRegistryOperationResult",
            "The result of the bulk registry operation.",
            {
                "type": "object",
                "properties": {
                    "isSuccessful": {"type": "boolean"},
                    "errors": {"type": "array", "items": ref("DeviceRegistryOperationError.json")},
                    "warnings": {
                        "type": "array", "items": ref("DeviceRegistryOperationWarning.json"),
                    },
                },
            },
        ),
    }
    docs.update(read_endpoint_definitions())
    return docs


def read_endpoint_definitions() -> dict[str, dict[str, Any]]:
    """Device, Twin and the generic error body (docs/evidence.md#errors)."""
    timestamp = {"type": ["string", "null"]}
    scopes = {"type": ["array", "null"], "items": {"type": "string"}}
    return {
        "Device": document(
            "Device",
            "A device identity as GET/PUT /devices/{id} carry it (note etag, lower case).",
            {
                "type": "object",
                "properties": {
                    "deviceId": {"type": "string"},
                    "generationId": NULLABLE_STRING,
                    "etag": NULLABLE_STRING,
                    "connectionState": {"enum": ["Disconnected", "Connected"]},
                    "status": {"enum": ["enabled", "disabled"]},
                    "statusReason": NULLABLE_STRING,
                    "connectionStateUpdatedTime": timestamp,
                    "statusUpdatedTime": timestamp,
                    "lastActivityTime": timestamp,
                    "cloudToDeviceMessageCount": {"type": "integer"},
                    "authentication": ref("AuthenticationMechanism.json"),
                    "capabilities": ref("DeviceCapabilities.json"),
                    "deviceScope": NULLABLE_STRING,
                    "parentScopes": scopes,
                },
            },
        ),
        "Twin": document(
            "Twin",
            "A device twin as GET/PUT/PATCH /twins/{id} carry it.",
            {
                "type": "object",
                "properties": {
                    "deviceId": {"type": "string"},
                    "moduleId": NULLABLE_STRING,
                    "tags": {"type": ["object", "null"]},
                    "properties": {
                        "type": ["object", "null"],
                        "properties": {
                            "desired": {"type": ["object", "null"]},
                            "reported": {"type": ["object", "null"]},
                        },
                    },
                    "etag": NULLABLE_STRING,
                    "version": {"type": ["integer", "null"]},
                    "deviceEtag": NULLABLE_STRING,
                    "status": {"enum": ["enabled", "disabled", None]},
                    "statusReason": NULLABLE_STRING,
                    "statusUpdateTime": timestamp,
                    "connectionState": {"enum": ["Disconnected", "Connected", None]},
                    "lastActivityTime": timestamp,
                    "cloudToDeviceMessageCount": {"type": ["integer", "null"]},
                    "authenticationType": {
                        "enum": ["sas", "selfSigned", "certificateAuthority", "none", None],
                    },
                    "x509Thumbprint": ref("X509Thumbprint.json"),
                    "capabilities": ref("DeviceCapabilities.json"),
                    "deviceScope": NULLABLE_STRING,
                    "parentScopes": scopes,
                },
            },
        ),
        "ErrorBody": document(
            "ErrorBody",
            "IoT Hub's generic error body (format A): Message is 'ErrorCode:<Name>;<text>'.",
            {
                "type": "object",
                "required": ["Message"],
                "properties": {
                    "Message": {"type": "string"},
                    "ExceptionMessage": {"type": "string"},
                },
            },
        ),
    }


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"iothub-errorcode": {"schema": {"type": "string"},
                                         "description": "The symbolic error code."}},
        "content": {"application/json": {"schema": ref("#/components/schemas/ErrorBody")}},
    }


def openapi(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    json_of = lambda name: {"application/json": {"schema": ref(f"#/components/schemas/{name}")}}  # noqa: E731
    api_version = {
        "name": "api-version", "in": "query", "required": True,
        "description": "Version of the API.",
        "schema": {"type": "string", "enum": [API_VERSION]},
    }
    device_id = {
        "name": "id", "in": "path", "required": True, "description": "The device id.",
        "schema": ref("#/components/schemas/ExportImportDevice/properties/id"),
    }
    if_match = {
        "name": "If-Match", "in": "header", "required": False,
        "description": 'A quoted ETag, or "*" for an unconditional write.',
        "schema": {"type": "string"},
    }
    common_errors = {
        "401": error_response("Missing, invalid or expired SAS token (IotHubUnauthorizedAccess)."),
        "429": error_response("Throttled (ThrottlingException); may carry Retry-After."),
    }
    not_found = {"404": error_response("No such device (DeviceNotFound).")}
    bad_id = {"400": error_response("The id is not a valid device id (ArgumentInvalid).")}
    precondition = {"412": error_response("If-Match did not match (PreconditionFailed).")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Azure IoT Hub registry: bulk registry operation and read/verify endpoints",
            "version": API_VERSION,
            "description": "Derived by bulkreg from the service definition and the sources of "
            "docs/evidence.md. "
            "401, 413 and 429 are what the service answers although the published definition "
            "declares only 200 and 400.",
        },
        "servers": [{"url": "https://fully-qualified-iothubname.azure-devices.net"}],
        "security": [{"sas": []}],
        "paths": {
            "/devices": {
                "post": {
                    "operationId": "BulkRegistry_UpdateRegistry",
                    "summary": "Create, update or delete up to 100 device identities.",
                    "parameters": [api_version],
                    "requestBody": {"required": True, "content": json_of("BulkRequest")},
                    "responses": {
                        "200": {"description": "Every entry succeeded.",
                                "content": json_of("BulkRegistryOperationResult")},
                        "400": {
                            "description": "Some entry failed (result body, header "
                            "IotHubErrorCode: BulkRegistryOperationFailure) or the request was "
                            "rejected as a whole (generic error body).",
                            "content": {"application/json": {"schema": {"anyOf": [
                                ref("#/components/schemas/BulkRegistryOperationResult"),
                                ref("#/components/schemas/ErrorBody"),
                            ]}}},
                        },
                        "403": error_response("The hub's device quota is exceeded "
                                              "(IotHubQuotaExceeded); Node and Java clients "
                                              "read a 403 as TooManyDevices."),
                        "413": error_response("More than 100 entries (TooManyDevices)."),
                        **common_errors,
                    },
                },
            },
            "/devices/{id}": {
                "parameters": [device_id, api_version],
                "get": {
                    "operationId": "Devices_GetIdentity",
                    "responses": {"200": {"description": "The device.",
                                          "content": json_of("Device")},
                                  **bad_id, **not_found, **common_errors},
                },
                "put": {
                    "operationId": "Devices_CreateOrUpdateIdentity",
                    "parameters": [if_match],
                    "requestBody": {"required": True, "content": json_of("Device")},
                    "responses": {
                        "200": {"description": "The stored device.", "content": json_of("Device")},
                        "400": error_response("Invalid device."),
                        "409": error_response("Exists and no If-Match (DeviceAlreadyExists)."),
                        **not_found, **precondition, **common_errors,
                    },
                },
                "delete": {
                    "operationId": "Devices_DeleteIdentity",
                    "parameters": [if_match],
                    "responses": {"204": {"description": "Deleted."},
                                  **bad_id, **not_found, **precondition, **common_errors},
                },
            },
            "/twins/{id}": {
                "parameters": [device_id, api_version],
                "get": {
                    "operationId": "Devices_GetTwin",
                    "responses": {"200": {"description": "The twin.", "content": json_of("Twin")},
                                  **bad_id, **not_found, **common_errors},
                },
                "put": {
                    "operationId": "Devices_ReplaceTwin",
                    "parameters": [if_match],
                    "requestBody": {"required": True, "content": json_of("Twin")},
                    "responses": {"200": {"description": "The twin.", "content": json_of("Twin")},
                                  "400": error_response("Invalid twin."),
                                  **not_found, **precondition, **common_errors},
                },
                "patch": {
                    "operationId": "Devices_UpdateTwin",
                    "parameters": [if_match],
                    "requestBody": {"required": True, "content": json_of("Twin")},
                    "responses": {"200": {"description": "The twin.", "content": json_of("Twin")},
                                  "400": error_response("Invalid twin patch."),
                                  **not_found, **precondition, **common_errors},
                },
            },
        },
        "components": {
            "securitySchemes": {
                "sas": {"type": "apiKey", "in": "header", "name": "Authorization",
                        "description": "SharedAccessSignature sr=…&sig=…&se=…&skn=…"},
            },
            "schemas": accepting_unknown_members(bulkreg_schema.bundle(
                *docs, documents=docs, defs="#/components/schemas/")["$defs"]),
        },
    }


def accepting_unknown_members(node: Any) -> Any:
    """``node`` without ``additionalProperties: false``: the service ignores members it does not
    know (IMPORT-LOG in docs/evidence.md), so the operation's schemas accept them; the
    validator's own schema files keep the keyword for its ``unknown-property`` warning."""
    if isinstance(node, dict):
        return {k: accepting_unknown_members(v) for k, v in node.items()
                if not (k == "additionalProperties" and v is False)}
    if isinstance(node, list):
        return [accepting_unknown_members(v) for v in node]
    return node


# --- what the SDKs call beside the bulk call (issue 8): list, query, statistics, modules -----


def with_sdk_reads(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` plus the reads the official SDKs call around the bulk operation, as the reference
    hub serves them (``bulkreg_conformance.oracle.reads``), each with its response schema."""
    schemas = doc["components"]["schemas"]
    device = ref("#/components/schemas/Device")
    schemas["Module"] = {
        "description": "A module identity as GET/PUT /devices/{id}/modules/{mid} carry it: a "
                       "Device's fields plus moduleId and managedBy.",
        "allOf": [device, {"type": "object", "properties": {
            "moduleId": {"type": "string"}, "managedBy": NULLABLE_STRING}}],
    }
    schemas["RegistryStatistics"] = {
        "description": "GET /statistics/devices: device counts (modules are not counted).",
        "type": "object",
        "required": ["totalDeviceCount", "enabledDeviceCount", "disabledDeviceCount"],
        "properties": {name: {"type": "integer", "minimum": 0} for name in (
            "totalDeviceCount", "enabledDeviceCount", "disabledDeviceCount")},
    }
    schemas["QuerySpecification"] = {
        "description": "POST /devices/query: SELECT * FROM devices [WHERE …] (the subset the SDKs' "
                       "query helpers use; see docs/serve.md).",
        "type": "object", "required": ["query"],
        "properties": {"query": {"type": "string", "minLength": 1}},
    }
    api_version = doc["paths"]["/devices"]["post"]["parameters"][0]
    common = {"401": error_response("Missing, invalid or expired SAS token "
                                    "(IotHubUnauthorizedAccess)."),
              "429": error_response("Throttled (ThrottlingException); may carry Retry-After.")}
    json_array = lambda item: {"application/json": {  # noqa: E731
        "schema": {"type": "array", "items": item}}}
    path_id = {"name": "id", "in": "path", "required": True, "description": "The device id.",
               "schema": {"type": "string"}}
    module_id = {"name": "mid", "in": "path", "required": True, "description": "The module id.",
                 "schema": {"type": "string"}}
    if_match = {"name": "If-Match", "in": "header", "required": False,
                "description": 'A quoted ETag, or "*" for an unconditional write.',
                "schema": {"type": "string"}}
    module_json = {"application/json": {"schema": ref("#/components/schemas/Module")}}
    listing = {
        "operationId": "Devices_GetDevices",
        "summary": "List device identities in device-id order (also at /devices/).",
        "parameters": [api_version, {
            "name": "top", "in": "query", "required": False,
            "description": "At most this many; outside 1-1000 it means 1000.",
            "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "The devices.", "content": json_array(device)},
                      **common},
    }
    doc["paths"]["/devices"]["get"] = listing
    doc["paths"]["/devices/"] = {"get": {**listing, "operationId": "Devices_GetDevicesSlash"}}
    doc["paths"]["/devices/query"] = {"post": {
        "operationId": "Query_GetTwins",
        "summary": "One page of the twins a query selects.",
        "parameters": [
            api_version,
            {"name": "x-ms-max-item-count", "in": "header", "required": False,
             "description": "Page size (default 100, at most 1000).",
             "schema": {"type": "integer", "minimum": 1}},
            {"name": "x-ms-continuation", "in": "header", "required": False,
             "description": "The token of the previous page.", "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": ref("#/components/schemas/QuerySpecification")}}},
        "responses": {
            "200": {
                "description": "Matching twins (or one COUNT() object).",
                "headers": {
                    "x-ms-item-type": {"schema": {"enum": ["Twin", "JSON"]}},
                    "x-ms-continuation": {"schema": {"type": "string"}, "description":
                                          "Present while more pages follow."}},
                "content": json_array({"anyOf": [ref("#/components/schemas/Twin"),
                                                 {"type": "object"}]}),
            },
            "400": error_response("Not valid JSON, or a query outside the subset "
                                  "(ArgumentInvalid)."),
            **common,
        },
    }}
    doc["paths"]["/statistics/devices"] = {"get": {
        "operationId": "Statistics_GetDeviceStatistics",
        "parameters": [api_version],
        "responses": {"200": {"description": "Device counts.", "content": {"application/json": {
            "schema": ref("#/components/schemas/RegistryStatistics")}}}, **common},
    }}
    doc["paths"]["/devices/{id}/modules"] = {"get": {
        "operationId": "Modules_GetModulesOnDevice",
        "parameters": [path_id, api_version],
        "responses": {"200": {"description": "The device's modules, in module-id order.",
                              "content": json_array(ref("#/components/schemas/Module"))},
                      "404": error_response("No such device (DeviceNotFound)."), **common},
    }}
    doc["paths"]["/devices/{id}/modules/{mid}"] = {
        "parameters": [path_id, module_id, api_version],
        "get": {"operationId": "Modules_GetIdentity",
                "responses": {"200": {"description": "The module.", "content": module_json},
                              "404": error_response("No such module (ModuleNotFound)."),
                              **common}},
        "put": {"operationId": "Modules_CreateOrUpdateIdentity", "parameters": [if_match],
                "requestBody": {"required": True, "content": module_json},
                "responses": {
                    "200": {"description": "The stored module.", "content": module_json},
                    "400": error_response("Invalid module."),
                    "404": error_response("No such device, or If-Match on an absent module."),
                    "409": error_response("Exists and no If-Match "
                                          "(ModuleAlreadyExistsOnDevice)."),
                    "412": error_response("If-Match did not match (PreconditionFailed)."),
                    **common}},
        "delete": {"operationId": "Modules_DeleteIdentity", "parameters": [if_match],
                   "responses": {"204": {"description": "Deleted."},
                                 "404": error_response("No such module (ModuleNotFound)."),
                                 "412": error_response("If-Match did not match."), **common}},
    }
    twin_json = {"application/json": {"schema": ref("#/components/schemas/Twin")}}
    twin_write = lambda operation, what: {  # noqa: E731
        "operationId": operation, "parameters": [if_match],
        "requestBody": {"required": True, "content": twin_json},
        "responses": {"200": {"description": "The module's twin.", "content": twin_json},
                      "400": error_response(f"Invalid {what}."),
                      "404": error_response("No such module (ModuleNotFound)."),
                      "412": error_response("If-Match did not match (PreconditionFailed)."),
                      **common}}
    doc["paths"]["/twins/{id}/modules/{mid}"] = {
        "parameters": [path_id, module_id, api_version],
        "get": {"operationId": "Modules_GetTwin",
                "responses": {"200": {"description": "The module's twin.", "content": twin_json},
                              "404": error_response("No such module (ModuleNotFound)."),
                              **common}},
        "put": twin_write("Modules_ReplaceTwin", "twin"),
        "patch": twin_write("Modules_UpdateTwin", "twin patch"),
    }
    return doc


# --- import and export jobs (issue 14) -------------------------------------------------------


def with_jobs(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` plus the import/export jobs routes as the reference hub serves them
    (``bulkreg_conformance.hub.jobs``): JobProperties with the wire names of PY270 and CS, and
    the line of importErrors.log (IMPORT-LOG in docs/evidence.md)."""
    schemas = doc["components"]["schemas"]
    uri = {"type": ["string", "null"],
           "description": "A blob container URI with a SAS token (keyBased)."}
    schemas["JobProperties"] = {
        "description": "An import or export job (POST /jobs/create, GET /jobs, GET/DELETE "
                       "/jobs/{id}). System-generated members are ignored at creation.",
        "type": "object",
        "properties": {
            "jobId": NULLABLE_STRING,
            "startTimeUtc": {"type": ["string", "null"], "format": "date-time"},
            "endTimeUtc": {"type": ["string", "null"], "format": "date-time"},
            "type": {"enum": ["import", "export"]},
            "status": {"enum": ["unknown", "enqueued", "running", "completed", "failed",
                                "cancelled", "scheduled", "queued"]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "inputBlobContainerUri": uri,
            "inputBlobName": NULLABLE_STRING,
            "outputBlobContainerUri": uri,
            "outputBlobName": NULLABLE_STRING,
            "excludeKeysInExport": {"type": "boolean"},
            "storageAuthenticationType": {"enum": ["keyBased", "identityBased", None]},
            "identity": {"type": ["object", "null"]},
            "failureReason": NULLABLE_STRING,
            "includeConfigurations": {"type": ["boolean", "null"]},
            "configurationsBlobName": NULLABLE_STRING,
        },
    }
    schemas["ImportErrorLine"] = {
        "description": "One line of importErrors.log (a failed line of an import job): a "
                       "numeric errorCode; deviceId unless the line could not be read as an "
                       "ExportImportDevice.",
        "type": "object",
        "required": ["errorCode", "errorStatus"],
        "properties": {"deviceId": {"type": "string"}, "moduleId": {"type": "string"},
                       "errorCode": {"type": "integer"}, "errorStatus": {"type": "string"}},
    }
    api_version = doc["paths"]["/devices"]["post"]["parameters"][0]
    job = ref("#/components/schemas/JobProperties")
    common = {"401": error_response("Missing, invalid or expired SAS token, or a policy without "
                                    "RegistryReadWrite (IotHubUnauthorizedAccess)."),
              "429": error_response("Throttled (ThrottlingException); may carry Retry-After.")}
    one = {"200": {"description": "The job.", "content": {"application/json": {"schema": job}}}}
    job_id = {"name": "id", "in": "path", "required": True, "description": "The job's id.",
              "schema": {"type": "string"}}
    doc["paths"]["/jobs/create"] = {"post": {
        "operationId": "Jobs_CreateImportExportJob",
        "summary": "Start an import or export job; it runs in the background.",
        "parameters": [api_version],
        "requestBody": {"required": True, "content": {"application/json": {"schema": job}}},
        "responses": {
            **one,
            "400": error_response("Not a job this hub runs: type, container URIs, "
                                  "storageAuthenticationType (ArgumentInvalid, ArgumentNull)."),
            "403": error_response("Another import or export job is active (JobQuotaExceeded)."),
            **common},
    }}
    doc["paths"]["/jobs"] = {"get": {
        "operationId": "Jobs_GetImportExportJobs",
        "summary": "Every import and export job, in creation order.",
        "parameters": [api_version],
        "responses": {"200": {"description": "The jobs.", "content": {"application/json": {
            "schema": {"type": "array", "items": job}}}}, **common},
    }}
    not_found = {"404": error_response("No such job (JobNotFound).")}
    doc["paths"]["/jobs/{id}"] = {
        "parameters": [job_id, api_version],
        "get": {"operationId": "Jobs_GetImportExportJob",
                "responses": {**one, **not_found, **common}},
        "delete": {"operationId": "Jobs_CancelImportExportJob",
                   "summary": "Cancel an active job (it stops before its next batch); an ended "
                              "job is answered unchanged.",
                   "responses": {**one, **not_found, **common}},
    }
    return doc


def editor_catalog(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A SchemaStore-style catalog: which file patterns each schema applies to."""
    return {
        "$schema": "https://json.schemastore.org/schema-catalog.json",
        "version": 1,
        "schemas": [
            {"name": "IoT Hub bulk registry payload", "url": docs["BulkRequest"]["$id"],
             "fileMatch": ["*.bulk.json", "bulk/*.json"]},
        ],
    }


def render(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def outputs(error_codes: list[str]) -> dict[Path, str]:
    docs = definitions(error_codes)
    files = {OUT / "schemas" / f"{name}.json": render(doc) for name, doc in docs.items()}
    files[OUT / "openapi.json"] = render(with_jobs(with_sdk_reads(openapi(docs))))
    return files


def main(argv: list[str] | None = None) -> int:
    from error_codes import ERROR_CODES  # noqa: PLC0415 - data module beside this script

    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for path, text in outputs(list(ERROR_CODES)).items():
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"stale: {path}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
