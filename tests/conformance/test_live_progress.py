"""The live display: a redrawn status line on a terminal, nothing on a pipe or a CI log."""

from __future__ import annotations

import io
import time

from bulkreg_conformance.cli import LiveProgress, _progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_without_a_terminal() -> None:
    assert _progress(io.StringIO()) is None


def test_redraws_step_and_counts_then_clears_the_line() -> None:
    stream = Terminal()
    live = _progress(stream)
    assert isinstance(live, LiveProgress)
    counts = iter(range(1000))
    live.stats = lambda: f"{next(counts)} requests"
    live("property")
    time.sleep(0.6)  # the ticker redraws four times a second
    live("cleanup")
    live.close()
    text = stream.getvalue()
    assert text.count("bulkreg conform: property:") >= 2  # redrawn while the suite runs
    assert "bulkreg conform: property done\n" in text
    assert "cleanup:" in text and text.endswith("\r\x1b[K")
