"""Parsing as strictly as the hub: a fast path on orjson and an exact, position-keeping scanner.

``fast_load`` returns the parsed value when the text is plain, strict JSON, and ``None`` when the
text needs a closer look (a syntax error, BOM, invalid UTF-8, lone surrogates, duplicate keys,
NaN, numbers a double cannot hold). ``scan`` is that closer look: a small iterative JSON scanner
that reports every such problem as a finding, keeps integer literals exact, and records where
every member and item starts so that findings can carry line and column. It never recurses, so
deep nesting costs no stack, and it stops at the nesting limit.
"""

from __future__ import annotations

import bisect
import math
import re
from typing import Any, NamedTuple

import orjson

from ._rules import LIMITS

__all__ = ["Problem", "Scan", "fast_load", "position", "scan"]

Path = tuple[str | int, ...]

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")
_WS = re.compile(r"[ \t\n\r]*")
_CHUNK = re.compile(r'[^"\\\x00-\x1f]*')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS = {"true": True, "false": False, "null": None}
_NONFINITE = ("NaN", "Infinity", "-Infinity")


def fast_load(data: bytes) -> Any:
    """The value of ``data`` if it is plain strict JSON without duplicate keys, else ``None``.

    ``None`` is also the answer for the JSON text ``null``; callers treat ``None`` as "use
    ``scan``", which then gives the exact answer.
    """
    if data.startswith(_BOMS):
        return None
    try:
        value = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):  # TypeError: orjson's recursion limit
        return None
    # Each key adds one ':' to the text; orjson keeps the last of duplicate keys, so the
    # re-serialised value has fewer ':' exactly when a key was repeated (string contents keep
    # theirs; an escaped colon would skew the count, so such texts take the exact path).
    try:
        again = orjson.dumps(value)
    except TypeError:  # deeper than orjson.dumps goes (254 levels): the exact path decides
        return None
    if data.count(b":") != again.count(b":") or _ESCAPED_COLON.search(data):
        return None
    return value


class Problem(NamedTuple):
    rule: str
    offset: int  # character offset into the text
    path: Path
    message: str


class Scan(NamedTuple):
    value: Any
    problems: list[Problem]
    fatal: bool  # the text could not be read to the end: value is unusable
    starts: dict[Path, int]  # where each member (its key) or item starts
    text: str


class _Fatal(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def decode(data: bytes) -> tuple[str | None, Problem | None]:
    """The text of ``data``, or a json-encoding problem (BOM, invalid UTF-8)."""
    for bom in _BOMS:
        if data.startswith(bom):
            return None, Problem("json-encoding", 0, (), "the file starts with a byte order "
                                 "mark; send UTF-8 without a BOM")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        return None, Problem("json-encoding", len(good), (), f"invalid UTF-8: byte "
                             f"0x{data[exc.start]:02x} at byte offset {exc.start} ({exc.reason})")


def scan(text: str, *, keep_starts: bool = True) -> Scan:
    """Parse ``text`` exactly; see the module docstring."""
    state = _Scanner(text, keep_starts)
    try:
        value = state.document()
    except _Fatal as fatal:
        state.problems.append(fatal.problem)
        return Scan(None, state.problems, True, state.starts, text)
    return Scan(value, state.problems, False, state.starts, text)


def position(text: str, offset: int, line_starts: list[int] | None = None) -> tuple[int, int]:
    """1-based line and column (in characters) of ``offset`` in ``text``."""
    starts = line_starts if line_starts is not None else line_index(text)
    line = bisect.bisect_right(starts, offset)
    return line, offset - starts[line - 1] + 1


def line_index(text: str) -> list[int]:
    return [0, *(m.end() for m in re.finditer("\n", text))]


def _show(text: str, limit: int = 24) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


class _Scanner:
    def __init__(self, text: str, keep_starts: bool) -> None:
        self.text = text
        self.problems: list[Problem] = []
        self.starts: dict[Path, int] = {}
        self.keep = keep_starts

    def fatal(self, offset: int, message: str, rule: str = "json-syntax",
              path: Path = ()) -> _Fatal:
        return _Fatal(Problem(rule, offset, path, message))

    def skip(self, i: int) -> int:
        m = _WS.match(self.text, i)
        assert m is not None
        return m.end()

    def document(self) -> Any:
        text = self.text
        i = self.skip(0)
        if i == len(text):
            raise self.fatal(i, "empty document: expected a JSON value")
        self.starts[()] = i
        value, i = self.value(i)
        i = self.skip(i)
        if i != len(text):
            raise self.fatal(i, f"unexpected data after the JSON value: {_show(text[i:i + 20])}")
        return value

    def value(self, i: int) -> tuple[Any, int]:
        """Parse the value at ``i`` with an explicit stack of open containers."""
        text = self.text
        # stack entries: [container, path, key-of-pending-member | None, seen-keys | None]
        stack: list[list[Any]] = []
        path: Path = ()
        while True:
            i = self.skip(i)
            if i >= len(text):
                raise self.fatal(i, "unexpected end of data: expected a value")
            ch = text[i]
            if ch in "{[":
                if len(stack) >= LIMITS["json_max_depth"]:
                    raise self.fatal(i, f"nesting deeper than {LIMITS['json_max_depth']} levels",
                                     "json-depth", path)
                container: Any = {} if ch == "{" else []
                stack.append([container, path, None, set() if ch == "{" else None])
                i = self.skip(i + 1)
                closer = "}" if ch == "{" else "]"
                if i < len(text) and text[i] == closer:
                    stack.pop()
                    value: Any = container
                    i += 1
                elif ch == "{":
                    i = self.member_key(stack[-1], i)
                    path = (*stack[-1][1], stack[-1][2])
                    continue
                else:
                    path = (*stack[-1][1], 0)
                    if self.keep:
                        self.starts[path] = i
                    continue
            else:
                value, i = self.scalar(i, path)
            # attach value to the innermost open container, closing containers as they end
            while True:
                if not stack:
                    return value, i
                top = stack[-1]
                container, cpath, key, _seen = top
                if type(container) is dict:
                    container[key] = value
                else:
                    container.append(value)
                i = self.skip(i)
                if i >= len(text):
                    raise self.fatal(i, "unexpected end of data: a container is not closed")
                ch = text[i]
                if ch == ",":
                    i = self.skip(i + 1)
                    if type(container) is dict:
                        i = self.member_key(top, i)
                        path = (*cpath, top[2])
                    else:
                        path = (*cpath, len(container))
                        if self.keep:
                            self.starts[path] = i
                    break
                expected = "}" if type(container) is dict else "]"
                if ch != expected:
                    raise self.fatal(i, f"expected ',' or {expected!r}, found {_show(ch)}")
                stack.pop()
                value = container
                i += 1

    def member_key(self, top: list[Any], i: int) -> int:
        text = self.text
        if i >= len(text) or text[i] != '"':
            found = _show(text[i:i + 10]) if i < len(text) else "end of data"
            raise self.fatal(i, f"expected a member name in double quotes, found {found}")
        start = i
        key, i = self.string(i, (*top[1], "?"))
        path = (*top[1], key)
        if key in top[3]:
            self.problems.append(Problem("json-duplicate-key", start, path,
                                         f"member {_show(key)} appears twice in one object; "
                                         "the reader keeps only one of the values"))
        top[3].add(key)
        top[2] = key
        if self.keep:
            self.starts[path] = start
        i = self.skip(i)
        if i >= len(text) or text[i] != ":":
            raise self.fatal(i, f"expected ':' after member name {_show(key)}")
        return i + 1

    def scalar(self, i: int, path: Path) -> tuple[Any, int]:
        text = self.text
        ch = text[i]
        if ch == '"':
            return self.string(i, path)
        for word in _NONFINITE:
            if text.startswith(word, i):
                self.problems.append(Problem("json-nonfinite", i, path,
                                             f"{word} is not a JSON number"))
                return None, i + len(word)
        m = _NUMBER.match(text, i)
        if m and m.end() > i:
            token = m.group()
            if math.isinf(float(token)):
                self.problems.append(Problem("json-number-range", i, path,
                                             f"number {_show(token)} does not fit a 64-bit float"))
                return None, m.end()
            if "." in token or "e" in token or "E" in token:
                return float(token), m.end()
            return int(token), m.end()
        for word, literal in _LITERALS.items():
            if text.startswith(word, i):
                return literal, i + len(word)
        raise self.fatal(i, f"expected a JSON value, found {_show(text[i:i + 12])}")

    def string(self, i: int, path: Path) -> tuple[str, int]:
        text = self.text
        start = i
        i += 1
        parts: list[str] = []
        while True:
            m = _CHUNK.match(text, i)
            assert m is not None
            parts.append(m.group())
            i = m.end()
            if i >= len(text):
                raise self.fatal(start, "unterminated string")
            ch = text[i]
            if ch == '"':
                return "".join(parts), i + 1
            if ch != "\\":
                raise self.fatal(i, f"control character U+{ord(ch):04X} must be escaped "
                                 "inside a string")
            esc = text[i + 1: i + 2]
            if esc in _ESCAPES:
                parts.append(_ESCAPES[esc])
                i += 2
                continue
            if esc != "u":
                raise self.fatal(i, f"invalid escape {_show(text[i:i + 2])}")
            code, i = self.hex4(i)
            if 0xD800 <= code <= 0xDBFF:
                low = self.low_surrogate(i)
                if low is not None:
                    parts.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    i += 6
                    continue
            if 0xD800 <= code <= 0xDFFF:
                self.problems.append(Problem("json-lone-surrogate", i - 6, path,
                                             f"\\u{code:04X} is half of a surrogate pair "
                                             "without its other half"))
                parts.append("\ufffd")
                continue
            parts.append(chr(code))

    def hex4(self, i: int) -> tuple[int, int]:
        digits = self.text[i + 2: i + 6]
        if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise self.fatal(i, f"invalid \\u escape {_show(self.text[i:i + 6])}")
        return int(digits, 16), i + 6

    def low_surrogate(self, i: int) -> int | None:
        text = self.text
        if text.startswith("\\u", i):
            digits = text[i + 2: i + 6]
            if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
                code = int(digits, 16)
                if 0xDC00 <= code <= 0xDFFF:
                    return code
        return None
