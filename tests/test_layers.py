"""Dependencies point one way: conformance -> validator -> schema (design.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORT = re.compile(r"^\s*(?:from|import)\s+(bulkreg_\w+)", re.MULTILINE)
ALLOWED = {
    "schema": {"bulkreg_schema"},
    "validator": {"bulkreg_schema", "bulkreg_validator"},
    "conformance": {"bulkreg_schema", "bulkreg_validator", "bulkreg_conformance"},
}


@pytest.mark.parametrize("layer", list(ALLOWED))
def test_imports_point_one_way(layer: str) -> None:
    for path in sorted((ROOT / layer).rglob("*.py")):
        imported = set(IMPORT.findall(path.read_text(encoding="utf-8")))
        extra = imported - ALLOWED[layer]  # (the CLI names serve/conform modules as strings)
        assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"
