"""The official Python SDK (azure-iot-hub 2.7.0) against the hub over TLS, unmodified: no
base-URL patch, only the connection string ``serve --tls`` prints and REQUESTS_CA_BUNDLE for
the local CA, as a user would run it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkreg_conformance.hub.cli import BackgroundHub, start_background
from bulkreg_conformance.hub.tls import local_certificates, server_context

azure_hub = pytest.importorskip("azure.iot.hub")
models = pytest.importorskip("azure.iot.hub.models")
msrest_exceptions = pytest.importorskip("msrest.exceptions")

pytestmark = pytest.mark.sdk


@pytest.fixture
def tls_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BackgroundHub]:
    found = local_certificates(tmp_path / "tls")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(found.ca))
    with start_background(tls=server_context(found.cert, found.key)) as running:
        yield running


@pytest.fixture
def manager(tls_hub: BackgroundHub) -> Any:
    host = tls_hub.connection_string.split(";")[0]
    assert host == f"HostName=127.0.0.1:{tls_hub.server.port}"  # dialable as printed
    return azure_hub.IoTHubRegistryManager.from_connection_string(tls_hub.connection_string)


def _status(call: Any, *args: Any) -> int:
    with pytest.raises(msrest_exceptions.HttpOperationError) as info:
        call(*args)
    return int(info.value.response.status_code)


def test_bulk_crud_and_twins_over_https(manager: Any) -> None:
    entries = [models.ExportImportDevice(id=f"p{i}", import_mode="create",
                                         tags={"site": "north" if i % 2 else "south"})
               for i in range(5)]
    assert manager.bulk_create_or_update_devices(entries).is_successful is True
    assert manager.get_device("p1").device_id == "p1"
    twin = manager.get_twin("p1")
    patched = manager.update_twin("p1", models.Twin(tags={"floor": 3}), twin.etag)
    assert patched.tags["floor"] == 3
    assert _status(manager.update_twin, "p1", models.Twin(tags={"x": 1}), twin.etag) == 412
    manager.delete_device("p4")
    assert _status(manager.get_device, "p4") == 404


def test_reads_beyond_the_bulk_call(manager: Any) -> None:
    entries = [models.ExportImportDevice(id=f"r{i}", import_mode="create",
                                         status="disabled" if i == 0 else "enabled",
                                         tags={"site": "north" if i % 2 else "south"})
               for i in range(5)]
    manager.bulk_create_or_update_devices(entries)
    assert [d.device_id for d in manager.get_devices(3)] == ["r0", "r1", "r2"]
    assert len(manager.get_devices()) == 5
    stats = manager.get_device_registry_statistics()
    assert (stats.total_device_count, stats.enabled_device_count,
            stats.disabled_device_count) == (5, 4, 1)
    spec = models.QuerySpecification(query="SELECT * FROM devices WHERE tags.site = 'north'")
    first = manager.query_iot_hub(spec, None, 1)
    assert first.type == "Twin" and [t.device_id for t in first.items] == ["r1"]
    second = manager.query_iot_hub(spec, first.continuation_token, 1)
    assert [t.device_id for t in second.items] == ["r3"] and second.continuation_token is None


def test_modules(manager: Any) -> None:
    manager.create_device_with_sas("m-dev", "", "", "enabled")
    module = manager.create_module_with_sas("m-dev", "m1", "me", "", "")
    assert module.module_id == "m1" and module.authentication.symmetric_key.primary_key
    assert _status(manager.create_module_with_sas, "m-dev", "m1", "me", "", "") == 409
    assert _status(manager.create_module_with_sas, "nodev", "m1", "me", "", "") == 404
    assert [m.module_id for m in manager.get_modules("m-dev")] == ["m1"]
    assert manager.get_module("m-dev", "m1").managed_by == "me"
    manager.delete_module("m-dev", "m1")
    assert _status(manager.get_module, "m-dev", "m1") == 404


def test_a_wrong_key_is_refused(tls_hub: BackgroundHub) -> None:
    wrong = tls_hub.connection_string.rsplit("SharedAccessKey=", 1)[0] + \
        "SharedAccessKey=" + "QUFB" * 11
    manager = azure_hub.IoTHubRegistryManager.from_connection_string(wrong)
    assert _status(manager.get_device, "any") == 401
