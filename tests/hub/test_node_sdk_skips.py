"""The Node.js SDK tests say plainly when they are skipped and why, in pytest's summary: each test
runs the real test_node_sdk.py (a copy, next to this folder's conftest.py and the scenario's
package files) in a pytest subprocess where one of its needs is missing."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE = HERE / "node"
STEPS = 21  # test_node_sdk.py: one test per scenario step, and the list of steps


def copy_of_the_tests(tmp_path: Path, *, installed: bool) -> Path:
    """tests/hub/test_node_sdk.py, its conftest.py and node/ (without node_modules, or with the
    real one linked in) in a temporary folder."""
    hub = tmp_path / "hub"
    (hub / "node").mkdir(parents=True)
    for name in ("test_node_sdk.py", "conftest.py"):
        shutil.copy2(HERE / name, hub / name)
    for name in ("package.json", "package-lock.json", "scenario.js"):
        shutil.copy2(NODE / name, hub / "node" / name)
    if installed:
        (hub / "node" / "node_modules").symlink_to(NODE / "node_modules")
    return hub / "test_node_sdk.py"


def run_pytest(test_file: Path, path: str) -> str:
    env = {**os.environ, "PATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
         "--rootdir", str(test_file.parents[1]), "--color", "no", str(test_file)],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output  # skipped is no failure
    return output


def summary_line(output: str) -> str:
    """The line under the "Node.js SDK tests" section header."""
    lines = output.splitlines()
    at = next(i for i, line in enumerate(lines) if " Node.js SDK tests " in line)
    return lines[at + 1]


def test_without_node_and_npm(tmp_path: Path) -> None:
    output = run_pytest(copy_of_the_tests(tmp_path, installed=False),
                        path=str(Path(sys.executable).parent))
    assert summary_line(output) == (
        f"{STEPS} skipped, because node and npm are not on PATH: install Node.js (with npm) "
        "to run the Node.js SDK scenario")
    assert f"SKIPPED [{STEPS - 1}] " in output  # -ra's lines say it too


def _node_path() -> str:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to reach the next reasons")
    return os.environ["PATH"]


def test_without_npm_ci(tmp_path: Path) -> None:
    test_file = copy_of_the_tests(tmp_path, installed=False)
    output = run_pytest(test_file, _node_path())
    assert summary_line(output) == (
        f"{STEPS} skipped, because the pinned Node.js SDK is not installed: run `npm ci` in "
        f"{test_file.parent / 'node'} (.ci/run does)")


def test_when_port_443_cannot_be_bound(tmp_path: Path) -> None:
    path = _node_path()
    if not (NODE / "node_modules" / "azure-iothub").is_dir():
        pytest.skip("the pinned Node.js SDK is not installed (npm ci in tests/hub/node)")
    test_file = copy_of_the_tests(tmp_path, installed=True)
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 443))  # held here, so the copy cannot bind it
        holder.listen()
        why = "Address already in use"
    except PermissionError:
        why = "needs root or CAP_NET_BIND_SERVICE"  # the copy cannot bind it either
    except OSError as exc:
        holder.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        pytest.skip("another process holds 127.0.0.1:443 and may free it during the test")
    with holder:
        output = run_pytest(test_file, path)
    line = summary_line(output)
    assert line.startswith(f"{STEPS} skipped, because 127.0.0.1:443 cannot be bound ("), line
    assert why in line and line.endswith("and the Node.js SDK dials no other port"), line
