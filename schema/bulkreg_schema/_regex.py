"""JSON Schema ``pattern`` strings, which are ECMA-262 regular expressions, as Python ``re`` ones.

The two dialects read the same text differently in places that matter for a validator:

- ``$`` is the end of the input in ECMA-262 (no ``m`` flag); Python's ``$`` also matches before a
  final ``\\n``, so ``^$`` accepts ``"\\n"``. Every ``$`` outside a class becomes ``\\Z``, in every
  alternative, not only the last one.
- ``.`` excludes the four ECMA line terminators (``\\n``, ``\\r``, U+2028, U+2029); Python's
  excludes only ``\\n``.
- ``\\d``, ``\\w`` and ``\\b`` are ASCII in ECMA-262 (``u`` flag without ``i``); Python's are
  Unicode. Compiling with ``re.ASCII`` makes them agree.
- ``\\s`` is ECMA's WhiteSpace and LineTerminator set (with U+FEFF and the Unicode spaces, without
  U+001C..U+001F and U+0085); it is spelled out.
- ``[]`` matches nothing and ``[^]`` any character; ``(?<name>`` is Python's ``(?P<name>``;
  ``\\u{…}`` and ``\\cX`` are written as Python escapes.

A construct that cannot be translated exactly (``\\p{…}``, ``\\S`` inside a class) raises
``ValueError`` instead of being read with another meaning.
"""

from __future__ import annotations

import re

__all__ = ["ecma_regex", "translate"]

# ECMA-262 WhiteSpace + LineTerminator: TAB VT FF SP NBSP ZWNBSP, Zs, LF CR LS PS
_SPACE = ("\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f"
          "\\u3000\\ufeff")
_DOT = "[^\\n\\r\\u2028\\u2029]"
_OUTSIDE = {"s": f"[{_SPACE}]", "S": f"[^{_SPACE}]"}
_SAME = set("dDwWbBtnrfv0123456789") | set("^$\\.*+?()[]{}|/-")
_SET_OPERATORS = ("&&", "--", "||", "~~")  # Python warns of nested sets on these


def translate(pattern: str) -> str:
    """The Python ``re`` source (for ``re.ASCII``) with the ECMA-262 meaning of ``pattern``."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            text, i = _escape(pattern, i, in_class=False)
            out.append(text)
        elif ch == "[":
            text, i = _class(pattern, i)
            out.append(text)
        elif ch == "$":
            out.append("\\Z")
            i += 1
        elif ch == ".":
            out.append(_DOT)
            i += 1
        elif pattern.startswith("(?<", i) and pattern[i + 3:i + 4] not in ("=", "!"):
            out.append("(?P<")
            i += 3
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with its ECMA-262 meaning; use ``.search`` (patterns are not
    anchored)."""
    try:
        return re.compile(translate(pattern), re.ASCII)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} has no exact Python equivalent: {exc}") from exc


def _escape(pattern: str, i: int, *, in_class: bool) -> tuple[str, int]:
    if i + 1 >= len(pattern):
        raise ValueError(f"pattern {pattern!r} ends with a lone backslash")
    ch = pattern[i + 1]
    if ch in "sS":
        if not in_class:
            return _OUTSIDE[ch], i + 2
        if ch == "s":
            return _SPACE, i + 2
        raise ValueError(f"pattern {pattern!r}: \\S inside a class has no exact translation")
    if ch == "u" and pattern.startswith("{", i + 2):
        end = pattern.index("}", i + 3)
        return f"\\U{int(pattern[i + 3:end], 16):08x}", end + 1
    if ch in "ux":
        size = 6 if ch == "u" else 4
        return pattern[i:i + size], i + size
    if ch == "c" and i + 2 < len(pattern) and pattern[i + 2].isascii() \
            and pattern[i + 2].isalpha():
        return f"\\x{ord(pattern[i + 2]) % 32:02x}", i + 3
    if ch == "k" and pattern.startswith("<", i + 2) and not in_class:
        end = pattern.index(">", i + 3)
        return f"(?P={pattern[i + 3:end]})", end + 1
    if ch in _SAME:
        return pattern[i:i + 2], i + 2
    if ch.isascii() and ch.isalnum():
        raise ValueError(f"pattern {pattern!r}: \\{ch} has no exact Python equivalent")
    return re.escape(ch), i + 2  # an escaped punctuation character is itself


def _class(pattern: str, i: int) -> tuple[str, int]:
    """The class starting at ``pattern[i] == '['``."""
    j = i + 1
    negated = pattern.startswith("^", j)
    if negated:
        j += 1
    if pattern.startswith("]", j):  # ECMA: [] matches nothing, [^] any character
        return ("(?s:.)" if negated else "(?!)"), j + 1
    out = ["[^" if negated else "["]
    while j < len(pattern):
        ch = pattern[j]
        if ch == "]":
            out.append("]")
            return "".join(out), j + 1
        if ch == "\\":
            text, j = _escape(pattern, j, in_class=True)
            out.append(text)
        elif ch == "[" or (pattern.startswith(_SET_OPERATORS, j - 1) and out[-1] == ch):
            out.append("\\" + ch)
            j += 1
        else:
            out.append(ch)
            j += 1
    raise ValueError(f"pattern {pattern!r} has an unterminated class")
