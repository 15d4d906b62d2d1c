"""IoT Hub connection strings and SharedAccessSignature tokens (facts.md §4.1, §4.2).

Owns parsing and building service connection strings, signing tokens the way the SDKs do, and
verifying them the way the hub must: HMAC-SHA256 over ``<url-encoded resource>\\n<expiry>``,
expiry, policy name, resource scoping by host and path prefix per segment. Used by the reference
hub (verify) and the conformance client (sign). No message here ever contains a key or a
signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import NamedTuple
from urllib.parse import quote_plus, unquote, unquote_plus

__all__ = [
    "ALL_PERMISSIONS",
    "BUILTIN_PERMISSIONS",
    "ConnectionString",
    "Policy",
    "SasError",
    "generate_token",
    "make_connection_string",
    "new_key",
    "parse_connection_string",
    "verify_token",
]

PREFIX = "SharedAccessSignature "
_KNOWN_KEYS = ("HostName", "SharedAccessKeyName", "SharedAccessKey", "SharedAccessSignature",
               "DeviceId", "ModuleId", "GatewayHostName")
_NEEDED_KEYS = ("HostName", "SharedAccessKeyName", "SharedAccessKey")
_TOKEN_FIELDS = ("sr", "sig", "se", "skn")

ALL_PERMISSIONS = frozenset({"RegistryRead", "RegistryReadWrite", "ServiceConnect",
                             "DeviceConnect"})
# The built-in shared access policies of a hub (CS SecurityConstants; DOC-SEC permissions).
BUILTIN_PERMISSIONS: dict[str, frozenset[str]] = {
    "iothubowner": ALL_PERMISSIONS,
    "service": frozenset({"ServiceConnect"}),
    "device": frozenset({"DeviceConnect"}),
    "registryRead": frozenset({"RegistryRead"}),
    "registryReadWrite": frozenset({"RegistryRead", "RegistryReadWrite"}),
}


class ConnectionString(NamedTuple):
    host_name: str
    key_name: str
    key: str

    def __repr__(self) -> str:  # never show the key, even in a traceback
        return f"ConnectionString(host_name={self.host_name!r}, key_name={self.key_name!r})"


class Policy(NamedTuple):
    name: str
    key: str  # base64
    permissions: frozenset[str]

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, permissions={sorted(self.permissions)!r})"


class SasError(Exception):
    """A token was refused; ``reason`` says why without quoting secrets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_key() -> str:
    """A fresh policy key: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _decode_key(key_b64: str) -> bytes:
    try:
        return base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("SharedAccessKey is not valid base64") from exc


def parse_connection_string(text: str) -> ConnectionString:
    """Parse a service connection string ``HostName=..;SharedAccessKeyName=..;SharedAccessKey=..``.

    Raises ValueError with a message that names fields, never their values.
    """
    fields: dict[str, str] = {}
    for part in text.strip().split(";"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"connection string part {len(fields) + 1} is not Name=Value")
        if name not in _KNOWN_KEYS:
            raise ValueError(f"connection string has unknown field {name!r}; known: "
                             f"{', '.join(_KNOWN_KEYS)}")
        if name in fields:
            raise ValueError(f"connection string names {name} twice")
        fields[name] = value.strip()
    missing = [n for n in _NEEDED_KEYS if not fields.get(n)]
    if missing:
        raise ValueError(f"connection string lacks {', '.join(missing)} (a service connection "
                         "string needs HostName, SharedAccessKeyName and SharedAccessKey)")
    _decode_key(fields["SharedAccessKey"])
    return ConnectionString(fields["HostName"], fields["SharedAccessKeyName"],
                            fields["SharedAccessKey"])


def make_connection_string(host: str, key_name: str, key: str) -> str:
    return f"HostName={host};SharedAccessKeyName={key_name};SharedAccessKey={key}"


def _signature(key: bytes, encoded_resource: str, expiry: str) -> bytes:
    message = f"{encoded_resource}\n{expiry}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def generate_token(resource: str, key_name: str, key_b64: str, *, ttl: int = 3600,
                   now: float | None = None) -> str:
    """A token for ``resource`` (``host[/path]``), signed as the Python SDK does (PY270)."""
    expiry = str(int((time.time() if now is None else now) + ttl))
    encoded = quote_plus(resource)
    sig = base64.b64encode(_signature(_decode_key(key_b64), encoded, expiry)).decode("ascii")
    return f"{PREFIX}sr={encoded}&sig={quote_plus(sig)}&se={expiry}&skn={quote_plus(key_name)}"


# --- verification ------------------------------------------------------------------------------


def _token_fields(header: str) -> dict[str, str]:
    if not header.startswith(PREFIX):
        raise SasError("the Authorization header is not a SharedAccessSignature")
    fields: dict[str, str] = {}
    for part in header[len(PREFIX):].strip().split("&"):
        name, sep, value = part.partition("=")
        if not sep or name not in _TOKEN_FIELDS:
            raise SasError("the token has a malformed or unknown field")
        if name in fields:
            raise SasError(f"the token names {name} twice")
        fields[name] = value
    missing = [n for n in _TOKEN_FIELDS if not fields.get(n)]
    if missing:
        raise SasError(f"the token lacks {', '.join(missing)}")
    return fields


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _check_resource(encoded: str, host: str, path: str) -> None:
    # Docs ask for a lower-case encoded URI and the Python SDK keeps the host's case: host and
    # path compare case-insensitively, the path as a prefix of whole segments.
    resource = unquote_plus(encoded).casefold()
    for scheme in ("https://", "http://"):
        resource = resource.removeprefix(scheme)
    token_host, _, token_path = resource.partition("/")
    if token_host != host.casefold():
        raise SasError("the token is for another hub")
    wanted = _segments(token_path)
    if _segments(path.casefold())[: len(wanted)] != wanted:
        raise SasError("the token's resource does not cover this path")


def _check_expiry(expiry: str, now: float) -> None:
    # ASCII digits only (str.isdigit also accepts '²'), and short enough for int() to take
    if not (expiry.isascii() and expiry.isdigit() and len(expiry) <= 20):
        raise SasError("the token's expiry is not a number of seconds")
    if int(expiry) <= now:
        raise SasError("the token has expired")


def _check_signature(fields: dict[str, str], policy: Policy) -> None:
    try:
        given = base64.b64decode(unquote(fields["sig"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SasError("the token's signature is not base64") from exc
    expected = _signature(_decode_key(policy.key), fields["sr"], fields["se"])
    if not hmac.compare_digest(given, expected):
        raise SasError("the token's signature does not match the policy key")


def verify_token(header: str, *, policies: dict[str, Policy], host: str, path: str,
                 now: float) -> Policy:
    """The policy that signed ``header`` for a request to ``path`` on hub ``host``.

    Raises SasError when the token is malformed, expired, names an unknown policy, is scoped to
    another hub or path, or its signature does not verify.
    """
    fields = _token_fields(header)
    _check_expiry(fields["se"], now)
    policy = policies.get(unquote_plus(fields["skn"]))
    if policy is None:
        raise SasError("the token names an unknown policy")
    _check_resource(fields["sr"], host, path)
    _check_signature(fields, policy)
    return policy
