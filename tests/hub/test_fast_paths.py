"""The hub's fast paths keep their meaning: copy-on-write predictions stay isolated from the
states they came from and went to, and a cached token is still refused once it expires or its
policy is replaced."""

from __future__ import annotations

from typing import Any

import orjson
from werkzeug.test import Client as WsgiClient

from bulkreg_conformance.hub.app import Hub
from bulkreg_conformance.oracle import Registry
from bulkreg_conformance.sas import Policy, generate_token, new_key

from .conftest import API, registry


def _body(*entries: dict[str, Any]) -> bytes:
    return orjson.dumps(list(entries))


def _snapshot(reg: Registry) -> dict[object, object]:
    return {k: orjson.dumps(v) for k, v in reg.records().items()}


def test_predicted_states_are_isolated_from_each_other_and_from_their_origin() -> None:
    reg = registry()
    reg.apply(_body(*({"id": f"d{i}", "importMode": "create"} for i in range(50))))
    origin = _snapshot(reg)
    first = reg.predict(_body({"id": "new", "importMode": "create"},
                              {"id": "d1", "importMode": "delete"})).next_state
    second = first.predict(_body({"id": "d2", "importMode": "updateTwin",
                                  "tags": {"x": 1}})).next_state
    after_first = _snapshot(first)
    assert _snapshot(reg) == origin, "predict changed its registry"
    assert len(first) == len(second) == 50 and len(reg) == 50
    assert ("new", "") in after_first and ("d1", "") not in after_first
    # applying to the origin and to a predicted state changes neither the other nor the chain
    reg.apply(_body({"id": "d3", "importMode": "delete"}, {"id": "o", "importMode": "create"}))
    second.apply(_body({"id": "d4", "importMode": "delete"}))
    assert _snapshot(first) == after_first
    assert ("d3", "") in second.records() and ("o", "") not in second.records()
    assert ("d4", "") in reg.records() and len(reg) == 50 and len(second) == 49
    assert second.twin("d2") is not None and second.twin("d2")["tags"] == {"x": 1}
    assert reg.twin("d2") is not None and reg.twin("d2")["tags"] == {}


def test_predicted_module_index_is_copied_on_write() -> None:
    reg = registry()
    reg.apply(_body({"id": "p", "importMode": "create"}))
    assert reg.apply(_body({"id": "p", "moduleId": "m", "importMode": "create"})).status == 200
    gone = reg.predict(_body({"id": "p", "importMode": "delete"})).next_state
    assert len(gone) == 0 and len(reg) == 2
    grown = reg.predict(_body({"id": "p", "moduleId": "n", "importMode": "create"})).next_state
    again = grown.predict(_body({"id": "p", "importMode": "delete"})).next_state
    assert len(again) == 0 and len(grown) == 3
    # the origin still knows only module m: deleting p removes exactly p and m
    assert len(reg.predict(_body({"id": "p", "importMode": "delete"})).next_state) == 0
    assert reg.device("p", "n") is None and reg.device("p", "m") is not None


def test_long_prediction_chains_agree_with_applying() -> None:
    applied, predicted = registry(), registry()
    for step in range(300):  # long enough to flatten the overlay several times
        body = _body(*({"id": f"s{step}-{i}", "importMode": "create"} for i in range(20)),
                     {"id": f"s{step - 1}-0", "importMode": "delete"})
        outcome = predicted.predict(body)
        assert outcome.body == applied.apply(body).body
        predicted = outcome.next_state
    assert len(predicted) == len(applied) == 300 * 19 + 1
    assert predicted.records() == applied.records()


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _hub(clock: _Clock) -> Hub:
    policies = {"iothubowner": Policy("iothubowner", new_key(),
                                      frozenset({"RegistryRead", "RegistryReadWrite"}))}
    return Hub(host_name="h.azure-devices.net", policies=policies, clock=clock)


def _get(hub: Hub, token: str) -> int:
    response = WsgiClient(hub).get("/devices/none", query_string={"api-version": API},
                                   headers={"Authorization": token})
    return response.status_code


def test_a_cached_token_is_refused_once_it_expires() -> None:
    clock = _Clock(1_000_000.0)
    hub = _hub(clock)
    owner = hub.policies["iothubowner"]
    token = generate_token(hub.host_name, owner.name, owner.key, ttl=60, now=clock.now)
    assert _get(hub, token) == 404 and _get(hub, token) == 404  # verified, then from cache
    clock.now += 59
    assert _get(hub, token) == 404
    clock.now += 1
    assert _get(hub, token) == 401


def test_a_cached_token_is_refused_once_its_policy_key_is_replaced() -> None:
    clock = _Clock(1_000_000.0)
    hub = _hub(clock)
    owner = hub.policies["iothubowner"]
    token = generate_token(hub.host_name, owner.name, owner.key, now=clock.now)
    assert _get(hub, token) == 404
    hub.policies["iothubowner"] = owner._replace(key=new_key())
    assert _get(hub, token) == 401
