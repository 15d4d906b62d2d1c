"""The README's live-hub recipe, as written, against a hub throttled like S1 (issue 13): `bulkreg
serve --throttle 2` (2 requests a second, about S1's 100 a minute) and `bulkreg conform
--rate-limit 1 --max-requests 2000`, the endpoint and keys in the environment. The run reaches
its minimum coverage in at most 200 requests, says that its time budget grew to fit the plan,
and ends PASS. It takes about four minutes: a slow test."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .hostile import conform


@pytest.mark.slow
def test_the_live_recipe_passes_against_a_throttled_hub() -> None:
    serve = subprocess.Popen([sys.executable, "-m", "bulkreg_conformance.hub.cli",
                              "--throttle", "2", "--all-policies"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert serve.stdout is not None
        lines = dict(serve.stdout.readline().strip().partition("=")[::2] for _ in range(6))
        ran = conform("--rate-limit", "1", "--max-requests", "2000", timeout=900,
                      BULKREG_ENDPOINT=lines["BULKREG_URL"],
                      BULKREG_CONNECTION_STRING=lines["BULKREG_CONNECTION_STRING"],
                      BULKREG_READ_CONNECTION_STRING=lines[
                          "BULKREG_CONNECTION_STRING_REGISTRYREAD"])
    finally:
        serve.kill()
        serve.wait(10)
        if serve.stdout is not None:
            serve.stdout.close()
    print(ran.stdout)  # the summary, for the record (-s shows it)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "verdict: PASS" in ran.stdout
    assert "note: time budget:" in ran.stdout and "grown from 50 s" in ran.stdout
    reached = re.search(r"minimum reached \(after (\d+) requests\)", ran.stdout)
    assert reached and int(reached.group(1)) <= 200, ran.stdout
