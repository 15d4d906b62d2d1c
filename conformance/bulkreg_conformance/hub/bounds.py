"""Cheap looks at a request body, taken before the validator spends anything on it.

The validator builds a finding per entry and locates each one in the text: thorough, and so
proportional to the body. A body of a million ``1,`` would cost seconds and hundreds of MiB
before its verdict, "too many devices", is known. ``more_entries_than`` decides that verdict
from the top-level commas alone, with C-speed regex jumps over everything nested or quoted,
and stops at the first comma past the limit: a hostile body costs microseconds.
"""

from __future__ import annotations

import re

__all__ = ["more_entries_than"]

_AT_TOP = re.compile(rb'[\[\]{}",]')  # inside the top-level array: commas count
_NESTED = re.compile(rb'[\[\]{}"]')  # deeper: only what changes depth or starts a string
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_LEAD = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


def more_entries_than(body: bytes, limit: int) -> bool:
    """Whether ``body`` is a JSON array with more than ``limit`` top-level entries.

    Not a parser: anything else (an object, broken JSON before the limit is reached, an array
    within the limit) answers False and is the validator's to judge. Trailing garbage after
    the limit is not looked at: past ``limit`` separators the call has too many entries."""
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
