"""Ctrl-C during ``bulkreg conform`` against an external hub: every device the run created is
deleted, the run exits non-zero with its summary, and no traceback is printed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from bulkreg_conformance import runner
from bulkreg_conformance.client import Client
from bulkreg_conformance.hub.app import Faults
from bulkreg_conformance.hub.cli import start_background
from bulkreg_conformance.runner import Settings

from .conftest import Served

PREFIX = "sigint-run-"


def _ours(hub: object) -> list[str]:
    records = hub.registry.records()  # type: ignore[attr-defined]
    return [device for device, _ in records if device.startswith(PREFIX)]


def test_sigint_cleans_up_and_exits_without_a_traceback() -> None:
    # 20 ms a request: the run is still sending when the signal comes
    with start_background(faults=Faults(latency_ms=20)) as hub:
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
        assert proc.returncode == 130, out + err
        assert "verdict: INTERRUPTED" in out, out
        assert "Traceback" not in out + err
        assert "interrupted" in out + err
        assert _ours(hub.hub) == []
        assert [d for d, _ in hub.hub.registry.records()] == ["foreign-1"]


def test_a_signal_whose_keyboardinterrupt_python_dropped_still_ends_interrupted(
        serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch) -> None:
    """Python drops an exception raised inside a gc callback or a ``__del__`` (the signal
    handler's KeyboardInterrupt can land there): the client's flag, set by the same handler,
    still ends the run INTERRUPTED after its cleanup, never PASS."""
    class Interrupted(Client):  # the handler's first half; its raise lost
        def bulk(self, *args: Any, **kwargs: Any) -> Any:
            if self.sent >= 40:
                self.interrupt()
            return super().bulk(*args, **kwargs)

    monkeypatch.setattr(runner, "Client", Interrupted)
    served = serve()
    result = runner.run(Settings(endpoint=served.url, connection_string=served.connection_string,
                                 suites=("stateful",), seed=4, max_examples=1000,
                                 time_budget=60.0))
    assert result.verdict == "INTERRUPTED", result.verdict
    assert result.exit_code() == 130
    assert "interrupted: cleaned up and stopped" in result.errors
    assert result.leaks == []
    assert [d for d, _ in served.hub.registry.records()] == []
