"""The independent endpoint's switches are live: for each one, a probe whose answer the switch
changes (checked against the switched endpoint and, reversed, against the default one). Without
this, a conformance pass of a switched endpoint would prove nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .independent import IndependentHub
from .independent.client import Answer, bulk, call
from .test_independent_endpoint import SWITCHES, endpoint

__all__ = ["endpoint"]  # the fixture, shared with test_independent_endpoint

KEY_A = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="  # 32 bytes
KEY_B = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
Probe = Callable[[IndependentHub], bool]


def _create(hub: IndependentHub, **extra: Any) -> Answer:
    return bulk(hub, [{"id": "d1", "importMode": "create", **extra}])


def _after_create(then: Callable[[IndependentHub], Answer],
                  test: Callable[[Answer], bool], **extra: Any) -> Probe:
    def probe(hub: IndependentHub) -> bool:
        assert _create(hub, **extra).status == 200
        return test(then(hub))
    return probe


def _one(entries: Any, test: Callable[[Answer], bool], **kwargs: Any) -> Probe:
    return lambda hub: test(bulk(hub, entries, **kwargs))


def _entry_code(answer: Answer) -> Any:
    errors = answer.body.get("errors") if isinstance(answer.body, dict) else None
    return errors[0]["errorCode"] if errors else None


def _device(hub: IndependentHub) -> Answer:
    return call(hub, "GET", "/devices/d1")


def _twin(hub: IndependentHub) -> Answer:
    return call(hub, "GET", "/twins/d1")


def _keys_kept(hub: IndependentHub) -> bool:
    keys = {"symmetricKey": {"primaryKey": KEY_A, "secondaryKey": KEY_B}}
    assert _create(hub, authentication=keys).status == 200
    assert bulk(hub, [{"id": "d1", "importMode": "update"}]).status == 200
    return bool(_device(hub).body["authentication"]["symmetricKey"]["primaryKey"] == KEY_A)


def _twin_etag_checked(hub: IndependentHub) -> bool:
    assert _create(hub).status == 200
    etag = _device(hub).body["etag"]
    answer = bulk(hub, [{"id": "d1", "importMode": "updateIfMatchETag", "eTag": etag,
                         "twinETag": "AAAAAAAAAAA="}])
    return bool(_entry_code(answer) == "PreconditionFailed")


def _device_etag_moves(hub: IndependentHub) -> bool:
    assert _create(hub).status == 200
    before = _device(hub).body["etag"]
    assert bulk(hub, [{"id": "d1", "importMode": "updateTwin", "tags": {"a": 1}}]).status == 200
    return bool(_device(hub).body["etag"] != before)


def _throttled(hub: IndependentHub) -> bool:
    answers = [_device(hub) for _ in range(150)]
    return any(a.status == 429 and a.code() == "ThrottlingException"
               and "retry-after" not in {k.lower() for k in a.headers} for a in answers)


PROBES: dict[str, tuple[dict[str, Any], Probe]] = {
    "omitted-mode-create": ({"omitted_mode": "create"}, _after_create(
        lambda h: bulk(h, [{"id": "d1"}]), lambda a: _entry_code(a) == "DeviceAlreadyExists")),
    "omitted-mode-entry-error": ({"omitted_mode": "entry-error"}, _one(
        [{"id": "d1"}], lambda a: a.status == 400 and _entry_code(a) == "ArgumentNull")),
    "omitted-mode-request-error": ({"omitted_mode": "request-error"}, _one(
        [{"id": "d1"}], lambda a: a.code() == "ArgumentNull")),
    "create-or-update-rejected": ({"create_or_update": "reject-request"}, _one(
        [{"id": "d1", "importMode": "createOrUpdate"}],
        lambda a: a.code() == "DeserializationError")),
    "create-or-update-entry-error": ({"create_or_update": "reject-entry"}, _one(
        [{"id": "d1", "importMode": "createOrUpdate"}],
        lambda a: _entry_code(a) == "DeserializationError")),
    "error-format-b": ({"error_format": "B"}, _one(
        {"not": "an array"}, lambda a: a.code() == "400006")),
    "numeric-entry-codes": ({"entry_codes": "numbers"}, _one(
        [{"id": "d1", "importMode": "update"}], lambda a: _entry_code(a) == 404001)),
    "etag-does-not-match": ({"etag_mismatch": "EtagDoesNotMatch"}, _after_create(
        lambda h: bulk(h, [{"id": "d1", "importMode": "deleteIfMatchETag", "eTag": "eA=="}]),
        lambda a: _entry_code(a) == "EtagDoesNotMatch")),
    "invalid-entries-per-entry": ({"invalid_entries": "entry"}, _one(
        [{"id": "d1", "importMode": "create", "tags": {"a.b": 1}}],
        lambda a: _entry_code(a) == "ArgumentInvalid")),
    "unset-null": ({"unset": "null"}, _after_create(
        _device, lambda a: a.body.get("statusReason", "absent") is None)),
    "unset-empty": ({"unset": "empty"}, _after_create(
        _twin, lambda a: a.body.get("tags") == {} and a.body.get("deviceScope") == "")),
    "extra-members": ({"extra_members": True}, _after_create(
        _device, lambda a: "modelId" in a.body and "x-extra" in a.body)),
    "older-api-refused": ({"older_api": "refuse"}, _one(
        [{"id": "d1", "importMode": "create"}], lambda a: a.code() == "InvalidProtocolVersion",
        api_version="2020-09-30")),
    "status-reason-unlimited": ({"status_reason_limit": False}, _one(
        [{"id": "d1", "importMode": "create", "statusReason": "r" * 200}],
        lambda a: a.status == 200)),
    "module-parent-not-required": ({"module_parent": "not-required"}, _one(
        [{"id": "d1", "moduleId": "m1", "importMode": "create"}], lambda a: a.status == 200)),
    "warnings-absent": ({"warnings": "absent"}, _one(
        [{"id": "d1", "importMode": "create"}], lambda a: "warnings" not in a.body)),
    "update-keeps-keys": ({"update_keys": "keep"}, _keys_kept),
    "per-entry-failure-200": ({"failure_status": 200}, _one(
        [{"id": "d1", "importMode": "delete"}],
        lambda a: a.status == 200 and a.body["isSuccessful"] is False)),
    "header-IotHubErrorCode": ({"error_header": "IotHubErrorCode"}, _one(
        [{"id": "d1", "importMode": "delete"}],
        lambda a: a.headers.get("IotHubErrorCode") == "BulkRegistryOperationFailure")),
    "no-error-header": ({"error_header": "none"}, _one(
        [{"id": "d1", "importMode": "delete"}],
        lambda a: not {"iothub-errorcode"} & {k.lower() for k in a.headers})),
    "alternative-request-codes": ({"request_codes": "alternative"}, _one(
        {"not": "an array"}, lambda a: a.code() == "ArgumentInvalid")),
    "twin-strings-in-chars": ({"twin_string_unit": "chars"}, _one(
        [{"id": "d1", "importMode": "create", "tags": {"s": "\u00e9" * 3000}}],
        lambda a: a.status == 200)),
    "twin-nulls-kept": ({"twin_nulls": "keep"}, _after_create(
        _twin, lambda a: a.body.get("tags") == {"a": None}, tags={"a": None})),
    "member-names-case-insensitive": ({"member_casing": "insensitive"}, _one(
        [{"ID": "d1", "ImportMode": "create"}], lambda a: a.status == 200)),
    "no-twin-metadata": ({"twin_metadata": False}, _after_create(
        _twin, lambda a: "$metadata" not in a.body["properties"]["desired"])),
    "empty-body-accepted": ({"empty_body": "accept"}, _one([], lambda a: a.status == 200)),
    "bom-accepted": ({"bom": "accept"}, _one(
        None, lambda a: a.status == 200, raw=b'\xef\xbb\xbf[{"id":"d1","importMode":"create"}]')),
    "duplicate-keys-last-wins": ({"duplicate_keys": "last-wins"}, _one(
        None, lambda a: a.status == 200, raw=b'[{"id":"d1","id":"d1","importMode":"create"}]')),
    "twin-etag-on-update-if-match": ({"twin_etag_on_update_if_match": True},
                                     _twin_etag_checked),
    "too-many-400": ({"too_many_status": 400}, _one(
        [{"id": f"d{i}", "importMode": "create"} for i in range(101)],
        lambda a: (a.status, a.code()) == (400, "TooManyDevices"))),
    "too-many-403": ({"too_many_status": 403}, _one(
        [{"id": f"d{i}", "importMode": "create"} for i in range(101)],
        lambda a: (a.status, a.code()) == (403, "TooManyDevices"))),
    "duplicates-per-entry": ({"duplicates": "entry"}, _one(
        [{"id": "d1", "importMode": "create"}, {"id": "d1", "importMode": "delete"}],
        lambda a: _entry_code(a) == "DeviceDefinedMultipleTimes")),
    "throttled-without-retry-after": ({"throttle_every": 150}, _throttled),
    "operation-dotnet-names": ({"operation_text": "dotnet"}, _one(
        [{"id": "d1", "importMode": "delete"}],
        lambda a: a.body["errors"][0]["operation"] == "Delete")),
    "missing-etag-before-existence": ({"missing_etag_first": True}, _one(
        [{"id": "d1", "importMode": "updateIfMatchETag"}],
        lambda a: _entry_code(a) == "PreconditionFailed")),
    "enum-case-exact": ({"enum_case": "exact"}, _one(
        [{"id": "d1", "importMode": "Create"}], lambda a: a.code() == "DeserializationError")),
    "special-chars-rejected": ({"special_chars": "reject"}, _one(
        [{"id": "d+1", "importMode": "create"}], lambda a: a.code() == "ArgumentInvalid")),
    "unknown-members-rejected": ({"unknown_members": "reject"}, _one(
        [{"id": "d1", "importMode": "create", "etag": "x"}],
        lambda a: a.code() == "DeserializationError")),
    "connection-close": ({"keep_alive": False}, _one(
        [{"id": "d1", "importMode": "create"}], lambda a: a.headers.get("Connection") == "close")),
    "api-version-before-auth": ({"api_version_first": True}, lambda hub: call(
        hub, "GET", "/devices/d1", api_version="1999-01-01",
        headers={"Authorization": ""}).status == 400),
    "errors-in-reverse-order": ({"error_order": "reversed"}, _one(
        [{"id": "d1", "importMode": "delete"}, {"id": "d2", "importMode": "delete"}],
        lambda a: [e["deviceId"] for e in a.body["errors"]] == ["d2", "d1"])),
    "dotnet-timestamps": ({"timestamps": "observed"}, _after_create(
        _device, lambda a: a.body["lastActivityTime"] == "0001-01-01T00:00:00")),
    "status-reason-utf16-length": ({"status_reason_unit": "utf16"}, _one(
        [{"id": "d1", "importMode": "create", "statusReason": "\U0001F600" * 100}],
        lambda a: a.code() == "ArgumentInvalid")),
    "twin-size-in-bytes": ({"twin_size_unit": "bytes"}, _one(
        [{"id": "d1", "importMode": "create", "tags": dict.fromkeys("abc", "é" * 2000)}],
        lambda a: a.code() == "ArgumentInvalid")),
    "warnings-twinless": ({"warnings": "twinless"}, _one(
        [{"id": "d1", "importMode": "create"}],
        lambda a: [w["warningCode"] for w in a.body["warnings"]]
        == ["DeviceRegisteredWithoutTwin"])),
    "twin-change-new-device-etag": ({"twin_bumps_device_etag": True}, _device_etag_moves),
    "update-clears-twin": ({"update_clears_twin": True}, _after_create(
        lambda h: (bulk(h, [{"id": "d1", "importMode": "update"}]), _twin(h))[1],
        lambda a: "a" not in (a.body.get("tags") or {}), tags={"a": 1})),
    "update-twin-clears": ({"update_twin_clears": True}, _after_create(
        lambda h: (bulk(h, [{"id": "d1", "importMode": "updateTwin", "tags": {"b": 2}}]),
                   _twin(h))[1],
        lambda a: "x" not in a.body["properties"]["desired"], properties={"desired": {"x": 1}})),
    "metadata-types-ignored": ({"metadata_types": "ignored"}, _one(
        [{"id": "d1", "importMode": "create", "properties": {"desired": {"$version": "x"}}}],
        lambda a: a.status == 200)),
}


@pytest.mark.parametrize("name", list(PROBES))
def test_switch_changes_the_answer(endpoint: Callable[..., IndependentHub], name: str) -> None:
    options, probe = PROBES[name]
    assert probe(endpoint(**options)), f"{name}: the switched endpoint does not answer as switched"
    assert not probe(endpoint()), f"{name}: the default endpoint already answers so"


def test_every_switch_has_a_probe() -> None:
    assert {name for name, _, _ in SWITCHES} == set(PROBES)
    assert all(PROBES[name][0] == options for name, options, _ in SWITCHES)


@pytest.mark.parametrize(("header", "expected"), [
    (None, 401), ("SharedAccessSignature sr=x&sig=y&se=1&skn=iothubowner", 401),
    ("Bearer abc", 401)])
def test_auth_before_body(endpoint: Callable[..., IndependentHub], header: str | None,
                          expected: int) -> None:
    hub = endpoint()
    headers = {"Authorization": header} if header else {"Authorization": ""}
    answer = call(hub, "POST", "/devices", raw=b"not json", headers=headers)
    assert (answer.status, answer.code()) == (expected, "IotHubUnauthorizedAccess")
