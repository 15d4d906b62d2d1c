"""The hub over real HTTP on 127.0.0.1: routes, api-version, auth matrix, faults, admin."""

from __future__ import annotations

import time

import pytest
import requests

from bulkreg_conformance.hub.cli import BackgroundHub, start_background
from bulkreg_conformance.sas import generate_token, new_key, parse_connection_string

from .conftest import API, Client, token_for


def _create(client: Client, *ids: str) -> None:
    body = [{"id": i, "importMode": "create"} for i in ids]
    assert client.call("POST", "/devices", body).status_code == 200


def test_bulk_success_and_partial_failure(client: Client) -> None:
    ok = client.call("POST", "/devices", [{"id": "a", "importMode": "create"}])
    assert ok.status_code == 200
    assert ok.json() == {"isSuccessful": True, "errors": [], "warnings": []}
    again = client.call("POST", "/devices", [{"id": "a", "importMode": "create"},
                                             {"id": "b", "importMode": "create"}])
    assert again.status_code == 400
    assert again.headers["IotHubErrorCode"] == "BulkRegistryOperationFailure"
    assert [e["errorCode"] for e in again.json()["errors"]] == ["DeviceAlreadyExists"]
    assert client.call("GET", "/devices/b").status_code == 200


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"[", 400, "IotHubFormatError"), (b"{}", 400, "IotHubFormatError"),
    (b'[{"id":"a"},{"id":"a"}]', 400, "DeviceDefinedMultipleTimes"),
    (b"[" + b",".join(b'{"id":"d%d","importMode":"create"}' % i for i in range(101)) + b"]",
     413, "TooManyDevices")])
def test_request_level_errors(client: Client, body: bytes, status: int, code: str) -> None:
    response = client.call("POST", "/devices", data=body)
    assert response.status_code == status
    assert response.headers["iothub-errorcode"] == code
    assert response.json()["Message"].startswith(f"ErrorCode:{code};")
    assert "Tracking ID:" in response.json()["ExceptionMessage"]


@pytest.mark.parametrize("api", [None, "2099-01-01", "garbage"])
def test_api_version_is_required(client: Client, api: str | None) -> None:
    response = client.call("POST", "/devices", [{"id": "a", "importMode": "create"}], api=api)
    assert response.status_code == 400
    assert response.headers["iothub-errorcode"] == "InvalidProtocolVersion"


def test_older_api_versions_are_accepted(client: Client) -> None:
    _create(client, "a")
    response = client.call("GET", "/devices/a", api="2020-05-31-preview")
    assert response.status_code == 200 and "parentScopes" not in response.json()


def _bulk(hub: BackgroundHub, authorization: str | None) -> requests.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return requests.post(f"{hub.url}/devices", params={"api-version": API}, headers=headers,
                         json=[{"id": "x", "importMode": "create"}], timeout=10)


def _tamper(token: str) -> str:
    sig = token.split("sig=")[1].split("&", maxsplit=1)[0]
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    return token.replace(sig, flipped)


def auth_cases(hub: BackgroundHub) -> dict[str, str | None]:
    cs = parse_connection_string(hub.connection_string)
    host = cs.host_name
    return {
        "missing": None,
        "malformed": "SharedAccessSignature garbage",
        "not-sas": "Bearer abc",
        "wrong-key": generate_token(host, cs.key_name, new_key()),
        "expired": generate_token(host, cs.key_name, cs.key, ttl=-10),
        "wrong-policy": generate_token(host, "nosuchpolicy", cs.key),
        "wrong-host": generate_token("other.azure-devices.net", cs.key_name, cs.key),
        "wrong-path": generate_token(f"{host}/twins", cs.key_name, cs.key),
        "tampered": _tamper(generate_token(host, cs.key_name, cs.key)),
        "read-only": token_for(hub.connection_string_for("registryRead")),
        "service-only": token_for(hub.connection_string_for("service")),
    }


def test_auth_matrix_rejects_all_and_changes_nothing(hub: BackgroundHub, client: Client) -> None:
    for name, header in auth_cases(hub).items():
        response = _bulk(hub, header)
        assert response.status_code == 401, name
        assert response.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess", name
        assert response.json()["Message"].startswith("ErrorCode:IotHubUnauthorizedAccess;")
        assert hub.hub.policies["iothubowner"].key not in response.text
    assert client.call("GET", "/devices/x").status_code == 404
    assert len(hub.hub.registry) == 0


def test_read_only_policy_reads_but_cannot_write(hub: BackgroundHub, client: Client) -> None:
    _create(client, "a")
    reader = Client(hub, "registryRead")
    assert reader.call("GET", "/devices/a").status_code == 200
    assert reader.call("DELETE", "/devices/a", headers={"If-Match": '"*"'}).status_code == 401
    assert reader.call("PUT", "/devices/b", {"deviceId": "b"}).status_code == 401
    writer = Client(hub, "registryReadWrite")
    assert writer.call("POST", "/devices", [{"id": "c", "importMode": "create"}]).ok


def test_auth_is_checked_before_the_body_is_read(hub: BackgroundHub) -> None:
    response = requests.post(f"{hub.url}/devices", params={"api-version": API},
                             data=b"x" * 100_000, timeout=10)
    assert response.status_code == 401
    assert response.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"


def test_device_and_twin_endpoints(client: Client) -> None:
    created = client.call("PUT", "/devices/a", {"deviceId": "a"})
    assert created.status_code == 200
    etag = created.json()["etag"]
    assert client.call("PUT", "/devices/a", {"deviceId": "a"}).status_code == 409
    stale = client.call("PUT", "/devices/a", {"status": "disabled"},
                        headers={"If-Match": '"bm9wZQ=="'})
    assert stale.status_code == 412
    updated = client.call("PUT", "/devices/a", {"status": "disabled"},
                          headers={"If-Match": f'"{etag}"'})
    assert updated.status_code == 200 and updated.json()["status"] == "disabled"
    twin = client.call("GET", "/twins/a").json()
    patched = client.call("PATCH", "/twins/a", {"tags": {"t": 1}},
                          headers={"If-Match": f'"{twin["etag"]}"'})
    assert patched.status_code == 200 and patched.json()["tags"] == {"t": 1}
    assert client.call("PATCH", "/twins/a", {"tags": {"t": 2}},
                       headers={"If-Match": f'"{twin["etag"]}"'}).status_code == 412
    assert client.call("DELETE", "/devices/a", headers={"If-Match": '"*"'}).status_code == 204
    assert client.call("GET", "/twins/a").status_code == 404


def test_unknown_routes_and_methods(client: Client) -> None:
    assert client.call("GET", "/nothing").status_code == 404
    assert client.call("PATCH", "/devices/a").status_code == 405


def test_throttle_fault_answers_429_with_retry_after(hub: BackgroundHub, client: Client) -> None:
    admin = client.call("POST", "/_bulkreg/admin", {"faults": {"throttle_rps": 2}})
    assert admin.status_code == 200 and admin.json()["faults"]["throttle_rps"] == 2
    statuses = [client.call("GET", "/devices/x") for _ in range(6)]
    throttled = [r for r in statuses if r.status_code == 429]
    assert throttled and throttled[0].headers["Retry-After"] == "1"
    assert throttled[0].headers["iothub-errorcode"] == "ThrottlingException"


def test_error_rate_and_latency_faults(client: Client) -> None:
    client.call("POST", "/_bulkreg/admin", {"faults": {"error_rate": 1, "latency_ms": 50}})
    start = time.monotonic()
    response = client.call("GET", "/devices/x")
    assert response.status_code == 500 and time.monotonic() - start >= 0.05
    client.call("POST", "/_bulkreg/admin", {"faults": {"error_rate": 0, "latency_ms": 0}})
    assert client.call("GET", "/devices/x").status_code == 404


def test_admin_seed_reset_and_bad_knobs(hub: BackgroundHub, client: Client) -> None:
    seeded = client.call("POST", "/_bulkreg/admin/seed",
                         [{"id": f"s{i}", "importMode": "create"} for i in range(150)])
    assert seeded.status_code == 200 and len(seeded.json()["results"]) == 2
    assert client.call("GET", "/_bulkreg/admin").json()["identities"] == 150
    assert client.call("POST", "/_bulkreg/admin", {"faults": {"bogus": 1}}).status_code == 400
    assert client.call("POST", "/_bulkreg/admin/reset").json()["identities"] == 0
    reader = Client(hub, "registryRead")
    assert reader.call("GET", "/_bulkreg/admin").status_code == 401


def test_connection_string_option_serves_that_hub() -> None:
    key = new_key()
    cs = f"HostName=own.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={key}"
    with start_background(connection_string=cs) as hub:
        assert hub.connection_string == cs
        assert Client(hub).call("GET", "/devices/x").status_code == 404
