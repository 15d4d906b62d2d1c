"""The project's own habits: CI lints before it tests, no test can hang, the licence and the
changelog match pyproject.toml, and the `sdk` extra brings what the official SDK imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pytest_run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess, with this project's configuration, on files under tmp_path."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
         "--rootdir", str(tmp_path), "--color", "no", *args],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        check=False)


# --- CI ------------------------------------------------------------------------------------------


def test_ci_runs_ruff_mypy_and_the_hooks_before_the_tests_and_stops_on_findings() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == "set -euo pipefail"  # a finding (non-zero exit) ends the run
    ruff, mypy, hooks, tests = (lines.index(c) for c in (
        "ruff check .", "mypy",
        "SKIP=ruff,mypy pre-commit run --all-files --show-diff-on-failure --color never",
        "python -m pytest"))
    assert max(ruff, mypy, hooks) < tests
    # mypy's targets and strictness are pyproject's, so `mypy` alone checks what CI means
    assert PYPROJECT["tool"]["mypy"]["strict"] is True
    assert PYPROJECT["tool"]["mypy"]["packages"] == [
        "bulkreg_schema", "bulkreg_validator", "bulkreg_conformance"]


# --- pytest-timeout ------------------------------------------------------------------------------

HANGS = """
import threading

def test_hangs():
    threading.Event().wait()  # never set

def test_after_the_hang():
    pass
"""


def test_a_hanging_test_fails_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_hang.py").write_text(HANGS)
    run = pytest_run(tmp_path, "-o", "timeout=1", "test_hang.py")
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Failed: Timeout (>1.0s) from pytest-timeout." in output
    assert "1 failed, 1 passed" in output


PRINT_TIMEOUTS = """
def pytest_collection_finish(session):
    for item in session.items:
        marker = item.get_closest_marker("timeout")
        print("TIMEOUT", item.name, marker.args[0] if marker else None)
"""


def test_slow_tests_get_the_longer_timeout(tmp_path: Path) -> None:
    """tests/conftest.py gives -m slow tests SLOW_TIMEOUT; the others keep pyproject's."""
    (tmp_path / "print_timeouts.py").write_text(PRINT_TIMEOUTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow or not slow",
         "-p", "print_timeouts", "tests/conformance/test_seed_sweep.py",
         "tests/test_habits.py::test_slow_tests_get_the_longer_timeout"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True,
        text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    found = dict(line.split()[1:] for line in run.stdout.splitlines()
                 if line.startswith("TIMEOUT "))
    assert found == {"test_ten_random_seeds_pass": "3600",
                     "test_slow_tests_get_the_longer_timeout": "None"}
    assert PYPROJECT["tool"]["pytest"]["ini_options"]["timeout"] < 3600


# --- licence, changelog --------------------------------------------------------------------------


def test_the_licence_file_is_the_mit_licence_pyproject_declares() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert text.startswith("MIT License\n\nCopyright (c) ")
    assert re.search(r"^Copyright \(c\) \d{4} the bulkreg authors$", text, re.MULTILINE)
    assert "Permission is hereby granted, free of charge" in text


def test_the_changelog_has_an_entry_for_the_version_in_pyproject() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n")
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    # the newest entry is the version pyproject.toml (and so `bulkreg --version`) reports
    assert versions and versions[0] == PYPROJECT["project"]["version"], versions
    kinds = set(re.findall(r"^### (.+)$", text, re.MULTILINE))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds


# --- the sdk extra -------------------------------------------------------------------------------


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(root: str) -> set[str]:
    """Every distribution ``root`` declares, transitively (markers evaluated without extras)."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if _key(name) in seen:
            continue
        seen.add(_key(name))
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


BLOCK_SIX = """
import importlib.abc, sys

class NoSix(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "six":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoSix())
import azure.iot.hub
"""


def _only_in(requirement: Requirement, extra: str) -> bool:
    marker = requirement.marker
    return marker is not None and marker.evaluate({"extra": extra}) \
        and not marker.evaluate({"extra": ""})


def test_the_sdk_extra_brings_what_the_sdk_imports() -> None:
    extra = [r for r in map(Requirement, metadata.requires("bulkreg") or [])
             if _only_in(r, "sdk")]
    assert {r.name: str(r.specifier) for r in extra} == {
        "azure-iot-hub": f"=={metadata.version('azure-iot-hub')}",  # the version tested
        "six": ""}
    # azure-iot-hub imports six, and neither it nor anything it requires declares six: without
    # the extra's six, `import azure.iot.hub` fails as the SDK recipe (docs/serve.md) did
    assert "six" not in _declared("azure-iot-hub")
    run = subprocess.run([sys.executable, "-c", BLOCK_SIX], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 1
    assert "ModuleNotFoundError: No module named 'six" in run.stderr, run.stderr
