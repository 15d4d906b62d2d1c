"""One source for contract values: the conformance side reads limits from the schema files
(``bulkreg_schema.contract()``) or the rule table (``bulkreg_validator.LIMITS``), never restates
them. A literal equal to a contract limit (or one past it) in conformance code fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bulkreg_schema
from bulkreg_validator import LIMITS

ROOT = Path(__file__).resolve().parents[2] / "conformance" / "bulkreg_conformance"
CONTRACT = bulkreg_schema.contract()
LIMIT_VALUES = {
    CONTRACT.max_entries, CONTRACT.id_max_length, CONTRACT.status_reason_max_length,
    *CONTRACT.twin_integer_range, *CONTRACT.thumbprint_lengths[:1],
    *(v for v in LIMITS.values() if isinstance(v, int)),
}
SUSPECT = LIMIT_VALUES | {v + 1 for v in LIMIT_VALUES} | {2**52, 2**53, -(2**52) - 1}


PRAGMA = "# not a contract limit"


def _literals(path: Path) -> list[tuple[int, int]]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    sizes = {id(n) for b in ast.walk(tree) if isinstance(b, ast.BinOp)
             and isinstance(b.op, ast.Mult) for n in (b.left, b.right)}  # 16 * 1024: a size
    found = []
    for node in ast.walk(tree):
        if PRAGMA in lines[getattr(node, "lineno", 1) - 1] or id(node) in sizes:
            continue
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value in SUSPECT:
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            try:
                value = eval(compile(ast.Expression(node), str(path), "eval"))
            except Exception:
                continue
            if value in SUSPECT:
                found.append((node.lineno, value))
    return found


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_contract_limit_is_restated(path: Path) -> None:
    assert _literals(path) == [], f"{path.name}: read these from bulkreg_schema.contract()"


def test_the_scan_finds_a_restated_limit(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(f"MAX = 100\nWIDE = 2**52\nOK = 7\nSIZE = 16 * 1024\nX = 128  {PRAGMA}\n",
                      encoding="utf-8")
    assert _literals(sample) == [(1, 100), (2, 2**52)]
