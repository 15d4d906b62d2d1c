"""Failures reproduce: a failure's replay record re-sends its episode (setup calls included) in a
fresh prefix and fails the same check, for a property, a stateful and a read-back failure; the
same record passes against the faithful hub; a replay file round-trips through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bulkreg_conformance import replay as replays
from bulkreg_conformance.runner import Result, Settings, run
from bulkreg_conformance.session import Failure

from .conftest import Served
from .test_broken_hubs import DEFECTS


def _run(served: Served, **kwargs: Any) -> Result:
    return run(Settings(endpoint=served.url, connection_string=served.connection_string,
                        **kwargs))


def _first(result: Result, check: str, suite: str) -> Failure:
    found = [f for f in result.failures if f.check == check and f.suite == suite
             and f.verdict(False) == "failed"]
    assert found, ([f.to_dict(False) for f in result.failures], result.tally)
    return found[0]


CASES = {
    # (defect, suites of the finding run, the suite and check that must fail)
    "property": ("ignored eTag", ("property",), "property", "errors"),
    "stateful": ("ignored eTag", ("stateful",), "stateful", "errors"),
    "read-back": ("delete that does not delete", ("property",), "property", "readback-device"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_replay_fails_the_same_check_in_a_fresh_prefix(serve: Callable[..., Served],
                                                         case: str) -> None:
    defect, suites, suite, check = CASES[case]
    served = serve(DEFECTS[defect][0])
    found = _first(_run(served, suites=suites, max_examples=10, seed=3, time_budget=20.0),
                   check, suite)
    record = json.loads(json.dumps(found.replay))  # as written to and read from a file
    assert record["check"] == check and record["steps"], record
    again = _run(served, suites=("property",), replay=record)
    assert again.prefix != record["prefix"]  # a fresh prefix: nothing left over is reused
    reproduced = [f for f in again.failures if f.check == check]
    assert reproduced, (record, [f.to_dict(False) for f in again.failures])
    assert all(again.prefix in (f.payload or again.prefix) for f in reproduced)
    assert again.exit_code() == 1
    # the same sequence against the faithful hub: nothing fails
    clean = _run(serve(), suites=("property",), replay=record)
    assert clean.failures == [], [f.to_dict(False) for f in clean.failures]
    assert len(served.hub.registry) == 0  # the replay cleaned up after itself


def test_a_version_1_record_replays_its_payload() -> None:
    record = {"version": 1, "check": "errors", "rule": None, "payload": "[1]",
              "prefix": "p-", "api_version": "2021-04-12"}
    assert replays.steps(record) == [{"raw": "[1]", "rule": None, "readback": True,
                                      "api_version": "2021-04-12"}]


def test_the_printed_replay_command_runs_as_printed(serve: Callable[..., Served],
                                                    tmp_path: Path) -> None:
    served = serve(DEFECTS["ignored eTag"][0])
    env = {**os.environ, "BULKREG_CONNECTION_STRING": served.connection_string}
    report = tmp_path / "report.json"
    first = subprocess.run(
        [sys.executable, "-m", "bulkreg_validator", "conform", "--endpoint", served.url,
         "--suite", "property", "--max-examples", "5", "--seed", "3", "--report-json",
         str(report)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert first.returncode == 1, first.stderr
    printed = [line.split("replay: ", 1)[1] for line in first.stderr.splitlines()
               if line.startswith("replay: ")]
    assert printed, first.stderr
    command = printed[0].split()
    assert command[:3] == ["bulkreg", "conform", "--endpoint"] or "--endpoint" in command
    assert served.key not in first.stdout + first.stderr
    second = subprocess.run([sys.executable, "-m", "bulkreg_validator", *command[1:]],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert second.returncode == 1, (command, second.stdout, second.stderr)
