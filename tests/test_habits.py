"""The project's own habits: CI lints before it tests."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))



# --- CI ------------------------------------------------------------------------------------------


def test_ci_runs_ruff_and_mypy_before_the_tests_and_stops_on_findings() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == "set -euo pipefail"  # a finding (non-zero exit) ends the run
    ruff, mypy, tests = (lines.index(c) for c in ("ruff check .", "mypy", "python -m pytest"))
    assert ruff < tests and mypy < tests
    # mypy's targets and strictness are pyproject's, so `mypy` alone checks what CI means
    assert PYPROJECT["tool"]["mypy"]["strict"] is True
    assert PYPROJECT["tool"]["mypy"]["packages"] == [
        "bulkreg_schema", "bulkreg_validator", "bulkreg_conformance"]


