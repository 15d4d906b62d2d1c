"""The registry model as an oracle, table-driven from the shared examples (hub-*.json)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

import bulkreg_schema
from bulkreg_conformance.oracle import Registry, device_etag, twin_etag
from bulkreg_validator import RULES, validate

from .conftest import registry

HUB_CASES = [c for c in bulkreg_schema.examples() if c.get("source", "").startswith("hub-")]
BULK_CASES = [c for c in bulkreg_schema.examples()
              if c.get("mode") == "bulk" and "payload" in c and "registry" not in c]
MODES = {"create", "update", "updateIfMatchETag", "delete", "deleteIfMatchETag", "updateTwin",
         "updateTwinIfMatchETag"}


def seeded(case: dict[str, Any]) -> Registry:
    reg = registry()
    if case.get("registry"):
        assert reg.apply(orjson.dumps(case["registry"])).status == 200
    return reg


def resolve(value: Any, reg: Registry) -> Any:
    """Placeholders $etag(id) / $twinETag(id) stand for the registry's current etags."""
    if isinstance(value, str) and value.startswith("$") and value.endswith(")"):
        kind, _, device_id = value[1:-1].partition("(")
        wire = reg.device(device_id) if kind == "etag" else reg.twin(device_id)
        assert wire is not None, value
        return wire["etag"]
    if isinstance(value, dict):
        return {k: resolve(v, reg) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, reg) for v in value]
    return value


def test_hub_cases_cover_every_mode_and_outcome() -> None:
    seen = {(e["operation"], e["errorCode"]) for c in HUB_CASES for e in c["outcome"]["errors"]}
    ok_modes = {entry["importMode"] for c in HUB_CASES if c["outcome"]["status"] == 200
                for entry in c["payload"] if "importMode" in entry}
    assert {m for m in MODES if m.startswith(("update", "delete"))} <= {op for op, _ in seen}
    assert ("create", "DeviceAlreadyExists") in seen
    assert ("updateIfMatchETag", "PreconditionFailed") in seen
    assert ok_modes >= MODES
    assert len(HUB_CASES) >= 20


@pytest.mark.parametrize("case", HUB_CASES, ids=[c["name"] for c in HUB_CASES])
def test_hub_case(case: dict[str, Any]) -> None:
    reg = seeded(case)
    before = {k: dict(v) for k, v in reg.records().items()}
    payload = resolve(case["payload"], reg)
    outcome = reg.predict(json.dumps(payload).encode())
    expected = case["outcome"]
    assert outcome.status == expected["status"]
    assert reg.records() == before, "predict must not change the registry"
    if "requestError" in expected:
        assert outcome.headers["iothub-errorcode"] == expected["requestError"]
        assert outcome.body["Message"].startswith(f"ErrorCode:{expected['requestError']};")
        assert outcome.next_state.records() == before
        return
    got = [{"deviceId": e["deviceId"], "errorCode": e["errorCode"], "operation": e["operation"]}
           for e in outcome.body["errors"]]
    assert got == expected["errors"]
    assert outcome.body["isSuccessful"] is (expected["status"] == 200)
    if expected["status"] == 400:
        assert outcome.headers["IotHubErrorCode"] == "BulkRegistryOperationFailure"
    _check_next_state(payload, outcome.next_state, reg, {e["deviceId"] for e in got})


def _check_next_state(payload: list[dict[str, Any]], nxt: Registry, old: Registry,
                      failed: set[str]) -> None:
    for entry in payload:
        device_id, module = entry["id"], entry.get("moduleId")
        mode = entry.get("importMode", "createOrUpdate").lower()
        if device_id in failed:
            assert nxt.device(device_id, module) == old.device(device_id, module)
        elif mode.startswith("delete"):
            assert nxt.device(device_id, module) is None
        else:
            twin = nxt.twin(device_id, module)
            assert twin is not None
            if "tags" in entry:
                assert twin["tags"] == entry["tags"]


@pytest.mark.parametrize("case", BULK_CASES, ids=[c["name"] for c in BULK_CASES])
def test_hub_rejects_exactly_what_the_validator_rejects_for_the_request(
        case: dict[str, Any]) -> None:
    data = (case["text"].encode() if "text" in case
            else json.dumps(case["payload"], ensure_ascii=False).encode())
    api = case.get("api_version", bulkreg_schema.API_VERSION)
    report = validate(data, api_version=api)
    request_errors = [f for f in report.errors if RULES[f.rule].scope == "request"]
    outcome = registry().predict(data, api_version=api)
    if request_errors:
        assert outcome.status in (400, 413)
        assert outcome.headers["iothub-errorcode"] == request_errors[0].code
    else:
        entry_errors = {int(f.pointer.split("/")[1]) for f in report.errors}
        assert outcome.status in (200, 400)
        failed = outcome.body["errors"]
        # against an empty registry only creates (and createOrUpdate) can succeed
        assert len(failed) >= len(entry_errors)


def test_predict_then_apply_generate_the_same_values() -> None:
    reg = registry()
    body = b'[{"id":"a","importMode":"create"}]'
    predicted = reg.predict(body).next_state.device("a")
    applied = reg.apply(body).next_state.device("a")
    assert predicted == applied
    assert predicted is not None and predicted["authentication"]["symmetricKey"]["primaryKey"]


def test_etag_encodings() -> None:
    assert device_etag(0) == "MA=="
    assert device_etag(795214636) == "Nzk1MjE0NjM2"
    assert twin_etag(1) == "AAAAAAAAAAE="


def test_update_replaces_and_regenerates_keys() -> None:
    reg = registry()
    reg.apply(b'[{"id":"a","importMode":"create","status":"disabled","statusReason":"r",'
              b'"capabilities":{"iotEdge":true},"tags":{"t":1}}]')
    before = reg.device("a")
    assert before is not None and before["deviceScope"].startswith("ms-azure-iot-edge://a-")
    reg.apply(b'[{"id":"a","importMode":"update"}]')
    after = reg.device("a")
    assert after is not None
    assert after["status"] == "enabled" and after["statusReason"] is None
    assert after["capabilities"] == {"iotEdge": False}
    assert after["generationId"] == before["generationId"]
    assert after["etag"] != before["etag"]
    keys = ("authentication", "symmetricKey", "primaryKey")
    assert _get(after, keys) != _get(before, keys)
    twin = reg.twin("a")
    assert twin is not None and twin["tags"] == {"t": 1}  # omitted twin sections stay


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def test_given_keys_and_canonical_enums_are_kept() -> None:
    reg = registry()
    key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    body = {"id": "a", "importMode": "CREATE", "status": "Disabled",
            "authentication": {"type": "SAS", "symmetricKey": {"primaryKey": key,
                                                               "secondaryKey": key}}}
    assert reg.apply(orjson.dumps([body])).status == 200
    device = reg.device("a")
    assert device is not None
    assert device["status"] == "disabled" and device["authentication"]["type"] == "sas"
    assert device["authentication"]["symmetricKey"] == {"primaryKey": key, "secondaryKey": key}


def test_update_twin_bumps_version_and_etag_only_of_the_twin() -> None:
    reg = registry()
    reg.apply(b'[{"id":"a","importMode":"create","tags":{"x":1}}]')
    device, twin = reg.device("a"), reg.twin("a")
    reg.apply(b'[{"id":"a","importMode":"updateTwin","tags":{"y":2},'
              b'"properties":{"desired":{"d":1}}}]')
    twin2 = reg.twin("a")
    assert twin is not None and twin2 is not None
    assert twin2["tags"] == {"y": 2} and twin2["version"] == twin["version"] + 1
    assert twin2["etag"] != twin["etag"] and reg.device("a") == device
    assert twin2["properties"]["desired"]["$version"] == 2


def test_patch_twin_merges_and_null_removes() -> None:
    reg = registry()
    reg.apply(b'[{"id":"a","importMode":"create","tags":{"x":1,"y":{"z":2,"w":3}}}]')
    plan = reg.update_twin("a", b'{"tags":{"x":null,"y":{"z":5}}}', None)
    assert plan.status == 200
    reg.commit(plan)
    twin = reg.twin("a")
    assert twin is not None and twin["tags"] == {"y": {"z": 5, "w": 3}}


@pytest.mark.parametrize(("if_match", "status"), [
    (None, 409), ('"*"', 200), ('"MA=="', 412), ("$current", 200)])
def test_put_device_if_match(if_match: str | None, status: int) -> None:
    reg = registry()
    reg.apply(b'[{"id":"a","importMode":"create"}]')
    if if_match == "$current":
        device = reg.device("a")
        assert device is not None
        if_match = f'"{device["etag"]}"'
    assert reg.put_device("a", b'{"deviceId":"a","status":"disabled"}', if_match).status == status


def test_put_device_absent_with_if_match_is_not_found() -> None:
    assert registry().put_device("a", b'{}', '"*"').status == 404


def test_delete_device_removes_its_modules() -> None:
    reg = registry()
    reg.apply(b'[{"id":"a","importMode":"create"}]')
    reg.apply(b'[{"id":"a","moduleId":"m","importMode":"create"}]')
    assert reg.device("a", "m") is not None
    reg.commit(reg.delete_device("a", '"*"'))
    assert reg.device("a", "m") is None and len(reg) == 0


def test_single_operations_validate_bodies_with_the_rules() -> None:
    reg = registry()
    plan = reg.put_device("a", b'{"status":"sleeping"}', None)
    assert plan.status == 400 and plan.headers["iothub-errorcode"] == "DeserializationError"
    assert reg.put_device("a", b'{"deviceId":"b"}', None).status == 400
    assert reg.put_device("a", b'not json', None).status == 400
