"""`bulkreg serve` with unusable arguments: exit 2 and one clear line, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(("args", "says"), [
    (["--port", "99999"], "outside 0..65535"),
    (["--port", "http"], "not a port number"),
    (["--db", "/nonexistent/dir/registry.sqlite"], "unable to open database file"),
    (["--host", "256.1.1.1"], "cannot listen on 256.1.1.1"),
    (["--connection-string", "garbage"], "not Name=Value"),
    (["--error-rate", "2"], "between 0 and 1"),
])
def test_unusable_arguments_exit_2_with_a_reason(args: list[str], says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "bulkreg_conformance.hub.cli", *args],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert "BULKREG_URL" not in done.stdout
