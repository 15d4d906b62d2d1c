"""Every schema pattern means what ECMA-262 says, as JSON Schema specifies, not what Python's re
reads into the same text: compared with jsonschema-rs (a Rust engine, `$` = end of input) on
strings built to tell the dialects apart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import regress
from hypothesis import given
from hypothesis import strategies as st

import bulkreg_schema
from bulkreg_schema import ecma_regex
from bulkreg_validator import validate

# the line terminators and spaces where the dialects differ, and the characters that matter here
HOSTILE_TAILS = ["\n", "\r\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", " ",
                 "\ufeff", "\u00a0", "\u3000", "\x00"]


def patterns() -> Iterator[tuple[str, str]]:
    """(where, pattern) for every pattern keyword in the schema files."""
    def walk(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and isinstance(value, str):
                    yield where, value
                else:
                    yield from walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                yield from walk(item, f"{where}/{index}")

    for name in bulkreg_schema.SCHEMA_NAMES:
        yield from walk(bulkreg_schema.load(name), name)


PATTERNS = sorted(set(patterns()))


def samples(pattern: str) -> list[str]:
    """Strings on both sides of ``pattern``, each also with every hostile tail and head."""
    valid = {
        "^[A-Za-z0-9\\-:.+%_#*?!(),=@;$']+$": ["dev-1", "a:b.c+d%e_f#g*h?i!j(k)l,m=n@o;p$q'r"],
        "^[^.$ \\u0000-\\u001F\\u007F-\\u009F]+$": ["key", "ключ", "é", "😀", "a\u2028b"],
        "^(\\$metadata|\\$version|[^.$ \\u0000-\\u001F\\u007F-\\u009F]+)$":
            ["$metadata", "$version", "key"],
        "^([0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})?$": ["", "a" * 40, "F" * 64],
    }.get(pattern, ["", "A" * 24, "A" * 22 + "==", "A" * 88, "A" * 86 + "=="])
    base = [*valid, "", "a", "é", "a b", "a.b", "$x", "1" * 40, "٣" * 40]
    out = set(base)
    for text in base:
        for tail in HOSTILE_TAILS:
            out.update({text + tail, tail + text, tail, text + tail + tail})
    return sorted(out)


@pytest.mark.parametrize(("where", "pattern"), PATTERNS, ids=[w for w, _ in PATTERNS])
def test_each_pattern_agrees_with_jsonschema_rs_and_regress(where: str, pattern: str) -> None:
    rust = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    ecma = regress.Regex(pattern)
    ours = ecma_regex(pattern)
    for text in samples(pattern):
        verdict = ours.search(text) is not None
        assert verdict == rust.is_valid(text), (where, text)
        assert verdict == (ecma.find(text) is not None), (where, text)
    # Python's re on the untranslated text disagrees somewhere for every pattern with a `$`
    if "$" in pattern.replace("\\$", ""):
        assert any((re.search(pattern, t) is not None) != rust.is_valid(t)
                   for t in samples(pattern))


# every character class the patterns draw lines between, and the terminators around them
ALPHABET = st.sampled_from(["A", "a", "0", "9", "+", "/", "=", "-", ":", ".", "$", " ", "é",
                            "٣", "\n", "\r", "\u2028", "\x85", "\x7f", "\x9f", "\ufeff",
                            "😀", "_", "m", "e", "t", "d", "v"])


@given(text=st.lists(ALPHABET, max_size=70).map("".join)
       | st.builds(lambda body, tail: body + tail,
                   st.sampled_from(["A" * 24, "A" * 22 + "==", "a" * 40, "dev-1", "$version"]),
                   st.lists(ALPHABET, max_size=2).map("".join)))
def test_generated_strings_agree_for_every_pattern(text: str) -> None:
    for where, pattern in PATTERNS:
        verdict = ecma_regex(pattern).search(text) is not None
        assert verdict == (regress.Regex(pattern).find(text) is not None), (where, text)


def test_the_corpus_of_patterns_is_complete() -> None:
    assert len(PATTERNS) >= 8  # ids, module ids, both keys, both thumbprints, twin keys
    assert any(p.startswith("^$|") for _, p in PATTERNS)  # the key pattern's two alternatives


@pytest.mark.parametrize("text", ["\n", "\r\n", "\u2028"])
def test_a_newline_is_no_empty_key(text: str) -> None:
    """The key pattern `^$|^(...)$`: Python's `$` in the first alternative matched "\\n"."""
    key = "A" * 43 + "="
    payload = [{"id": "d1", "importMode": "create", "authentication": {
        "type": "sas", "symmetricKey": {"primaryKey": text, "secondaryKey": key}}}]
    for accelerate in (False, True):
        report = validate(payload, accelerate=accelerate)
        assert [f.rule for f in report.errors] == ["auth-key-invalid"], report.findings


@pytest.mark.parametrize(("ecma", "text", "matches"), [
    ("^a$", "a\n", False),
    ("^$|^b$", "\n", False),
    ("(^x$)|(^$)", "\n", False),
    ("^.$", "\r", False),
    ("^.$", "\u2028", False),
    ("^.$", "é", True),
    ("^\\d$", "٣", False),  # ARABIC-INDIC DIGIT THREE: a digit to Python, not to ECMA
    ("^\\d$", "3", True),
    ("^\\w$", "é", False),
    ("^\\s$", "\ufeff", True),
    ("^\\s$", "\x1c", False),
    ("^\\s$", "\x85", False),
    ("^\\S$", "\x85", True),
    ("^[\\s]$", "\u3000", True),
    ("^[\\d]$", "٣", False),
    ("^[]$", "", False),
    ("^[^]$", "\n", True),
    ("^[$]$", "$", True),
    ("^\\$$", "$", True),
    ("^(?<y>a)\\k<y>$", "aa", True),
    ("^\\u{1F600}$", "😀", True),
    ("^\\cJ$", "\n", True),
    ("^[[]$", "[", True),
    ("^a\\/b$", "a/b", True),
])
def test_translation_of_each_construct(ecma: str, text: str, matches: bool) -> None:
    assert (ecma_regex(ecma).search(text) is not None) is matches


@pytest.mark.parametrize("ecma", ["^\\p{L}$", "[\\S]", "\\"])
def test_untranslatable_constructs_are_refused(ecma: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        ecma_regex(ecma)


def test_contract_id_pattern_is_exact() -> None:
    pattern = bulkreg_schema.contract().id_pattern
    assert pattern.search("dev-1") and not pattern.search("dev-1\n")
    assert isinstance(pattern, re.Pattern)
