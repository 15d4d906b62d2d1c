"""The behaviour decisions: for each open question, the hub's choice and what a run accepts.

One record per question the published definition leaves open (docs/evidence.md, "Open
questions"). ``hub`` is what the reference hub does; ``accepts`` is what a conformance run
accepts from any other endpoint, and ``evidence`` is the evidence of the hub's choice *as a claim
about other endpoints*:

- ``open``: every listed alternative passes (not even a deviation);
- ``observed`` / ``inferred``: another answer is a deviation (it fails only with ``--strict``);
- ``documented`` / ``contract``: another answer fails the run.

``alternatives`` names each other answer a run accepts (an ``open`` row) or reports as this row's
deviation (an ``observed``/``inferred`` row); the tests serve one variant of the reference hub per
alternative (``tests/conformance/test_decision_variants.py``), so the table is executable row by
row. A row without alternatives is one no run exercises, and its ``accepts`` says so with "–".
``rules`` links rules of the rule table to the row: ``rejection`` (the row, not the rule, gives
the evidence that the rule's violation must be rejected), ``per-entry`` (the row decides whether
per-entry errors may stand in for a request-level rejection of the rule), ``warning`` (the row
gives the evidence of an entry that draws the rule's warning) and ``limit`` (the row speaks for
the rule's looser endpoints, whose evidence stays the rule's).

The checks look a decision up by its key (:func:`evidence`) or by a rule's link (:func:`linked`),
so what the table of docs/decisions.md says a run accepts is what the code accepts; the table is
generated from these records and a test fails if they drift (``python -m
bulkreg_conformance.decisions`` prints it).
"""

from __future__ import annotations

from typing import NamedTuple

from bulkreg_conformance.evidence import Evidence

__all__ = ["DECISIONS", "Decision", "evidence", "linked", "markdown"]

ROLES = ("rejection", "per-entry", "warning", "limit")


class Decision(NamedTuple):
    key: str
    question: str
    hub: str
    sources: str
    accepts: str
    evidence: str
    alternatives: tuple[str, ...] = ()
    rules: tuple[tuple[str, str], ...] = ()  # (role, rule id)


_ROWS = [
    Decision("id-special-chars", "Device-id special characters",
             "the C# set is accepted; `+ # ;` warn only", "SWG, CS regex; DOC-IR 2025",
             "a rejection of `+ # ;` is a deviation", "inferred",
             alternatives=('reject-plus-hash-semicolon',),
             rules=(('warning', 'id-unsupported-char'),)),
    Decision("twin-etag-scope", "`twinETag` scope",
             "used by `updateTwinIfMatchETag` only; ignored elsewhere (warning)",
             "PY210, DOC-BULK, CS", "checking it on `updateIfMatchETag` is a deviation",
             "inferred",
             alternatives=('check-twin-etag-on-update-if-match',),
             rules=(('warning', 'mode-ignored-field'),)),
    Decision("create-or-update-modes", "importMode outside the swagger 7 (`createOrUpdate*`)",
             "400 DeserializationError for the request", "SWG enum; DOC-BULK / C# ImportMode",
             "the hub's rejection, a per-entry error, or the import-job semantics", "open",
             alternatives=('entry-error', 'import-semantics')),
    Decision("omitted-import-mode", "An entry without `importMode`",
             "createOrUpdate (the import-job default)", "DOC-BULK; C# default value",
             "create, createOrUpdate, or an error for the entry or the request", "open",
             alternatives=('create', 'entry-error', 'request-error'),
             rules=(('warning', 'import-mode-missing'),)),
    Decision("enum-case", "Enum casing (`Create`, `Enabled`)",
             "parsed case-insensitively, returned canonical", "NODE e2e, DOC-IR, import repro",
             "a rejection is a deviation", "inferred",
             alternatives=('reject-other-casing',),
             rules=(('warning', 'enum-case'),)),
    Decision("member-casing", "Member-name casing in bulk entries (`ImportMode`, `etag`, `ID`)",
             "matched case-insensitively when the entry lacks the exact name, as Newtonsoft.Json "
             "does by default (Node's `updateDevices(…, false)` sends the lower-case `etag` of "
             "`get()`); `bulkreg lint` still warns", "Newtonsoft.Json default (inferred), NODE",
             "either reading: ignored or matched case-insensitively", "open",
             alternatives=('exact-names-only',)),
    Decision("unknown-members", "Members the service does not know",
             "ignored (warning `unknown-property`)", "IMPORT-LOG",
             "ignoring them; a rejection is a deviation", "inferred",
             alternatives=('reject-unknown',),
             rules=(('warning', 'unknown-property'),)),
    Decision("per-entry-status", "Status of a per-entry failure",
             "400 + `IotHubErrorCode: BulkRegistryOperationFailure` + result body; 200 only "
             "when `isSuccessful` is true", "CS HttpClientHelper",
             "200 with `isSuccessful:false` is a deviation", "inferred",
             alternatives=('200-for-entry-failures',)),
    Decision("request-or-entry", "Whole request or one entry rejected for an invalid entry",
             "the whole request (generic error body)", "CS error mapping; no captured trace",
             "a request-level error, or a per-entry error for the invalid entries", "open",
             alternatives=('entry-error',)),
    Decision("too-many-status", "More than 100 entries",
             "413 TooManyDevices, generic body", "CS error mapping",
             "any rejection; 400 or 403 instead of 413 is a deviation", "observed",
             alternatives=('400', '403'),
             rules=(('per-entry', 'too-many-devices'),)),
    Decision("duplicate-ids", "Duplicate ids",
             "by `id` only; request-level 400 DeviceDefinedMultipleTimes", "csharp#3481",
             "any rejection; a per-entry error is a deviation", "observed",
             alternatives=('entry-error',),
             rules=(('per-entry', 'duplicate-id'),)),
    Decision("error-codes", "errorCode values", "the names this project predicts per case",
             "CS ErrorCode.cs, samples; no published mapping",
             "another errorCode for the same status is a deviation", "observed",
             alternatives=('other-code',)),
    Decision("error-code-form", "errorCode representation",
             "string names; `operation` = canonical importMode; `moduleId` null when absent",
             "SWG", "names or numeric codes (compared by name); any `operation` text", "open",
             alternatives=('numeric', 'operation-text')),
    Decision("etag-mismatch-code", "Per-entry etag mismatch code", "PreconditionFailed",
             "CS 412 mapping; SWG enum", "`PreconditionFailed` or `EtagDoesNotMatch`", "open",
             alternatives=('EtagDoesNotMatch',)),
    Decision("error-headers", "Error header names",
             "`iothub-errorcode` on generic errors; `IotHubErrorCode` on bulk failures",
             "CS constants", "either spelling, or none", "open",
             alternatives=('IotHubErrorCode-everywhere', 'none')),
    Decision("error-body-format", "Error body format",
             "format A: `{\"Message\": \"ErrorCode:<Name>;<text>\", \"ExceptionMessage\": "
             "\"Tracking ID:…-G:0-TimeStamp:…\"}`", "JAVA parser tests, csharp#3481",
             "format A or B", "open",
             alternatives=('format-b',)),
    Decision("unenforced-limits", "statusReason over 128 characters",
             "rejected (rule `status-reason-length`)", "SWG states it; no evidence the "
             "service enforces it (open questions)", "acceptance or rejection", "open",
             alternatives=('accept-long-status-reason',),
             rules=(('rejection', 'status-reason-length'),)),
    Decision("twin-limits", "Twin arrays, depth, key and value sizes",
             "as the validator decides", "rule table",
             "a looser endpoint is a failure or a deviation by the rule's evidence", "inferred",
             alternatives=('accept-null-in-arrays',),
             rules=tuple(("limit", r) for r in (
                 "twin-depth", "twin-key-chars", "twin-key-length", "twin-string-length",
                 "twin-integer-range", "twin-array-null", "twin-array-api-version",
                 "twin-section-size"))),
    Decision("null-in-twin", "Null in bulk tags/desired", "dropped (null means \"remove\")",
             "DOC-TW", "dropped or kept", "open",
             alternatives=('keep-nulls',)),
    Decision("keys", "Symmetric keys", "16–64 bytes, both or neither; empty or null: generate",
             "CS SymmetricKey, NODE", "a looser endpoint is a deviation", "observed",
             alternatives=('accept-short-keys',),
             rules=(("limit", "auth-key-invalid"), ("limit", "auth-keys-pair"))),
    Decision("update-omitted-members", "Members and twin sections an update leaves out",
             "device members reset to their defaults; tags and desired kept unless the entry "
             "carries them", "DOC-BULK \"existing information is overwritten with the provided "
             "input data\"", "reset, kept or cleared: a read-back holds only what the write "
             "carried", "open",
             alternatives=('keep-device-members', 'clear-twin-sections')),
    Decision("update-replaces", "Update without `authentication`",
             "identity replaced, keys regenerated; tags/desired replaced only if the entry "
             "carries them", "DOC-BULK \"overwritten\"", "kept or regenerated keys", "open",
             alternatives=('keep-keys',)),
    Decision("warnings", "`DeviceRegisteredWithoutTwin` and `warnings`",
             "never sent; `warnings` is always `[]`", "trigger unknown",
             "any warnings, absent or empty", "open",
             alternatives=('absent', 'without-twin-warnings')),
    Decision("twin-permissions", "Permissions for bulk `updateTwin*`",
             "RegistryReadWrite, decided before the body is read", "DOC-SEC, DOC-TW",
             "– (a run signs as the connection string's policy; 401 or success with a "
             "registryReadWrite token)", "open"),
    Decision("sas-details", "SAS `sr` case and clock skew",
             "case-insensitive host and path, whole-segment prefixes; no clock skew",
             "DOC-SEC, PY270, NODE", "– (the run signs like the SDKs)", "open"),
    Decision("retry-after", "Retry-After on 429", "sent (`1`) with ThrottlingException",
             "no evidence", "absent or present", "open",
             alternatives=('absent',)),
    Decision("throttle-accounting", "Throttle accounting", "one bulk call counts as one request",
             "unknown", "– (a run paces and retries whatever the accounting)", "open"),
    Decision("older-api-versions", "Older api-versions on this route",
             "2021-04-12 and the older versions SDKs used are accepted; others → 400 "
             "InvalidProtocolVersion", "[api-versions](evidence.md#api-versions)",
             "acceptance, or 400 InvalidProtocolVersion for any version but 2021-04-12", "open",
             alternatives=('refuse-older',)),
    Decision("etag-format", "Etags",
             "device etag = base64 of a registry-wide counter; twin etag = base64 of the "
             "twin's version", "[etags](evidence.md#etags)", "any opaque string", "open",
             alternatives=('opaque-strings',)),
    Decision("if-match", "If-Match", "quoted `\"*\"` is the wildcard; an unquoted value is "
             "ignored, as the service did for Node", "node#606, CS", "– (not tested by a run)",
             "open"),
    Decision("unset-members", "Unset optional members in reads (`parentScopes`, "
             "`statusReason`, `deviceScope`, empty twin sections)",
             "`null` for unset strings, `[]` for `parentScopes`, `{}` for empty sections",
             "[open questions](evidence.md#open-questions)", "absent, null or empty alike",
             "open",
             alternatives=('absent', 'null', 'empty')),
    Decision("responses-grow", "Response members not in the 2021-04-12 definition",
             "none sent", "NODE (`modelId` on newer twins)",
             "any extra member; member names compared case-insensitively", "open",
             alternatives=('extra-members', 'pascal-case')),
    Decision("auth-first", "Route and api-version errors vs auth",
             "the token first: without a valid token every request gets 401, so an "
             "unauthenticated caller cannot map routes or api-versions; then 404/405 for the "
             "route, 400 InvalidProtocolVersion, and last the policy's rights (401)",
             "the service's order is unknown", "either order", "open",
             alternatives=('route-before-auth',)),
    Decision("work-per-body", "Work per bulk body",
             "more than 100 entries → 413 TooManyDevices from a scan before validation; a body "
             "over 32 KiB with more than 100,000 JSON values or 500,000 escapes → 413 "
             "MessageTooLarge before validation", "SWG (100 entries); the service's size cap "
             "is unknown", "– (a run sends no such body; any rejection of one)", "open"),
    Decision("http-framing", "HTTP framing",
             "duplicate or malformed Content-Length, Content-Length with Transfer-Encoding, "
             "Transfer-Encoding on HTTP/1.0 → 400 and the connection closed; a body over "
             "16 MiB → 413 and closed; a request that never fully arrives is never executed",
             "RFC 9112 §6.3", "– (not tested by a run)", "open"),
    Decision("list-order", "`GET /devices` and statistics",
             "device-id order; `top` outside 1–1000 (or not a number) means 1000; statistics "
             "count devices, not modules", "SWG", "– (a run lists nothing; any order)", "open"),
    Decision("query", "`POST /devices/query`",
             "[the subset](serve.md#the-query-subset); device-id order; an opaque continuation "
             "token bound to the query, absent on the last page; `x-ms-item-type: Twin`",
             "NODE, PY270 query operations", "– (not tested by a run)", "open"),
    Decision("module-put", "Module identities over REST (PUT)",
             "the device must exist (404 DeviceNotFound); an existing module without If-Match "
             "→ 409 ModuleAlreadyExistsOnDevice; If-Match as for devices", "SWG, maintainer "
             "note (azure-sdk-for-net#13241)", "– (not tested by a run)", "open"),
    Decision("module-entries", "A bulk entry with `moduleId`",
             "targets the module identity; the parent device must exist, else DeviceNotFound "
             "for the entry", "maintainer note (azure-sdk-for-net#13241)",
             "another answer is a deviation", "observed",
             alternatives=('accept-without-parent',)),
]

DECISIONS: dict[str, Decision] = {row.key: row for row in _ROWS}


_LINKS = {(role, rule): row.key for row in _ROWS for role, rule in row.rules}


def evidence(key: str) -> Evidence:
    """The evidence of decision ``key``'s choice as a claim about any endpoint."""
    return Evidence(DECISIONS[key].evidence, f"decision:{key}")


def linked(role: str, rule: str | None) -> str | None:
    """The decision that ``rule`` is linked to in ``role`` (see the module docstring)."""
    return _LINKS.get((role, rule or ""))


def _verdict(level: str) -> str:
    return {"open": "pass", "observed": "deviation", "inferred": "deviation"}.get(
        level, "failure")


def _tested(d: Decision) -> str:
    return ", ".join(f"`{a}`" for a in d.alternatives) or "–"


def markdown() -> str:
    """The behaviour-decisions table of docs/decisions.md (links relative to docs/)."""
    lines = ["| question | hub's choice | sources | a conformance run accepts from other "
             "endpoints | another answer | variants tested |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {d.question} | {d.hub} | {d.sources} | {d.accepts} | {_verdict(d.evidence)} "
              f"({d.evidence}) | {_tested(d)} |" for d in _ROWS]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
