"""The reads SDKs make beside the bulk call, over HTTP: list, query, statistics, modules; every
answer checked against its response schema in openapi.json. And the order of refusals."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import requests

import bulkreg_schema
from bulkreg_conformance.hub.cli import BackgroundHub
from bulkreg_conformance.oracle.reads import QueryError, parse_query

from .conftest import API, Client

OPENAPI = bulkreg_schema.openapi()


def _conforms(response: requests.Response, path: str, method: str) -> Any:
    """The JSON body, after checking it against the operation's schema for that status."""
    declared = OPENAPI["paths"][path][method]["responses"][str(response.status_code)]
    schema = declared["content"]["application/json"]["schema"]
    body = response.json()
    jsonschema.validate(body, {**schema, "components": OPENAPI["components"]},
                        cls=jsonschema.Draft202012Validator)
    return body


def _seed(client: Client) -> None:
    entries = [{"id": f"d{i}", "importMode": "create",
                "status": "disabled" if i == 3 else "enabled",
                "tags": {"site": "north" if i % 2 else "south", "floor": i},
                "properties": {"desired": {"mode": "eco" if i < 3 else "max"}}}
               for i in range(6)]
    assert client.call("POST", "/devices", entries).status_code == 200


def test_list_with_top_and_trailing_slash(client: Client) -> None:
    _seed(client)
    every = _conforms(client.call("GET", "/devices"), "/devices", "get")
    assert [d["deviceId"] for d in every] == [f"d{i}" for i in range(6)]
    slash = client.call("GET", "/devices/")
    assert [d["deviceId"] for d in _conforms(slash, "/devices/", "get")] == \
        [d["deviceId"] for d in every]
    top = client.session.get(f"{client.hub.url}/devices", timeout=30,
                             params={"api-version": API, "top": "2"})
    assert [d["deviceId"] for d in top.json()] == ["d0", "d1"]
    for odd in ("0", "5000", "x"):  # outside 1..1000: the whole list (up to 1000)
        response = client.session.get(f"{client.hub.url}/devices", timeout=30,
                                      params={"api-version": API, "top": odd})
        assert len(response.json()) == 6


def test_statistics(client: Client) -> None:
    _seed(client)
    assert client.call("PUT", "/devices/d0/modules/m", {}).status_code == 200
    body = _conforms(client.call("GET", "/statistics/devices"), "/statistics/devices", "get")
    assert body == {"totalDeviceCount": 6, "enabledDeviceCount": 5, "disabledDeviceCount": 1}


QUERIES = [
    ("SELECT * FROM devices", ["d0", "d1", "d2", "d3", "d4", "d5"]),
    ("select * from devices where tags.site = 'north'", ["d1", "d3", "d5"]),
    ("SELECT * FROM devices WHERE tags.floor >= 2 AND tags.floor < 4", ["d2", "d3"]),
    ("SELECT * FROM devices WHERE status = 'disabled' OR deviceId = 'd0'", ["d0", "d3"]),
    ("SELECT * FROM devices WHERE NOT (tags.site = 'north')", ["d0", "d2", "d4"]),
    ("SELECT * FROM devices WHERE properties.desired.mode <> 'eco'", ["d3", "d4", "d5"]),
    ("SELECT * FROM devices WHERE IS_DEFINED(tags.nothing)", []),
    ("SELECT * FROM devices WHERE STARTSWITH(deviceId, 'd') AND ENDSWITH(deviceId, '4')",
     ["d4"]),
    ("SELECT * FROM devices WHERE tags.floor = 2.0", ["d2"]),
    ("SELECT * FROM devices.modules", []),
]


@pytest.mark.parametrize(("query", "ids"), QUERIES)
def test_query_subset(client: Client, query: str, ids: list[str]) -> None:
    _seed(client)
    response = client.call("POST", "/devices/query", {"query": query})
    assert response.status_code == 200, response.text
    assert response.headers["x-ms-item-type"] == "Twin"
    assert [t["deviceId"] for t in _conforms(response, "/devices/query", "post")] == ids


def test_query_count(client: Client) -> None:
    _seed(client)
    response = client.call("POST", "/devices/query",
                           {"query": "SELECT COUNT() AS n FROM devices WHERE status = 'enabled'"})
    assert response.json() == [{"n": 5}] and response.headers["x-ms-item-type"] == "JSON"


def test_query_pages_with_continuation_tokens(client: Client) -> None:
    _seed(client)
    query, seen, token = {"query": "SELECT * FROM devices"}, [], None
    for _ in range(10):
        headers = {"x-ms-max-item-count": "4"}
        if token:
            headers["x-ms-continuation"] = token
        page = client.call("POST", "/devices/query", query, headers=headers)
        seen += [t["deviceId"] for t in page.json()]
        token = page.headers.get("x-ms-continuation")
        if token is None:
            break
    assert seen == [f"d{i}" for i in range(6)]
    forged = client.call("POST", "/devices/query", {"query": "SELECT * FROM devices "
                                                             "WHERE status = 'enabled'"},
                         headers={"x-ms-continuation": "MTpub3RoaXM="})
    assert forged.status_code == 400


@pytest.mark.parametrize("text", [
    "DELETE FROM devices", "SELECT deviceId FROM devices", "SELECT * FROM jobs",
    "SELECT * FROM devices WHERE", "SELECT * FROM devices WHERE tags.a = ", "SELECT * FROM",
    "SELECT * FROM devices WHERE tags.a = 'x' GROUP BY x", "SELECT * FROM devices WHERE (a = 1",
])
def test_queries_outside_the_subset_say_why(text: str) -> None:
    with pytest.raises(QueryError):
        parse_query(text)


def test_query_errors_are_iot_hub_errors(client: Client) -> None:
    for body in ({"query": "SELECT name FROM devices"}, {"nope": 1}, []):
        response = client.call("POST", "/devices/query", body)
        assert response.status_code == 400
        assert response.headers["iothub-errorcode"] == "ArgumentInvalid"
    bad = client.call("POST", "/devices/query", data=b"{", headers={
        "Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.headers["iothub-errorcode"] == "IotHubFormatError"


def test_module_identities(client: Client) -> None:
    assert client.call("PUT", "/devices/nodev/modules/m1", {}).status_code == 404
    _seed(client)
    created = client.call("PUT", "/devices/d1/modules/m1", {"managedBy": "me"})
    module = _conforms(created, "/devices/{id}/modules/{mid}", "put")
    assert (module["deviceId"], module["moduleId"], module["managedBy"]) == ("d1", "m1", "me")
    assert module["authentication"]["symmetricKey"]["primaryKey"]
    again = client.call("PUT", "/devices/d1/modules/m1", {})
    assert again.status_code == 409
    assert again.headers["iothub-errorcode"] == "ModuleAlreadyExistsOnDevice"
    stale = client.call("PUT", "/devices/d1/modules/m1", {}, headers={"If-Match": '"stale"'})
    assert stale.status_code == 412
    updated = client.call("PUT", "/devices/d1/modules/m1", {"managedBy": "you"},
                          headers={"If-Match": f'"{module["etag"]}"'})
    assert updated.status_code == 200 and updated.json()["managedBy"] == "you"
    client.call("PUT", "/devices/d1/modules/m0", {})
    listed = _conforms(client.call("GET", "/devices/d1/modules"), "/devices/{id}/modules", "get")
    assert [m["moduleId"] for m in listed] == ["m0", "m1"]
    got = client.call("GET", "/devices/d1/modules/m1")
    assert _conforms(got, "/devices/{id}/modules/{mid}", "get")["managedBy"] == "you"
    assert client.call("GET", "/twins/d1/modules/m1").status_code == 200
    assert client.call("DELETE", "/devices/d1/modules/m1").status_code == 204
    gone = client.call("GET", "/devices/d1/modules/m1")
    assert gone.status_code == 404 and gone.headers["iothub-errorcode"] == "ModuleNotFound"
    assert client.call("DELETE", "/devices/d1").status_code == 204  # modules go with it
    assert client.call("GET", "/devices/d1/modules/m0").status_code == 404


def test_module_twins(client: Client) -> None:
    """GET, PATCH and PUT /twins/{id}/modules/{mid}: a module's twin, apart from its device's."""
    _seed(client)
    assert client.call("PATCH", "/twins/d1/modules/m1", {"tags": {}}).status_code == 404
    assert client.call("PUT", "/devices/d1/modules/m1", {}).status_code == 200
    twin = _conforms(client.call("GET", "/twins/d1/modules/m1"), "/twins/{id}/modules/{mid}",
                     "get")
    assert (twin["deviceId"], twin["moduleId"], twin["tags"]) == ("d1", "m1", {})
    patched = client.call("PATCH", "/twins/d1/modules/m1",
                          {"tags": {"role": "filter"}, "properties": {"desired": {"rate": 5}}},
                          headers={"If-Match": f'"{twin["etag"]}"'})
    body = _conforms(patched, "/twins/{id}/modules/{mid}", "patch")
    assert body["tags"] == {"role": "filter"} and body["properties"]["desired"]["rate"] == 5
    merged = client.call("PATCH", "/twins/d1/modules/m1", {"tags": {"zone": 2, "role": None}})
    assert _conforms(merged, "/twins/{id}/modules/{mid}", "patch")["tags"] == {"zone": 2}
    stale = client.call("PATCH", "/twins/d1/modules/m1", {"tags": {"a": 1}},
                        headers={"If-Match": f'"{twin["etag"]}"'})
    assert stale.status_code == 412 and stale.headers["iothub-errorcode"] == "PreconditionFailed"
    replaced = client.call("PUT", "/twins/d1/modules/m1", {"tags": {"only": True}})
    body = _conforms(replaced, "/twins/{id}/modules/{mid}", "put")
    assert body["tags"] == {"only": True} and "rate" not in body["properties"]["desired"]
    other = client.call("PATCH", "/twins/d1/modules/m1", {"moduleId": "m2", "tags": {}})
    assert other.status_code == 400
    device = client.call("GET", "/twins/d1").json()  # the device's own twin is untouched
    assert device["tags"] == {"site": "north", "floor": 1} and "moduleId" not in device
    assert client.call("PATCH", "/twins/d1/modules/nope", {"tags": {}}).headers[
        "iothub-errorcode"] == "ModuleNotFound"


def test_a_device_named_query_stays_reachable(client: Client) -> None:
    assert client.call("PUT", "/devices/query", {"deviceId": "query"}).status_code == 200
    assert client.call("GET", "/devices/query").json()["deviceId"] == "query"


@pytest.mark.parametrize(("method", "path", "api"), [
    ("GET", "/no/such/route", API), ("DELETE", "/devices", API),
    ("POST", "/devices", "1999-01-01"), ("GET", "/devices/x", None),
    ("GET", "/statistics/service", API),
])
def test_unauthenticated_callers_learn_nothing_about_routes(hub: BackgroundHub, method: str,
                                                            path: str, api: str | None) -> None:
    """Decision (docs/decisions.md): the token is checked first, so a caller without one gets
    401 for every route and api-version, real or not."""
    params = {"api-version": api} if api else {}
    anonymous = requests.request(method, hub.url + path, params=params, timeout=30)
    assert anonymous.status_code == 401
    signed = Client(hub).call(method, path, api=api)
    assert signed.status_code in (400, 404, 405)  # with a token, the real refusal
