"""Dependencies point one way: conformance -> validator -> schema (design.md)."""

from __future__ import annotations

import ast
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
# The conformance package in layers (design.md, "conformance kit"; docs/ARCHITECTURE.md): a
# module imports only from earlier layers. The oracle is pure; the hub is the oracle behind
# HTTP; the verdict's parts (evidence, answers, expectation, checks, coverage) know nothing of a
# run; the session knows no suite; suites know no runner; reporters and front ends come last.
LAYERS: list[tuple[str, ...]] = [
    ("evidence", "settings", "sas", "redact", "strategies", "azurite"),
    ("decisions", "client", "oracle", "jobs_client", "wsgi"),
    ("answers",),
    ("expectation",),
    ("service_view",),
    ("checks",),
    ("coverage",),
    ("session",),
    ("differential", "replay"),
    ("suites",),
    ("hub", "sas_cli"),
    ("runner",),
    ("report",),
    ("cli", "pytest_plugin", "jobs_cli"),
]
LAYER = {name: n for n, names in enumerate(LAYERS) for name in names}


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported(path: Path) -> set[str]:
    """The top-level parts of bulkreg_conformance that ``path`` imports (relative ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: within the module's own part
                base = [_part(path)] if node.level == 1 and path.parent != PACKAGE else []
                names = [".".join(["bulkreg_conformance", *base, node.module or ""])]
                if not node.module and path.parent == PACKAGE:
                    names = [f"bulkreg_conformance.{a.name}" for a in node.names]
            elif node.module == "bulkreg_conformance":
                names = [f"bulkreg_conformance.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "bulkreg_conformance" and len(parts) > 1 and parts[1]:
                found.add(parts[1])
    return found


def test_every_part_has_a_layer() -> None:
    parts = {_part(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts <= set(LAYER), sorted(parts - set(LAYER))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_conformance_layers(path: Path) -> None:
    own = _part(path)
    if own == "__init__":
        return
    for part in _imported(path) - {own}:
        assert LAYER[part] < LAYER[own], f"{path.relative_to(ROOT)} ({own}) imports {part}"


def test_the_layer_scan_sees_every_import_form(tmp_path: Path) -> None:
    module = PACKAGE / "evidence.py"
    text = "from bulkreg_conformance import runner\nimport bulkreg_conformance.cli as c\n"
    scanned = tmp_path / "x.py"
    scanned.write_text(text, encoding="utf-8")
    assert _imported(scanned) == {"runner", "cli"}
    assert "answers" not in _imported(module)
