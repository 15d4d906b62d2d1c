"""The rule table: every rule beyond plain JSON syntax, registered once.

A row says what the hub would answer (``code``), how sure we are (``evidence``: contract,
documented, observed, inferred), where that comes from (``source``, keys of spec/facts.md §0), how
bad it is (``severity``) and whether the hub rejects the whole request or only the entry
(``scope``). Limits that JSON Schema can express live in the schema files, which name their rule in
``x-bulkreg-rule``; the limits below are the ones it cannot express. The README's rule table is
generated from ``RULES`` (``python -m bulkreg_validator.cli rules --markdown``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["LIMITS", "RULES", "Rule"]


class Rule(NamedTuple):
    id: str
    code: str | None  # the IoT Hub errorCode the service would answer; None: it accepts
    severity: str  # "error" | "warning"
    evidence: str  # "contract" | "documented" | "observed" | "inferred"
    scope: str  # "request": the hub rejects the call; "entry": only this entry fails
    # "schema": a JSON Schema keyword carries it; "parser": the parser; "rule": a check in
    # _checks.py; "document": the validator across entries or lines (duplicates, blank lines)
    where: str
    summary: str
    source: str


# Limits JSON Schema cannot express (UTF-8 byte lengths, sizes, decoded lengths, ranges that
# depend on the literal). Schema-expressible limits (id pattern, statusReason 128, depth 10,
# key characters, thumbprint hex, 100 entries) are only in the schema files.
LIMITS: dict[str, Any] = {
    "twin_key_bytes": 1024,  # facts §2.7, SWG PropertyContainer "up-to 1KB"
    "twin_string_bytes": 4096,  # facts §2.7, DOC-TW, EDGE TwinPropertyValueMaxLength
    "tags_bytes": 8 * 1024,  # facts §2.7, DOC-TW, DOC-QT
    "desired_bytes": 32 * 1024,
    "reported_bytes": 32 * 1024,
    "json_max_depth": 1024,  # the parser's nesting limit (also orjson's)
    "arrays_since": "2019-10-01",  # facts §1.3, azure-iot-explorer#305
    "parent_scopes_since": "2020-09-30",  # facts §1.3, §2.6: absent in 2020-05-31-preview
}

_ROWS = [
    # id, code, severity, evidence, scope, where, summary, source
    ("json-syntax", "IotHubFormatError", "error", "documented", "request", "parser",
     "the body must be one JSON text (RFC 8259) with nothing after it",
     "facts §3.1, §3.3: IotHubFormatError 400006 (CS ErrorCode.cs)"),
    ("json-encoding", "IotHubFormatError", "error", "inferred", "request", "parser",
     "JSON must be UTF-8 without a byte order mark",
     "RFC 8259 §8.1; facts §4.3 (clients send application/json; charset=utf-8)"),
    ("json-lone-surrogate", "IotHubFormatError", "error", "inferred", "request", "parser",
     "a \\uD800-\\uDFFF escape must be half of a surrogate pair",
     "RFC 8259 §8.2; the service stores UTF-8 (facts §2.7)"),
    ("json-duplicate-key", "IotHubFormatError", "error", "inferred", "request", "parser",
     "an object must not name the same member twice",
     "RFC 8259 §4 (names SHOULD be unique); the service's reader may keep either value"),
    ("json-nonfinite", "IotHubFormatError", "error", "contract", "request", "parser",
     "NaN, Infinity and -Infinity are not JSON",
     "RFC 8259 §6; body is application/json (SWG)"),
    ("json-number-range", "IotHubFormatError", "error", "inferred", "request", "parser",
     "a number must fit a 64-bit float",
     "the service parses numbers as .NET Int64/Double (facts §2.7 EDGE)"),
    ("json-depth", "IotHubFormatError", "error", "inferred", "request", "parser",
     f"JSON nesting deeper than {LIMITS['json_max_depth']} levels cannot be parsed",
     "parser limit; twins allow depth 10 anyway (facts §2.7)"),
    ("bulk-not-array", "IotHubFormatError", "error", "contract", "request", "schema",
     "the body is a bare JSON array of ExportImportDevice",
     "SWG body parameter devices: array of ExportImportDevice (facts §1.1)"),
    ("bulk-empty", "ArgumentInvalid", "error", "observed", "request", "schema",
     "a bulk call carries at least one entry",
     "facts §2.8: Node and C# reject an empty list client-side"),
    ("too-many-devices", "TooManyDevices", "error", "contract", "request", "schema",
     "a bulk call carries at most 100 entries",
     "SWG/REST 'maximum of 100 devices'; 413 TooManyDevices (facts §2.8, §3.1)"),
    ("duplicate-id", "DeviceDefinedMultipleTimes", "error", "observed", "request", "document",
     "a device id may appear only once (whole file for imports), whatever its moduleId",
     "SWG 'specified only once'; azure-iot-sdk-csharp#3481 (facts §3.1, §8)"),
    ("value-type", "DeserializationError", "error", "observed", "request", "schema",
     "the value has the wrong JSON type for this field",
     "facts §3.2: importErrors.log 400012 'Error converting value'"),
    ("enum-value", "DeserializationError", "error", "contract", "request", "schema",
     "the value is not one of the field's enum values",
     "SWG enums; facts §3.2 ('SELF_SIGNED' fails to convert)"),
    ("enum-case", "DeserializationError", "warning", "observed", "request", "schema",
     "enum values are lower camel case; the service also accepts other casings",
     "facts §3.2, §8: Node sends 'Update', docs show 'Enabled', both accepted"),
    ("unknown-property", None, "warning", "inferred", "request", "schema",
     "the service ignores members it does not know; check the spelling (eTag, twinETag, id)",
     "facts §3.2: an unknown key 'thumbprint' raised no error"),
    ("device-id-missing", "ArgumentNull", "error", "documented", "request", "schema",
     "every entry needs an id",
     "PY210 ExportImportDevice.id 'always required' (facts §1.2)"),
    ("device-id-format", "ArgumentInvalid", "error", "contract", "request", "schema",
     "a device id is 1-128 ASCII letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ '",
     "SWG Twin.deviceId; CS RegistryManager s_deviceIdRegex (facts §2.1)"),
    ("module-id-format", "ArgumentInvalid", "error", "contract", "request", "schema",
     "a module id is 1-128 ASCII letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ '",
     "SWG Twin.moduleId; CS ValidateModuleId (facts §2.1)"),
    ("id-unsupported-char", "ArgumentInvalid", "warning", "documented", "request", "rule",
     "current docs say + and # are not supported in ids and do not list ;",
     "DOC-IR 2025 (facts §2.1, §8)"),
    ("status-reason-length", "ArgumentInvalid", "error", "contract", "request", "schema",
     "statusReason is at most 128 characters",
     "SWG ExportImportDevice.statusReason '128 character-long' (facts §2.2)"),
    ("import-mode-missing", "ArgumentInvalid", "warning", "inferred", "request", "rule",
     "a bulk entry should say its importMode; what the service does without one is unknown",
     "facts §3.2, §8 (import files default to createOrUpdate)"),
    ("etag-required", "PreconditionFailed", "error", "documented", "entry", "rule",
     "updateIfMatchETag and deleteIfMatchETag need the device's eTag",
     "DOC-BULK 'mismatch or absent -> error'; CS requires it (facts §3.2)"),
    ("twin-etag-required", "PreconditionFailed", "error", "documented", "entry", "rule",
     "updateTwinIfMatchETag needs the twin's twinETag",
     "DOC-BULK; PY210 twinETag text; CS (facts §3.2, §8)"),
    ("mode-ignored-field", None, "warning", "inferred", "request", "rule",
     "this importMode does not use the field; the service ignores it",
     "DOC-BULK import behaviour; CS entry shapes per mode (facts §3.2)"),
    ("auth-type-mismatch", "ArgumentInvalid", "error", "observed", "request", "rule",
     "the authentication type must match its material: sas keys, selfSigned thumbprints, "
     "certificateAuthority and none neither",
     "SWG AuthenticationMechanism; CS ValidateDeviceAuthentication (facts §2.5)"),
    ("auth-keys-pair", "ArgumentInvalid", "error", "observed", "request", "rule",
     "give both primaryKey and secondaryKey, or neither (the service then generates them)",
     "CS SymmetricKey / DeviceKeysInvalid (facts §2.3)"),
    ("auth-key-invalid", "ArgumentInvalid", "error", "observed", "request", "schema",
     "a symmetric key is base64 of 16 to 64 bytes",
     "CS SymmetricKey.cs, SecurityConstants 16..64 (facts §2.3)"),
    ("auth-thumbprint-format", "ArgumentInvalid", "error", "observed", "request", "schema",
     "a thumbprint is 40 (SHA-1) or 64 (SHA-256) hex digits",
     "CS X509ThumbprintExtensions (facts §2.4)"),
    ("auth-thumbprint-lengths", "ArgumentInvalid", "error", "observed", "request", "rule",
     "primary and secondary thumbprints must have the same length",
     "CS ThumbprintSizesMustMatch (facts §2.4)"),
    ("auth-keys-and-thumbprints", "ArgumentInvalid", "error", "observed", "request", "rule",
     "a device cannot have both symmetric keys and thumbprints",
     "CS ValidateDeviceAuthentication (facts §2.3)"),
    ("twin-depth", "ArgumentInvalid", "error", "contract", "request", "schema",
     "twin objects and arrays nest at most 10 deep below tags, desired or reported",
     "SWG PropertyContainer 'maximum depth 10'; DOC-TW example; EDGE (facts §2.7)"),
    ("twin-key-chars", "ArgumentInvalid", "error", "contract", "request", "schema",
     "twin keys exclude control characters (C0, C1), '.', '$' and space",
     "SWG PropertyContainer; DOC-TW (facts §2.7)"),
    ("twin-key-length", "ArgumentInvalid", "error", "contract", "request", "rule",
     f"twin keys are at most {LIMITS['twin_key_bytes']} bytes in UTF-8",
     "SWG PropertyContainer 'up-to 1KB'; DOC-TW (facts §2.7)"),
    ("twin-string-length", "ArgumentInvalid", "error", "documented", "request", "rule",
     f"twin string values are at most {LIMITS['twin_string_bytes']} bytes in UTF-8",
     "DOC-TW; EDGE TwinPropertyValueMaxLength (facts §2.7, §8)"),
    ("twin-integer-range", "ArgumentInvalid", "error", "documented", "request", "schema",
     "twin integer literals lie within -2^52 .. 2^52-1, judged by their digits; float literals "
     "such as 1e20 are not limited",
     "DOC-TW; EDGE (facts §2.7)"),
    ("twin-array-null", "ArgumentInvalid", "error", "observed", "request", "schema",
     "twin array items are never null",
     "EDGE ReportedPropertiesValidator (facts §2.7)"),
    ("twin-array-api-version", "ArgumentInvalid", "error", "observed", "request", "rule",
     f"twin arrays need api-version {LIMITS['arrays_since']} or later",
     "azure-iot-explorer#305; iotedgehubdev#326 (facts §1.3, §2.7)"),
    ("twin-section-size", "ArgumentInvalid", "error", "documented", "request", "rule",
     "tags are at most 8 KB, desired and reported at most 32 KB each (docs' size algorithm)",
     "DOC-TW, DOC-QT (facts §2.7)"),
    ("twin-metadata-ignored", None, "warning", "inferred", "request", "rule",
     "$metadata and $version are service-maintained; a bulk call does not set them",
     "DOC-TW, DOC-BULK (facts §2.7, §6.1)"),
    ("parent-scopes-count", "ArgumentInvalid", "error", "observed", "request", "schema",
     "parentScopes has at most one element for now",
     "CS ExportImportDevice.cs comment; PY270 docstring (facts §2.6)"),
    ("parent-scopes-api-version", None, "warning", "observed", "request", "rule",
     f"parentScopes exists from api-version {LIMITS['parent_scopes_since']}; older versions "
     "ignore it",
     "PY210/PY223 models lack parentScopes (facts §1.3)"),
    ("import-blank-line", None, "warning", "inferred", "request", "document",
     "an import file holds one device per line; blank lines are skipped",
     "DOC-BULK import format (facts §6.1)"),
]

RULES: dict[str, Rule] = {row[0]: Rule(*row) for row in _ROWS}
