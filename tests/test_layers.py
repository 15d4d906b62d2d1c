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


PACKAGE = ROOT / "conformance" / "bulkreg_conformance"
# Inside the conformance package (design.md, "conformance kit"): the oracle is pure, the hub is
# the oracle behind HTTP, suites work through the context and never import the runner.
FORBIDDEN = {
    "oracle": {"bulkreg_conformance.hub", "bulkreg_conformance.client",
               "bulkreg_conformance.runner", "bulkreg_conformance.suites",
               "bulkreg_conformance.context", "bulkreg_conformance.checks"},
    "suites": {"bulkreg_conformance.runner", "bulkreg_conformance.cli",
               "bulkreg_conformance.hub"},
    "checks.py": {"bulkreg_conformance.runner", "bulkreg_conformance.context",
                  "bulkreg_conformance.suites"},
    "context.py": {"bulkreg_conformance.runner"},
}
MODULE = re.compile(r"^\s*(?:from|import)\s+(bulkreg_conformance(?:\.\w+)*)", re.MULTILINE)


@pytest.mark.parametrize("part", list(FORBIDDEN))
def test_conformance_layers(part: str) -> None:
    target = PACKAGE / part
    paths = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    assert paths
    for path in paths:
        imported = set(MODULE.findall(path.read_text(encoding="utf-8")))
        bad = {m for m in imported for f in FORBIDDEN[part] if m == f or m.startswith(f + ".")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
