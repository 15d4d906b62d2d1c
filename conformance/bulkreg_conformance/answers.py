"""Reading an endpoint's answers, whatever representation it chose where the spec leaves it open.

- errorCodes as names or numbers (decision error-code-form), ``EtagDoesNotMatch`` read as
  ``PreconditionFailed`` (decision etag-mismatch-code): :func:`code_name`;
- request-level errors in format A (``Message: "ErrorCode:<Name>;…"``) or B (a JSON ``Message``
  with a numeric ``errorCode``), the code in ``iothub-errorcode`` or ``IotHubErrorCode`` or
  neither (decisions error-body-format, error-headers): :func:`error_code`;
- member names in any case (decision responses-grow): :func:`member`;
- a BulkRegistryOperationResult's errors matched to the request's entries by device id, and by
  position where an error names no usable id (an entry without an id still fails as itself):
  :func:`failed_entries`.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from bulkreg_conformance.client import Exchange

__all__ = [
    "NUMERIC_CODES",
    "Reported",
    "code_name",
    "code_status",
    "error_code",
    "failed_entries",
    "has",
    "member",
    "rejected_whole",
    "reported_errors",
    "result_of",
]

# facts §3.3 (CS ErrorCode.cs): import logs and newer error bodies (format B) carry numeric
# codes; a faithful endpoint may send either form, so numbers are compared by name.
NUMERIC_CODES = {
    400001: "InvalidProtocolVersion", 400003: "InvalidOperation", 400004: "ArgumentInvalid",
    400005: "ArgumentNull", 400006: "IotHubFormatError", 400011: "DeviceDefinedMultipleTimes",
    400012: "DeserializationError", 400013: "BulkRegistryOperationFailure",
    401001: "IotHubNotFound", 401002: "IotHubUnauthorizedAccess", 403002: "IotHubQuotaExceeded",
    404001: "DeviceNotFound", 404010: "ModuleNotFound", 409001: "DeviceAlreadyExists",
    409301: "ModuleAlreadyExistsOnDevice", 412001: "PreconditionFailed",
    413002: "TooManyDevices", 413003: "TooManyModulesOnDevice", 429000: "GenericTooManyRequests",
    429001: "ThrottlingException", 429002: "ThrottleBacklogLimitExceeded",
    429003: "ThrottlingBacklogTimeout", 500001: "ServerError", 503001: "ServiceUnavailable",
}
# Names that mean the same for a verdict (decision etag-mismatch-code).
SAME_CODE = {"EtagDoesNotMatch": "PreconditionFailed"}


def code_name(code: Any) -> str | None:
    """An errorCode as its canonical name, whether sent as a name or a number."""
    if isinstance(code, bool) or code is None:
        return None
    if isinstance(code, int) or (isinstance(code, str) and code.isascii() and code.isdigit()):
        return NUMERIC_CODES.get(int(code), str(code))
    name = str(code)
    return SAME_CODE.get(name, name)


_STATUS_OF = {name: number // 1000 for number, name in NUMERIC_CODES.items()}


def code_status(code: Any) -> int | None:
    """The HTTP status an errorCode belongs to (its numeric form's first three digits), or
    None for a code this project does not know."""
    name = code_name(code)
    return _STATUS_OF.get(name) if name is not None else None


def member(obj: Any, name: str) -> Any:
    """``obj[name]``, matching the member name case-insensitively (decision responses-grow);
    None when ``obj`` is not an object or has no such member."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    lowered = name.lower()
    return next((v for k, v in obj.items() if isinstance(k, str) and k.lower() == lowered), None)


def has(obj: Any, name: str) -> bool:
    lowered = name.lower()
    return isinstance(obj, dict) and any(
        isinstance(k, str) and k.lower() == lowered for k in obj)


def error_code(exchange: Exchange) -> str | None:
    """The symbolic errorCode of a request-level error: header first, then the body (format A
    or format B)."""
    return code_name(_raw_error_code(exchange))


def _raw_error_code(exchange: Exchange) -> str | None:
    header = exchange.header("iothub-errorcode") or exchange.header("IotHubErrorCode")
    if header and header != "BulkRegistryOperationFailure":
        return header
    body = exchange.json()
    message = member(body, "Message")
    if isinstance(message, str) and message.startswith("ErrorCode:"):
        return message[len("ErrorCode:"):].split(";", 1)[0]
    if isinstance(message, str):
        try:
            inner = json.loads(message)
        except ValueError:
            return header
        code = member(inner, "errorCode")
        return str(code) if code is not None else header
    if member(body, "errorCode") is not None:
        return str(member(body, "errorCode"))
    return header


def result_of(exchange: Exchange) -> dict[str, Any] | None:
    """The BulkRegistryOperationResult of an answer, or None (a generic error, not JSON…)."""
    body = exchange.json()
    if isinstance(body, dict) and exchange.status < 500 and (
            has(body, "isSuccessful") or isinstance(member(body, "errors"), list)):
        return body
    return None


def rejected_whole(exchange: Exchange) -> bool:
    """The endpoint refused the request as a whole (a 4xx without a result body)."""
    return 400 <= exchange.status < 500 and result_of(exchange) is None


def _errors(result: dict[str, Any]) -> list[Any]:
    errors = member(result, "errors")
    return errors if isinstance(errors, list) else []


def reported_errors(result: dict[str, Any]) -> dict[str, str | None]:
    """device id -> errorCode name, for the errors of an answer that name a device."""
    out: dict[str, str | None] = {}
    for error in _errors(result):
        device_id = member(error, "deviceId")
        if isinstance(device_id, str) and device_id:
            out.setdefault(device_id, code_name(member(error, "errorCode")))
    return out


class Reported(NamedTuple):
    """A result's errors matched to the request's entries."""

    failed: dict[int, str | None]  # entry index -> errorCode name, for each failed entry
    stray: list[str]  # ids an error names that the request does not (or names too often)
    unmatched: int  # errors naming no usable id that no entry could take
    total: int  # error objects in the answer


def failed_entries(result: dict[str, Any], ids: list[str | None]) -> Reported:
    """Which entries (by index; ``ids`` are the request's, None where an entry has no usable
    id) the answer fails. An error names its entry by ``deviceId`` (duplicates in order); an
    error without a usable id takes, in order, the entries without one, and when no error of
    the answer names a device at all, the entries left in order (match by position)."""
    waiting: dict[str, list[int]] = {}
    anonymous_entries: list[int] = []
    for index, device_id in enumerate(ids):
        if device_id:
            waiting.setdefault(device_id, []).append(index)
        else:
            anonymous_entries.append(index)
    failed: dict[int, str | None] = {}
    stray: list[str] = []
    anonymous: list[str | None] = []
    errors = [e for e in _errors(result) if isinstance(e, dict)]
    for error in errors:
        device_id = member(error, "deviceId")
        code = code_name(member(error, "errorCode"))
        if not (isinstance(device_id, str) and device_id):
            anonymous.append(code)
        elif waiting.get(device_id):
            failed[waiting[device_id].pop(0)] = code
        else:
            stray.append(device_id)
    rest = anonymous[len(anonymous_entries):]
    for index, code in zip(anonymous_entries, anonymous, strict=False):
        failed[index] = code
    if rest and len(anonymous) == len(errors):  # the endpoint names no device: position decides
        free = sorted(i for left in waiting.values() for i in left)
        for index, code in zip(free, rest, strict=False):
            failed[index] = code
        rest = rest[len(free):]
    return Reported(failed, stray, len(rest), len(errors))
