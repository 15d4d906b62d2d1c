"""The pytest plugin: inert without --bulkreg-endpoint; with it, one item per suite plus cleanup,
passing on the faithful hub and failing, with the check named, on a broken one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from bulkreg_conformance.hub.cli import start_background

from .conftest import Served
from .test_broken_hubs import DEFECTS

PLUGIN = "bulkreg_conformance.pytest_plugin"
# Installed, the package registers the plugin through its pytest11 entry point (the way users get
# it); naming it again with -p would register it twice.
INSTALLED = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
LOAD = [] if INSTALLED else ["-p", PLUGIN]


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A separate pytest run in an empty directory (none of this project's config or tests)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", *LOAD, "-p", "no:cacheprovider", "-rA",
         "-W", "error", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), *args,
         str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)


def test_plugin_is_inert_without_an_endpoint(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, "--collect-only", "-q")
    assert proc.returncode == 5, proc.stdout + proc.stderr  # 5: no tests collected
    assert "bulkreg" not in proc.stdout
    heavy = subprocess.run(
        [sys.executable, "-c", f"import sys, {PLUGIN}; print(sorted(m for m in "
         "('hypothesis', 'schemathesis', 'requests', 'werkzeug', 'bulkreg_conformance.runner') "
         "if m in sys.modules))"], capture_output=True, text=True, timeout=60, check=True)
    assert heavy.stdout.strip() == "[]"


def test_plugin_runs_the_suites_against_the_hub(tmp_path: Path) -> None:
    with start_background() as hub:
        proc = _pytest(tmp_path, "--bulkreg-endpoint", hub.url, "--bulkreg-connection-string",
                       hub.connection_string, "--bulkreg-suite", "auth,stateful",
                       "--bulkreg-max-examples", "3", "--bulkreg-seed", "2")
        assert len(hub.hub.registry) == 0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for item in ("auth", "stateful", "coverage", "cleanup"):
        assert f"PASSED bulkreg::{item}" in proc.stdout, item


def test_plugin_fails_the_suite_naming_the_check(serve: Callable[..., Served],
                                                 tmp_path: Path) -> None:
    served = serve(DEFECTS["no auth"][0])
    proc = _pytest(tmp_path, "--bulkreg-endpoint", served.url, "--bulkreg-connection-string",
                   served.connection_string, "--bulkreg-suite", "auth",
                   "--bulkreg-max-examples", "3")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "FAILED" in output and "auth" in output
    assert "auth-missing" in output
    assert served.key not in output
    assert "Traceback" not in output
    assert len(served.hub.registry) == 0


def test_plugin_rejects_an_unknown_suite(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, "--bulkreg-endpoint", "http://127.0.0.1:9",
                   "--bulkreg-connection-string", "x", "--bulkreg-suite", "nope")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # 4: usage error
    assert "unknown suite" in proc.stderr
