"""Cheap looks at a bulk body, taken before the validator spends anything on it.

The validator builds a finding per entry and locates each one in the text: thorough, and so
proportional to the body (a 16 MiB body of ``[1,1,…]`` cost it half a minute and gigabytes).
``refusal`` bounds that work first, from a scan that only counts: the entries of the top-level
array (more than 100: 413 TooManyDevices, as the validator would say) and the JSON values in the
whole body (more than ``MAX_VALUES``: 413 MessageTooLarge, a hub decision). The scan jumps over
strings and runs of scalars with C-speed regexes and stops as soon as a limit is passed, so its
own cost is bounded by the limits, not by the body. Up to ``SMALL`` bytes it is skipped: the
validator's whole run on such a body is already cheap.
"""

from __future__ import annotations

import re

__all__ = ["MAX_ESCAPES", "MAX_VALUES", "SMALL", "refusal"]

SMALL = 32 * 1024
# SDK calls of 100 devices hold a few thousand JSON values; 100 devices whose twins are each
# about half full (some 1,000 members) hold 100,000. Past this, the validator's linear cost
# (up to ~7 µs per value when it locates findings) is all a body could buy.
MAX_VALUES = 100_000
# Each escape (``\u00e9``, ``\"``) costs the validator about 2 µs and its exact scanner memory;
# an SDK that writes ASCII-only JSON (Python's) escapes every non-ASCII character, so this is
# generous: 100 devices with 5 KB of non-ASCII text each.
MAX_ESCAPES = 500_000

_STRUCTURE = re.compile(rb'[\[\]{}",]')
_LEAD = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


def refusal(body: bytes, max_entries: int) -> tuple[str, str] | None:
    """(IoT Hub error code, message) when ``body`` must be refused before validation, else
    None. Not a parser: whatever is not a JSON array, or is broken before a limit is reached,
    is the validator's to judge."""
    if len(body) <= SMALL:
        return None
    start = len(body) - len(body.removeprefix(_BOM).lstrip(_LEAD))
    if body[start:start + 1] != b"[":
        return None
    depth, entries, values, escapes, pos = 1, 0, 1, 0, start + 1
    search = _STRUCTURE.search
    while True:
        found = search(body, pos)
        if found is None:
            return None
        mark, pos = body[found.start()], found.end()
        if mark == 0x22:  # '"': jump past the string, counting its escapes
            end = _string_end(body, pos, MAX_ESCAPES - escapes)
            if end is None:
                return None
            if end < 0:
                return "MessageTooLarge", (
                    f"the body holds more than {MAX_ESCAPES} escape sequences in its strings")
            escapes += body.count(b"\\", pos, end)
            pos = end
            continue
        if mark == 0x2C:  # ','
            values += 1
            if depth == 1:
                entries += 1
                if entries >= max_entries and \
                        body[pos:pos + 64].lstrip(_LEAD)[:1] not in (b"]", b""):
                    return "TooManyDevices", (
                        f"the value has more than {max_entries} entries: a bulk call carries "
                        f"at most {max_entries} entries")
        elif mark in b"[{":
            depth += 1
            values += 1
        else:
            depth -= 1
            if depth == 0:
                return None
        if values > MAX_VALUES:
            return "MessageTooLarge", (
                f"the body holds more than {MAX_VALUES} JSON values; a bulk call of 100 devices "
                "with full twins holds far fewer")


def _string_end(body: bytes, pos: int, budget: int) -> int | None:
    """The index after the string that starts before ``pos``; None if it never ends, -1 if it
    holds more than ``budget`` backslashes (then it is not looked at further)."""
    start = end = pos
    seen = 0  # backslashes in body[start:end]
    while True:
        quote = body.find(b'"', end)
        if quote < 0:
            return None
        seen += body.count(b"\\", end, quote)
        if seen > budget:
            return -1
        run = 0
        while quote - run - 1 >= start and body[quote - run - 1] == 0x5C:
            run += 1
        if run % 2 == 0:  # an even run of backslashes escapes itself, not the quote
            return quote + 1
        end = quote + 1
