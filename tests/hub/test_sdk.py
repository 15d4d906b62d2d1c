"""The official azure-iot-hub 2.7.0 SDK as a real client of the hub over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bulkreg_conformance.hub.cli import BackgroundHub

azure_hub = pytest.importorskip("azure.iot.hub")
models = pytest.importorskip("azure.iot.hub.models")
msrest_exceptions = pytest.importorskip("msrest.exceptions")

pytestmark = pytest.mark.sdk


@pytest.fixture
def manager(hub: BackgroundHub) -> Iterator[Any]:
    registry_manager = azure_hub.IoTHubRegistryManager.from_connection_string(
        hub.connection_string)
    registry_manager.protocol.config.base_url = hub.url  # aim the https client at loopback
    yield registry_manager


def entry(device_id: str, mode: str, **kw: Any) -> Any:
    return models.ExportImportDevice(id=device_id, import_mode=mode, **kw)


def test_bulk_create_update_delete(manager: Any) -> None:
    created = manager.bulk_create_or_update_devices(
        [entry("d1", "create", tags={"site": "A"},
               properties=models.PropertyContainer(desired={"interval": 30})),
         entry("d2", "create", status="disabled")])
    assert created.is_successful is True and created.errors == []
    device = manager.get_device("d1")
    assert device.device_id == "d1" and device.authentication.type == "sas"
    assert device.authentication.symmetric_key.primary_key
    updated = manager.bulk_create_or_update_devices(
        [entry("d1", "updateIfMatchETag", e_tag=device.etag, status="disabled")])
    assert updated.is_successful is True
    assert manager.get_device("d1").status == "disabled"
    deleted = manager.bulk_create_or_update_devices([entry("d1", "delete"),
                                                     entry("d2", "delete")])
    assert deleted.is_successful is True
    with pytest.raises(msrest_exceptions.HttpOperationError) as info:
        manager.get_device("d1")
    assert info.value.response.status_code == 404


def test_bulk_per_entry_errors_deserialize(manager: Any) -> None:
    manager.bulk_create_or_update_devices([entry("d1", "create")])
    result = manager.bulk_create_or_update_devices(
        [entry("d1", "create"), entry("nx", "update"),
         entry("d3", "deleteIfMatchETag", e_tag="MA==")])
    assert result.is_successful is False
    codes = [(e.device_id, e.error_code, e.operation) for e in result.errors]
    assert codes == [("d1", "DeviceAlreadyExists", "create"),
                     ("nx", "DeviceNotFound", "update"),
                     ("d3", "DeviceNotFound", "deleteIfMatchETag")]


def test_request_level_error_through_raw_call(manager: Any) -> None:
    raw = manager.protocol.bulk_registry.update_registry(
        [entry("x", "create"), entry("x", "delete")], raw=True)
    assert raw.response.status_code == 400
    assert raw.response.headers["iothub-errorcode"] == "DeviceDefinedMultipleTimes"
    # 413 is not in the operation's {200, 400}: the generated client raises
    with pytest.raises(msrest_exceptions.HttpOperationError) as info:
        manager.bulk_create_or_update_devices([entry(f"d{i}", "create") for i in range(101)])
    assert info.value.response.status_code == 413


def test_twin_operations(manager: Any) -> None:
    manager.bulk_create_or_update_devices([entry("t1", "create", tags={"a": 1})])
    twin = manager.get_twin("t1")
    assert twin.tags == {"a": 1} and twin.version == 1
    patched = manager.update_twin(
        "t1", models.Twin(properties=models.TwinProperties(desired={"x": 1})), twin.etag)
    assert patched.properties.desired["x"] == 1 and patched.etag != twin.etag
    with pytest.raises(msrest_exceptions.HttpOperationError) as info:
        manager.update_twin("t1", models.Twin(tags={"b": 2}), twin.etag)  # stale etag
    assert info.value.response.status_code == 412
    replaced = manager.replace_twin("t1", models.Twin(tags={"b": 2}))
    assert replaced.tags == {"b": 2}
    bulk_twin = manager.bulk_create_or_update_devices(
        [entry("t1", "updateTwinIfMatchETag", twin_etag=replaced.etag, tags={"c": 3})])
    assert bulk_twin.is_successful is True and manager.get_twin("t1").tags == {"c": 3}


def test_single_device_crud(manager: Any) -> None:
    device = manager.create_device_with_sas("s1", "", "", "enabled")
    assert device.device_id == "s1" and device.etag
    with pytest.raises(msrest_exceptions.HttpOperationError) as info:
        manager.create_device_with_sas("s1", "", "", "enabled")
    assert info.value.response.status_code == 409
    updated = manager.update_device_with_sas("s1", device.etag, "", "", "disabled")
    assert updated.status == "disabled"
    manager.delete_device("s1")  # sends If-Match: "*"
    with pytest.raises(msrest_exceptions.HttpOperationError) as info:
        manager.delete_device("s1")
    assert info.value.response.status_code == 404


def test_read_only_policy_is_refused_for_writes(hub: BackgroundHub) -> None:
    reader = azure_hub.IoTHubRegistryManager.from_connection_string(
        hub.connection_string_for("registryRead"))
    reader.protocol.config.base_url = hub.url
    with pytest.raises(msrest_exceptions.HttpOperationError) as info:
        reader.bulk_create_or_update_devices([entry("r1", "create")])
    assert info.value.response.status_code == 401
