"""Ctrl-C during ``bulkreg conform`` against an external hub: every device the run created is
deleted, the run exits non-zero with its summary, and no traceback is printed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from bulkreg_conformance.hub.cli import start_background

PREFIX = "sigint-run-"


def _ours(hub: object) -> list[str]:
    records = hub.registry.records()  # type: ignore[attr-defined]
    return [device for device, _ in records if device.startswith(PREFIX)]


def test_sigint_cleans_up_and_exits_without_a_traceback() -> None:
    with start_background() as hub:
        hub.hub.seed([{"id": "foreign-1", "importMode": "create"}], "2021-04-12")
        with subprocess.Popen(
            [sys.executable, "-m", "bulkreg_validator", "conform", "--endpoint", hub.url,
             "--connection-string", hub.connection_string, "--suite", "stateful",
             "--max-examples", "1000", "--seed", "4", "--prefix", PREFIX,
             "--time-budget", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            try:
                deadline = time.monotonic() + 60
                while len(_ours(hub.hub)) < 3 and time.monotonic() < deadline \
                        and proc.poll() is None:
                    time.sleep(0.05)
                assert _ours(hub.hub), "the run created no device before the deadline"
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=60)
            finally:  # on any failure above: no process or pipe outlives the test
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        assert proc.returncode not in (0, None), out + err
        assert "Traceback" not in out + err
        assert "interrupted" in out + err
        assert _ours(hub.hub) == []
        assert [d for d, _ in hub.hub.registry.records()] == ["foreign-1"]
