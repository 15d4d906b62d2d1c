"""The default ``bulkreg conform`` passes its own hub on every seed (slow: 10 random seeds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SWEEP = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_sweep.py"


@pytest.mark.slow
def test_ten_random_seeds_pass() -> None:
    proc = subprocess.run([sys.executable, str(SWEEP), "--count", "10", "--jobs", "2"],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "passed: 10 of 10 seeds" in proc.stdout
