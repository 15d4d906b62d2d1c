"""The live-hub recipe of docs/conform.md, as written, against a hub throttled like S1 (issue 13):
`bulkreg serve --throttle 2` (2 requests a second, about S1's 100 a minute) and the recipe's
`bulkreg conform` (`--rate-limit 1 --max-requests 2000`), with the endpoint and keys in the
variables the recipe exports. The run reaches its minimum coverage in at most 200 requests, says
that its time budget grew to fit the plan, and ends PASS. It takes about four minutes: a slow
test. The recipe is read out of the page, so the page and the test cannot drift apart."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bulkreg_conformance import cli

from .hostile import conform

CONFORM_DOC = Path(__file__).resolve().parents[2] / "docs" / "conform.md"


def live_recipe() -> tuple[list[str], list[str]]:
    """The variables the live-hub recipe exports, and the arguments of its ``bulkreg conform``."""
    text = CONFORM_DOC.read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
              if "export BULKREG_ENDPOINT=" in b]
    assert len(blocks) == 1, f"{len(blocks)} live-hub recipes in docs/conform.md"
    exported = re.findall(r"^export (\w+)=", blocks[0], re.MULTILINE)
    (command,) = [line for line in blocks[0].splitlines() if line.startswith("bulkreg conform")]
    words = shlex.split(command, comments=True)
    return exported, words[2:]


def test_the_live_recipe_is_what_the_slow_test_runs() -> None:
    exported, args = live_recipe()
    assert sorted(exported) == ["BULKREG_CONNECTION_STRING", "BULKREG_ENDPOINT",
                                "BULKREG_READ_CONNECTION_STRING"]
    parsed = cli.parser().parse_args(args)
    assert (parsed.rate_limit, parsed.max_requests, parsed.time_budget) == (1, 2000, None)


@pytest.mark.slow
def test_the_live_recipe_passes_against_a_throttled_hub() -> None:
    exported, args = live_recipe()
    serve = subprocess.Popen([sys.executable, "-m", "bulkreg_conformance.hub.cli",
                              "--throttle", "2", "--all-policies"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert serve.stdout is not None
        lines = dict(serve.stdout.readline().strip().partition("=")[::2] for _ in range(6))
        values = {"BULKREG_ENDPOINT": lines["BULKREG_URL"],
                  "BULKREG_CONNECTION_STRING": lines["BULKREG_CONNECTION_STRING"],
                  "BULKREG_READ_CONNECTION_STRING": lines[
                      "BULKREG_CONNECTION_STRING_REGISTRYREAD"]}
        assert sorted(values) == sorted(exported)
        ran = conform(*args, timeout=900, **values)
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
