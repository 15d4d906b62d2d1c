"""The redactor: every form of every secret leaves bytes and text, whatever surrounds it; the
prefix index that speeds up ``bytes`` removes exactly what the plain longest-first loop does."""

from __future__ import annotations

import base64
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkreg_conformance.redact import REDACTED, Redactor, forms

_KEYS = st.binary(min_size=16, max_size=48).map(lambda b: base64.b64encode(b).decode())


def _plain(redactor: Redactor, data: bytes) -> bytes:
    """The reference: every form, longest first, no index."""
    for form in redactor._forms:
        encoded = form.encode("utf-8", "surrogatepass")
        if encoded in data:
            data = data.replace(encoded, REDACTED.encode())
    return data


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(_KEYS, min_size=1, max_size=3), data=st.data())
def test_bytes_removes_what_the_plain_loop_removes(keys: list[str], data: st.DataObject) -> None:
    redactor = Redactor(keys)
    every = sorted({f for key in keys for f in forms(key)})
    parts = data.draw(st.lists(st.one_of(st.sampled_from(every), st.text(max_size=12)),
                               max_size=8))
    text = "".join(parts)
    raw = text.encode("utf-8", "surrogatepass")
    cleaned = redactor.bytes(raw)
    assert cleaned == _plain(redactor, raw)
    assert redactor.text(text).encode("utf-8", "surrogatepass") == cleaned
    for key in keys:
        assert key.encode() not in cleaned


def test_a_key_in_a_url_inside_json_is_removed() -> None:
    key = base64.b64encode(bytes(range(32))).decode()
    redactor = Redactor([key])
    body = ('{"Message": "sig=' + quote(quote(key, safe=""), safe="") + '&x=1"}').encode()
    assert REDACTED.encode() in redactor.bytes(body)
    assert quote(key, safe="").encode() not in redactor.bytes(body)
