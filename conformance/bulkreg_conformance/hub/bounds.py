"""Cheap looks at a request body, taken before the validator spends anything on it.

The validator builds a finding per entry and locates each one in the text: thorough, and so
proportional to the body. A body of a million ``1,`` would cost seconds and hundreds of MiB
before its verdict, "too many devices", is known. ``more_entries_than`` decides that verdict
first: up to 1 MiB by orjson's parse (up to 32 KiB the validator's own count is cheap enough),
beyond from the top-level commas alone, with C-speed regex jumps over everything nested or
quoted, stopping at the first comma past the limit: a hostile body costs microseconds, not a
finding per entry.
"""

from __future__ import annotations

import re

import orjson

__all__ = ["more_entries_than"]

_AT_TOP = re.compile(rb'[\[\]{}",]')  # inside the top-level array: commas count
_NESTED = re.compile(rb'[\[\]{}"]')  # deeper: only what changes depth or starts a string
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_LEAD = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


# Up to SMALL bytes the validator's own count is cheap enough (a body of 16,000 `1,` entries is
# refused in 0.15-0.3 s): SDK calls (100 devices, 5-30 KB) pay nothing extra. Up to PARSE_MAX,
# orjson's parse is the cheapest count and its memory stays bounded; beyond, the scan.
SMALL = 32 * 1024
PARSE_MAX = 1 << 20


def more_entries_than(body: bytes, limit: int) -> bool:
    """Whether ``body`` is a JSON array with more than ``limit`` top-level entries.

    Not a parser: anything else (an object, broken JSON before the limit is reached, an array
    within the limit) answers False and is the validator's to judge. Trailing garbage after
    the limit is not looked at: past ``limit`` separators the call has too many entries."""
    if len(body) <= SMALL:
        return False  # the validator counts; see SMALL
    if len(body) <= PARSE_MAX:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # not JSON orjson takes (NaN, a BOM, …): the scan below, or the validator
        else:
            return type(value) is list and len(value) > limit
    start = len(body) - len(body.removeprefix(_BOM).lstrip(_LEAD))
    if body[start:start + 1] != b"[":
        return False
    depth, commas, pos = 1, 0, start + 1
    while True:
        found = (_AT_TOP if depth == 1 else _NESTED).search(body, pos)
        if found is None:
            return False
        mark, pos = body[found.start()], found.end()
        if mark == 0x22:  # '"': jump past the string, escapes included
            rest = _STRING_REST.match(body, pos)
            if rest is None:
                return False
            pos = rest.end()
        elif mark in b"[{":
            depth += 1
        elif mark in b"]}":
            depth -= 1
            if depth == 0:
                return False
        else:
            commas += 1
            if commas >= limit:  # limit commas separate limit + 1 entries (not a trailing one)
                return body[pos:pos + 64].lstrip(_LEAD)[:1] not in (b"]", b"")
