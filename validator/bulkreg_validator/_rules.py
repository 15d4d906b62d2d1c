"""The rule table: one record per rule, holding its metadata and the function that checks it.

Like jsonschema's one keyword table, every rule beyond plain JSON syntax is registered here once:
what the hub would answer (``code``), how sure we are (``evidence``: contract, documented,
observed, inferred), where that comes from (``source``: keys of docs/evidence.md), how bad it is
(``severity``), whether the hub rejects the whole request or only the entry (``scope``), what
carries it (``where``) and, for rules a function checks, that function (``check``) and the
contexts it can fire in (``applies``). Limits JSON Schema can express live in the schema files,
which name their rule in ``x-bulkreg-rule``. The rule table of docs/rules.md is generated from
``RULES`` (``bulkreg rules --markdown``).
"""

from __future__ import annotations

from typing import NamedTuple

from . import _checks as c
from ._checks import Applies, Check, Context
from ._limits import LIMITS

__all__ = ["EVIDENCE_LEVELS", "LIMITS", "RULES", "Rule", "checks_for"]

# How sure a rule is, strongest first (docs/evidence.md): the published definition, Microsoft
# docs, SDK code/issues/samples, a conclusion. The conformance kit's verdicts build on these.
EVIDENCE_LEVELS = ("contract", "documented", "observed", "inferred")


class Rule(NamedTuple):
    id: str
    code: str | None  # the IoT Hub errorCode the service would answer; None: it accepts
    severity: str  # "error" | "warning"
    evidence: str  # one of EVIDENCE_LEVELS
    scope: str  # "request": the hub rejects the call; "entry": only this entry fails
    # "schema": a JSON Schema keyword carries it; "parser": the parser; "rule": ``check`` below;
    # "document": the validator across entries or lines (duplicates, blank lines)
    where: str
    summary: str
    source: str  # keys of docs/evidence.md, with the part of the source that says it
    check: Check | None = None  # the function that emits this rule (where == "rule")
    applies: Applies = c.always  # contexts in which ``check`` can emit this rule


_ID_CHARS = "1-128 ASCII letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ '"

_TABLE = (
    Rule(id="json-syntax", code="IotHubFormatError", severity="error", evidence="documented",
         scope="request", where="parser",
         summary="the body must be one JSON text (RFC 8259) with nothing after it",
         source="SWG consumes application/json; CS ErrorCode.cs IotHubFormatError 400006"),
    Rule(id="json-encoding", code="IotHubFormatError", severity="error", evidence="inferred",
         scope="request", where="parser",
         summary="JSON must be UTF-8 without a byte order mark",
         source="RFC 8259 §8.1; PY270, NODE, CS send application/json; charset=utf-8"),
    Rule(id="json-lone-surrogate", code="IotHubFormatError", severity="error",
         evidence="inferred", scope="request", where="parser",
         summary="a \\uD800-\\uDFFF escape must be half of a surrogate pair",
         source="RFC 8259 §8.2; DOC-TW: twin keys and strings are UTF-8"),
    Rule(id="json-duplicate-key", code="IotHubFormatError", severity="error",
         evidence="inferred", scope="request", where="parser",
         summary="an object must not name the same member twice",
         source="RFC 8259 §4 (names SHOULD be unique); the service's reader may keep either "
                "value"),
    Rule(id="json-nonfinite", code="IotHubFormatError", severity="error", evidence="contract",
         scope="request", where="parser",
         summary="NaN, Infinity and -Infinity are not JSON",
         source="RFC 8259 §6; SWG: the body is application/json"),
    Rule(id="json-number-range", code="IotHubFormatError", severity="error",
         evidence="inferred", scope="request", where="parser",
         summary="a number must fit a 64-bit float",
         source="EDGE: the service's twin numbers are .NET Int64/Double"),
    Rule(id="json-depth", code="IotHubFormatError", severity="error", evidence="inferred",
         scope="request", where="parser",
         summary=f"JSON nesting deeper than {LIMITS['json_max_depth']} levels cannot be parsed",
         source="parser limit; twins allow depth 10 anyway (SWG, DOC-TW)"),
    Rule(id="bulk-not-array", code="IotHubFormatError", severity="error", evidence="contract",
         scope="request", where="schema",
         summary="the body is a bare JSON array of ExportImportDevice",
         source="SWG body parameter devices: array of ExportImportDevice"),
    # Only clients reject an empty list (NODE, CS); what the service answers is not recorded.
    Rule(id="bulk-empty", code="ArgumentInvalid", severity="error", evidence="inferred",
         scope="request", where="schema",
         summary="a bulk call carries at least one entry",
         source="NODE and CS reject an empty list client-side; no service answer is recorded"),
    Rule(id="too-many-devices", code="TooManyDevices", severity="error", evidence="contract",
         scope="request", where="schema",
         summary="a bulk call carries at most 100 entries",
         source="SWG, REST 'maximum of 100 devices'; CS maps 413 to TooManyDevices"),
    Rule(id="duplicate-id", code="DeviceDefinedMultipleTimes", severity="error",
         evidence="observed", scope="request", where="document",
         summary="a device id may appear only once (whole file for imports), whatever its "
                 "moduleId",
         source="SWG 'specified only once'; azure-iot-sdk-csharp#3481 (service answer, 2025)"),
    Rule(id="value-type", code="DeserializationError", severity="error", evidence="observed",
         scope="request", where="schema",
         summary="the value has the wrong JSON type for this field",
         source="IMPORT-LOG: 400012 'Error converting value'"),
    Rule(id="enum-value", code="DeserializationError", severity="error", evidence="contract",
         scope="request", where="schema",
         summary="the value is not one of the field's enum values",
         source="SWG enums; IMPORT-LOG ('SELF_SIGNED' fails to convert)"),
    Rule(id="enum-case", code="DeserializationError", severity="warning", evidence="observed",
         scope="request", where="schema",
         summary="enum values are lower camel case; the service also accepts other casings",
         source="NODE sends 'Update' and its e2e tests pass; DOC-IR shows 'Enabled'; "
                "IMPORT-LOG accepted 'Enabled'"),
    Rule(id="unknown-property", code=None, severity="warning", evidence="inferred",
         scope="request", where="schema",
         summary="the service ignores members it does not know; check the spelling (eTag, "
                 "twinETag, id)",
         source="IMPORT-LOG: an unknown key 'thumbprint' raised no error"),
    Rule(id="device-id-missing", code="ArgumentNull", severity="error", evidence="documented",
         scope="request", where="schema",
         summary="every entry needs an id",
         source="PY210 ExportImportDevice.id 'always required' (the 2020-03-01 definition)"),
    Rule(id="device-id-format", code="ArgumentInvalid", severity="error", evidence="contract",
         scope="request", where="schema",
         summary=f"a device id is {_ID_CHARS}",
         source="SWG Twin.deviceId; CS RegistryManager s_deviceIdRegex"),
    Rule(id="module-id-format", code="ArgumentInvalid", severity="error", evidence="contract",
         scope="request", where="schema",
         summary=f"a module id is {_ID_CHARS}",
         source="SWG Twin.moduleId; CS ValidateModuleId"),
    Rule(id="id-unsupported-char", code="ArgumentInvalid", severity="warning",
         evidence="documented", scope="request", where="rule",
         summary="current docs say + and # are not supported in ids and do not list ;",
         source="DOC-IR (2025 copy)", check=c.unsupported_id_chars),
    Rule(id="status-reason-length", code="ArgumentInvalid", severity="error",
         evidence="contract", scope="request", where="schema",
         summary="statusReason is at most 128 characters",
         source="SWG ExportImportDevice.statusReason '128 character-long'"),
    Rule(id="import-mode-missing", code="ArgumentInvalid", severity="warning",
         evidence="inferred", scope="request", where="rule",
         summary="a bulk entry should say its importMode; what the service does without one is "
                 "unknown",
         source="DOC-BULK, CS: import files default to createOrUpdate; the bulk call is "
                "undocumented", check=c.import_mode_missing, applies=c.bulk_only),
    Rule(id="etag-required", code="PreconditionFailed", severity="error", evidence="documented",
         scope="entry", where="rule",
         summary="updateIfMatchETag and deleteIfMatchETag need the device's eTag",
         source="DOC-BULK 'mismatch or absent -> error'; CS requires it",
         check=c.etags_required),
    Rule(id="twin-etag-required", code="PreconditionFailed", severity="error",
         evidence="documented", scope="entry", where="rule",
         summary="updateTwinIfMatchETag needs the twin's twinETag",
         source="DOC-BULK; PY210 twinETag text; CS", check=c.etags_required),
    Rule(id="mode-ignored-field", code=None, severity="warning", evidence="inferred",
         scope="request", where="rule",
         summary="this importMode does not use the field; the service ignores it",
         source="DOC-BULK import behaviour; CS entry shapes per mode",
         check=c.mode_ignored_fields),
    # The authentication rules are C# client-side checks: the service's own answer to such an
    # entry is not recorded anywhere, so they are inferred (as bulk-empty).
    Rule(id="auth-type-mismatch", code="ArgumentInvalid", severity="error",
         evidence="inferred", scope="request", where="rule",
         summary="the authentication type must match its material: sas keys, selfSigned "
                 "thumbprints, certificateAuthority and none neither",
         source="SWG AuthenticationMechanism; CS ValidateDeviceAuthentication (client-side)",
         check=c.authentication),
    Rule(id="auth-keys-pair", code="ArgumentInvalid", severity="error", evidence="inferred",
         scope="request", where="rule",
         summary="give both primaryKey and secondaryKey, or neither (the service then generates "
                 "them)",
         source="CS SymmetricKey / DeviceKeysInvalid (client-side)", check=c.authentication),
    Rule(id="auth-key-invalid", code="ArgumentInvalid", severity="error", evidence="inferred",
         scope="request", where="schema",
         summary="a symmetric key is base64 of 16 to 64 bytes",
         source="CS SymmetricKey.cs, SecurityConstants 16..64 (client-side)"),
    Rule(id="auth-thumbprint-format", code="ArgumentInvalid", severity="error",
         evidence="inferred", scope="request", where="schema",
         summary="a thumbprint is 40 (SHA-1) or 64 (SHA-256) hex digits",
         source="CS X509ThumbprintExtensions (client-side)"),
    Rule(id="auth-thumbprint-lengths", code="ArgumentInvalid", severity="error",
         evidence="inferred", scope="request", where="rule",
         summary="primary and secondary thumbprints must have the same length",
         source="CS ThumbprintSizesMustMatch (client-side)", check=c.authentication),
    Rule(id="auth-keys-and-thumbprints", code="ArgumentInvalid", severity="error",
         evidence="inferred", scope="request", where="rule",
         summary="a device cannot have both symmetric keys and thumbprints",
         source="CS ValidateDeviceAuthentication (client-side)", check=c.authentication),
    Rule(id="twin-depth", code="ArgumentInvalid", severity="error", evidence="contract",
         scope="request", where="schema",
         summary="twin objects and arrays nest at most 10 deep below tags, desired or reported",
         source="SWG PropertyContainer 'maximum depth 10'; DOC-TW example; EDGE"),
    Rule(id="twin-key-chars", code="ArgumentInvalid", severity="error", evidence="contract",
         scope="request", where="schema",
         summary="twin keys exclude control characters (C0, C1), '.', '$' and space",
         source="SWG PropertyContainer; DOC-TW"),
    Rule(id="twin-key-length", code="ArgumentInvalid", severity="error", evidence="contract",
         scope="request", where="rule",
         summary=f"twin keys are at most {LIMITS['twin_key_bytes']} bytes in UTF-8",
         source="SWG PropertyContainer 'up-to 1KB'; DOC-TW", check=c.twin_sections,
         applies=c.exhaustive),
    Rule(id="twin-string-length", code="ArgumentInvalid", severity="error",
         evidence="documented", scope="request", where="rule",
         summary=f"twin string values are at most {LIMITS['twin_string_bytes']} bytes in UTF-8",
         source="DOC-TW; EDGE TwinPropertyValueMaxLength", check=c.twin_sections,
         applies=c.exhaustive),
    Rule(id="twin-integer-range", code="ArgumentInvalid", severity="error",
         evidence="documented", scope="request", where="schema",
         summary="twin integer literals lie within -2^52 .. 2^52-1, judged by their digits; "
                 "float literals such as 1e20 are not limited",
         source="DOC-TW; EDGE (integer tokens only)"),
    # Only EDGE, a re-implementation, rejects null array items: not a service answer.
    Rule(id="twin-array-null", code="ArgumentInvalid", severity="error", evidence="inferred",
         scope="request", where="schema",
         summary="twin array items are never null",
         source="EDGE ReportedPropertiesValidator"),
    Rule(id="twin-array-api-version", code="ArgumentInvalid", severity="error",
         evidence="observed", scope="request", where="rule",
         summary=f"twin arrays need api-version {LIMITS['arrays_since']} or later",
         source="azure-iot-explorer#305; iotedgehubdev#326 (service error text)",
         check=c.twin_sections, applies=c.before_arrays),
    Rule(id="twin-section-size", code="ArgumentInvalid", severity="error",
         evidence="documented", scope="request", where="rule",
         summary="tags are at most 8 KB, desired and reported at most 32 KB each (docs' size "
                 "algorithm)",
         source="DOC-TW, DOC-QT", check=c.twin_sections, applies=c.exhaustive),
    Rule(id="twin-metadata-ignored", code=None, severity="warning", evidence="inferred",
         scope="request", where="rule",
         summary="$metadata and $version are service-maintained; a bulk call does not set them",
         source="DOC-TW, DOC-BULK", check=c.twin_metadata, applies=c.bulk_only),
    Rule(id="parent-scopes-count", code="ArgumentInvalid", severity="error",
         evidence="observed", scope="request", where="schema",
         summary="parentScopes has at most one element for now",
         source="CS ExportImportDevice.cs comment; PY270 docstring"),
    # The older definitions lack the field (PY210, PY223); that the service ignores it is a guess.
    Rule(id="parent-scopes-api-version", code=None, severity="warning", evidence="inferred",
         scope="request", where="rule",
         summary=f"parentScopes exists from api-version {LIMITS['parent_scopes_since']}; older "
                 "versions ignore it",
         source="PY210/PY223 models lack parentScopes", check=c.parent_scopes_version,
         applies=c.before_parent_scopes),
    Rule(id="import-blank-line", code=None, severity="warning", evidence="inferred",
         scope="request", where="document",
         summary="an import file holds one device per line; blank lines are skipped",
         source="DOC-BULK import format"),
)

RULES: dict[str, Rule] = {rule.id: rule for rule in _TABLE}


def checks_for(ctx: Context) -> tuple[Check, ...]:
    """The check functions that can emit a finding in ``ctx``, each once, in table order, so
    that hot loops call no others."""
    found: dict[Check, None] = {}
    for rule in _TABLE:
        if rule.check is not None and rule.applies(ctx):
            found.setdefault(rule.check)
    return tuple(found)
