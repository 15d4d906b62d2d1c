"""Hostile SAS tokens are rejected as SasError (401), never an exception from deeper down."""

from __future__ import annotations

import pytest

from bulkreg_conformance.sas import Policy, SasError, new_key, verify_token

POLICIES = {"iothubowner": Policy("iothubowner", new_key(), frozenset({"RegistryReadWrite"}))}


@pytest.mark.parametrize("token", [
    "SharedAccessSignature sr=h&sig=abc&se=" + "9" * 5000 + "&skn=iothubowner",  # int() limit
    "SharedAccessSignature sr=h&sig=abc&se=\u00b2&skn=iothubowner",  # a digit int() refuses
    "SharedAccessSignature sr=h&sig=%%%&se=9999999999&skn=iothubowner",
    "SharedAccessSignature sr=h&sig=abc&se=9999999999&skn=" + "x" * 100_000,
    "SharedAccessSignature " + "&" * 10_000,
    "SharedAccessSignature sr=h&sig=abc&se=9999999999&skn=iothubowner&sr=h",
])
def test_hostile_tokens_are_sas_errors(token: str) -> None:
    with pytest.raises(SasError):
        verify_token(token, policies=POLICIES, host="h", path="/devices", now=0)
