"""Reading answers: errors matched to entries by id and by position, unset members alike at
every depth (the false failures an unseen endpoint met: issue 13)."""

from __future__ import annotations

from typing import Any

import pytest

from bulkreg_conformance.answers import code_name, failed_entries
from bulkreg_conformance.checks import canonical, same


def _result(*errors: dict[str, Any]) -> dict[str, Any]:
    return {"isSuccessful": not errors, "errors": list(errors), "warnings": []}


def test_an_error_without_a_device_id_fails_the_entry_without_one() -> None:
    """The endpoint that failed an id-less entry as {"deviceId": null}: that entry failed, the
    others did not."""
    reported = failed_entries(_result({"deviceId": None, "errorCode": "ArgumentInvalid"}),
                              ["a", None, "c"])
    assert reported.failed == {1: "ArgumentInvalid"}
    assert reported.unmatched == 0 and reported.stray == [] and reported.total == 1


@pytest.mark.parametrize("anonymous", [{"errorCode": 400004}, {"deviceId": "", "errorCode": 1},
                                       {"deviceId": 7, "errorCode": "ArgumentNull"}])
def test_every_unusable_device_id_counts_as_none(anonymous: dict[str, Any]) -> None:
    reported = failed_entries(_result(anonymous), [None])
    assert list(reported.failed) == [0]


def test_errors_with_ids_match_their_entries_and_duplicates_in_order() -> None:
    reported = failed_entries(_result({"deviceId": "b", "errorCode": "DeviceNotFound"},
                                      {"deviceId": "a", "errorCode": 404001},
                                      {"deviceId": "a", "errorCode": "X"}), ["a", "b", "a"])
    assert reported.failed == {0: "DeviceNotFound", 1: "DeviceNotFound", 2: "X"}


def test_an_error_naming_another_device_is_stray_not_a_match() -> None:
    reported = failed_entries(_result({"deviceId": "zz", "errorCode": "DeviceNotFound"}), ["a"])
    assert reported.failed == {} and reported.stray == ["zz"]


def test_an_endpoint_that_names_no_device_is_matched_by_position() -> None:
    reported = failed_entries(_result({"errorCode": "A"}, {"errorCode": "B"}), ["a", "b", "c"])
    assert reported.failed == {0: "A", 1: "B"}


def test_anonymous_errors_go_to_id_less_entries_first() -> None:
    reported = failed_entries(_result({"errorCode": "A"}), ["a", None])
    assert reported.failed == {1: "A"}


def test_an_anonymous_error_beside_named_ones_takes_no_named_entry() -> None:
    reported = failed_entries(_result({"deviceId": "a", "errorCode": "A"}, {"errorCode": "B"}),
                              ["a", "b"])
    assert reported.failed == {0: "A"} and reported.unmatched == 1


@pytest.mark.parametrize(("got", "want"), [
    (None, {"$metadata": {"$lastUpdated": "x"}, "$version": 1}),  # desired: null vs {} + meta
    ({}, None),
    ({"desired": None}, {"desired": {}, "reported": {"$version": 2}}),
    ({"a": {"b": []}}, {"a": {}}),
    ({"a": {"b": None, "c": 1}}, {"a": {"c": 1}}),
    ({"x509Thumbprint": {"primaryThumbprint": None}}, {}),
    ({"statusReason": ""}, {"statusReason": None}),
])
def test_absent_null_and_empty_are_alike_at_every_depth(got: Any, want: Any) -> None:
    assert same(got, want)


@pytest.mark.parametrize(("got", "want"), [
    ({"a": 1}, {"a": 2}),
    ({"a": {"b": 1}}, {"a": {}}),
    ([1, None], [1]),  # array items are values, not members: a null in an array is kept
    ({"k": False}, {}),  # false is a value
])
def test_values_still_differ(got: Any, want: Any) -> None:
    assert not same(got, want)


def test_canonical_drops_service_members_and_unset_ones() -> None:
    assert canonical({"$version": 3, "a": {"$metadata": {}, "b": None}, "c": [{}]}) == \
        {"c": [{}]}


@pytest.mark.parametrize(("code", "name"), [(412001, "PreconditionFailed"),
                                            ("EtagDoesNotMatch", "PreconditionFailed"),
                                            ("404001", "DeviceNotFound"), (True, None)])
def test_codes_by_name_or_number(code: Any, name: str | None) -> None:
    assert code_name(code) == name
