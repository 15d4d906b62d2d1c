"""Endpoints that answer differently where facts.md §8 leaves the service open must still pass:
numeric errorCodes, error bodies in format B, EtagDoesNotMatch for an ETag mismatch. At most
they earn deviations (failing only with --strict)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bulkreg_conformance.checks import NUMERIC_CODES
from bulkreg_conformance.hub.app import Hub

from .conftest import Served
from .test_broken_hubs import Defect, _errors, _run

NUMBERS = {name: number for number, name in NUMERIC_CODES.items()}


def _format_b(status: int, body: Any) -> tuple[int, Any]:
    """A request-level error as format B: Message is JSON with a numeric errorCode."""
    message = body.get("Message") if isinstance(body, dict) else None
    if not (isinstance(message, str) and message.startswith("ErrorCode:")):
        return status, body
    name, _, text = message[len("ErrorCode:"):].partition(";")
    inner = {"errorCode": NUMBERS.get(name, 400000), "trackingId": "0" * 32, "message": text,
             "timestampUtc": "2025-01-08T19:28:00.672603626Z"}
    return status, {"Message": json.dumps(inner), "ExceptionMessage": ""}


VARIANTS: dict[str, Callable[[Hub], Any]] = {
    "numeric per-entry errorCodes": lambda h: Defect(h, response=_errors(
        lambda e: {**e, "errorCode": NUMBERS.get(e["errorCode"], e["errorCode"])})),
    "format B request errors": lambda h: Defect(h, response=_format_b),
    "EtagDoesNotMatch for a mismatch": lambda h: Defect(h, response=_errors(
        lambda e: {**e, "errorCode": "EtagDoesNotMatch"}
        if e["errorCode"] == "PreconditionFailed" else e)),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_faithful_variant_passes(serve: Callable[..., Served], variant: str) -> None:
    result = _run(serve(VARIANTS[variant]))
    assert [f.check for f in result.failures if f.verdict(False) == "failed"] == []
    assert result.exit_code() == 0
