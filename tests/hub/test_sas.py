"""Connection strings and SAS tokens: parsing, signing, verification rules (facts §4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote

import pytest

from bulkreg_conformance.sas import (
    Policy,
    SasError,
    generate_token,
    make_connection_string,
    new_key,
    parse_connection_string,
    verify_token,
)

HOST = "myhub.azure-devices.net"


@pytest.fixture
def key() -> str:
    return new_key()


def policies(key: str) -> dict[str, Policy]:
    return {"iothubowner": Policy("iothubowner", key, frozenset({"RegistryReadWrite"}))}


def verify(header: str, key: str, path: str = "/devices", now: float | None = None) -> Policy:
    return verify_token(header, policies=policies(key), host=HOST, path=path,
                        now=time.time() if now is None else now)


def test_connection_string_round_trip(key: str) -> None:
    parsed = parse_connection_string(make_connection_string(HOST, "iothubowner", key))
    assert parsed == (HOST, "iothubowner", key)
    assert key not in repr(parsed)


@pytest.mark.parametrize("text", [
    "HostName=h", "HostName=h;SharedAccessKeyName=n", "Foo=1;HostName=h",
    "HostName=h;HostName=h;SharedAccessKeyName=n;SharedAccessKey=QUJD",
    "HostName=h;SharedAccessKeyName=n;SharedAccessKey=@@not-base64@@", "garbage"])
def test_bad_connection_strings_are_refused_without_echoing_the_key(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_connection_string(text)
    assert "@@not-base64@@" not in str(info.value)


def test_generated_token_verifies(key: str) -> None:
    assert verify(generate_token(HOST, "iothubowner", key), key).name == "iothubowner"


@pytest.mark.parametrize("resource", [HOST.upper(), f"{HOST}/devices", f"{HOST}/DEVICES/",
                                      f"https://{HOST}"])
def test_resource_case_and_prefix_rules(key: str, resource: str) -> None:
    assert verify(generate_token(resource, "iothubowner", key), key, "/devices/d1")


def test_lower_and_upper_case_encoding_both_verify(key: str) -> None:
    for encoded in (quote(f"{HOST}/devices", safe="").lower(),
                    quote(f"{HOST}/devices", safe="")):
        expiry = str(int(time.time()) + 60)
        sig = base64.b64encode(hmac.new(base64.b64decode(key), f"{encoded}\n{expiry}".encode(),
                                        hashlib.sha256).digest()).decode()
        header = (f"SharedAccessSignature sig={quote(sig, safe='')}&se={expiry}"
                  f"&skn=iothubowner&sr={encoded}")
        assert verify(header, key, "/devices/x")


@pytest.mark.parametrize(("resource", "path"), [
    (f"{HOST}/devices", "/twins/d1"), (f"{HOST}/devices/d1", "/devices/d10"),
    ("other.azure-devices.net", "/devices"), (f"{HOST}/dev", "/devices")])
def test_resource_scoping_refuses(key: str, resource: str, path: str) -> None:
    with pytest.raises(SasError):
        verify(generate_token(resource, "iothubowner", key), key, path)


def test_expired_token_is_refused(key: str) -> None:
    token = generate_token(HOST, "iothubowner", key, ttl=-1)
    with pytest.raises(SasError, match="expired"):
        verify(token, key)


@pytest.mark.parametrize("header", [
    "", "Bearer x", "SharedAccessSignature ", "SharedAccessSignature sr=a&sig=b",
    "SharedAccessSignature sr=a&sig=b&se=c&skn=d&extra=1",
    "SharedAccessSignature sr=a&sr=a&sig=b&se=1&skn=iothubowner"])
def test_malformed_tokens_are_refused(key: str, header: str) -> None:
    with pytest.raises(SasError):
        verify(header, key)


def test_wrong_key_policy_and_tampering_are_refused(key: str) -> None:
    with pytest.raises(SasError, match="signature"):
        verify(generate_token(HOST, "iothubowner", new_key()), key)
    with pytest.raises(SasError, match="policy"):
        verify(generate_token(HOST, "service", key), key)
    token = generate_token(HOST, "iothubowner", key)
    later = token.replace("&se=", "&se=9")
    with pytest.raises(SasError, match="signature"):
        verify(later, key)


def test_errors_never_show_the_signature(key: str) -> None:
    token = generate_token(HOST, "iothubowner", new_key())
    with pytest.raises(SasError) as info:
        verify(token, key)
    assert token.split("sig=")[1].split("&")[0] not in str(info.value)
