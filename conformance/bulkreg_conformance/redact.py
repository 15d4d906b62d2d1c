"""Every form a secret can take in what a run writes, and their removal.

An endpoint may echo the run's ``Authorization`` value in any encoding: raw, URL-encoded once or
twice (upper- or lower-case hex), form-encoded, JSON-escaped, base64 (standard or urlsafe, with
or without padding, at any byte offset inside a longer encoded text), or only its signature.
:func:`forms` lists those forms for one secret; a :class:`Redactor` removes all of them from bytes
or text. The client scrubs each exchange as it records it, and the reporters scrub again.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote

__all__ = ["REDACTED", "Redactor", "forms", "secrets_of_token"]

REDACTED = "<redacted>"
_MIN_LENGTH = 8  # shorter fragments would redact ordinary text
_SIG = re.compile(r"(?:^|[&\s])sig=([^&\s]+)")
_HEX = re.compile(r"%[0-9A-F]{2}")


def secrets_of_token(token: str) -> list[str]:
    """A SAS token and its signature (raw and as it stands in the token): each is a secret."""
    out = [token]
    match = _SIG.search(token)
    if match:
        out += [match.group(1), unquote(match.group(1))]
    return out


def _base64_cores(raw: bytes) -> set[str]:
    """The part of ``raw``'s base64 that is the same wherever ``raw`` sits in a longer text.

    For each of the three byte alignments, the 4-character groups made only of ``raw``'s own
    bytes (the first and last groups also carry neighbouring bytes, or padding).
    """
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        start = 4 if offset else 0
        end = (offset + len(raw)) // 3 * 4
        core = encoded[start:end]
        if len(core) >= _MIN_LENGTH:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def _escaped(text: str) -> set[str]:
    """JSON and URL escapings an echo may apply to ``text``."""
    once = quote(text, safe="")
    twice = quote(once, safe="")
    out = {text, once, twice, quote_plus(text), text.replace("/", "\\/"),
           text.replace("&", "\\u0026"), text.replace("=", "\\u003d")}
    out |= {_HEX.sub(lambda m: m.group(0).lower(), s) for s in (once, twice)}
    return out


def forms(secret: str) -> set[str]:
    """Every form of ``secret`` that :class:`Redactor` removes (see the module docstring)."""
    if len(secret) < _MIN_LENGTH:
        return set()
    variants = {secret, secret.rstrip("="), secret.replace("+", "-").replace("/", "_"),
                secret.replace("+", "-").replace("/", "_").rstrip("=")}
    out: set[str] = set()
    for variant in variants:
        out |= _escaped(variant)
    raw = secret.encode("utf-8", "surrogatepass")
    out |= _base64_cores(raw)
    return {f for f in out if len(f) >= _MIN_LENGTH}


class Redactor:
    """Removes every form of a growing set of secrets from bytes and text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._forms: list[str] = []
        self._encoded: list[bytes] = []  # the forms as UTF-8, encoded once, longest first
        # the forms' first _MIN_LENGTH bytes -> their places in _encoded: many forms share a
        # prefix, so one search for it rules them all out at once
        self._prefixes: dict[bytes, list[int]] = {}
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        new = [s for s in secrets if s and s not in self._secrets]
        if not new:
            return
        self._secrets.update(new)
        found = set(self._forms)
        for secret in new:
            found |= forms(secret)
        self._forms = sorted(found, key=lambda f: (-len(f), f))  # longest first
        self._encoded = [f.encode("utf-8", "surrogatepass") for f in self._forms]
        self._prefixes = {}
        for at, encoded in enumerate(self._encoded):
            self._prefixes.setdefault(encoded[:_MIN_LENGTH], []).append(at)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(sorted(self._secrets))

    def text(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def bytes(self, data: bytes) -> bytes:
        marker = REDACTED.encode()
        # only forms whose prefix is in the data can be (a replacement adds none), longest first
        candidates = sorted(at for prefix, places in self._prefixes.items() if prefix in data
                            for at in places)
        for at in candidates:
            encoded = self._encoded[at]
            if encoded in data:
                data = data.replace(encoded, marker)
        return data
