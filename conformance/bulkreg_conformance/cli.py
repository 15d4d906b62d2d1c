"""``bulkreg conform``: test an endpoint (or the built-in hub) against the contract.

Thin: parse arguments, build :class:`~bulkreg_conformance.runner.Settings`, run, report. Exit 0
when the endpoint conforms, 1 on failures (deviations too with ``--strict``), 2 on a usage error
or an endpoint that cannot be tested (unreachable, untrusted certificate, token refused: one
line). The endpoint and connection string may come from ``BULKREG_ENDPOINT`` and
``BULKREG_CONNECTION_STRING``, so the key stays out of shell history and CI logs; the
connection string alone, without an endpoint, is ignored (the built-in hub makes its own).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from bulkreg_conformance import report
from bulkreg_conformance.client import ClientError
from bulkreg_conformance.runner import SUITES, Result, Settings, run

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bulkreg conform",
        description="Test an IoT Hub bulk registry endpoint against the contract. Without "
                    "--endpoint, starts the built-in reference hub on 127.0.0.1 and tests it "
                    "over real HTTP.")
    p.add_argument("--endpoint", metavar="URL",
                   help="base URL of the hub, gateway or mock (default: $BULKREG_ENDPOINT)")
    p.add_argument("--connection-string", metavar="CS",
                   help="service connection string (default: $BULKREG_CONNECTION_STRING); its "
                        "HostName is what tokens are signed for")
    p.add_argument("--ca-cert", metavar="FILE",
                   help="trust the CA certificate(s) in FILE (PEM) for an https endpoint "
                        "(default: the system's, or $REQUESTS_CA_BUNDLE)")
    p.add_argument("--suite", default=",".join(SUITES),
                   help=f"comma-separated suites (default: {','.join(SUITES)})")
    p.add_argument("--max-examples", type=int, default=25, metavar="N",
                   help="hypothesis examples per generated suite (default 25)")
    p.add_argument("--seed", type=int, help="seed for a reproducible run (default: random)")
    p.add_argument("--strict", action="store_true",
                   help="deviations from observed/inferred behaviour fail the run too")
    p.add_argument("--prefix", help="device id prefix of this run (default: random)")
    p.add_argument("--rate-limit", type=float, metavar="R", help="at most R requests per second")
    p.add_argument("--max-requests", type=int, metavar="N", help="stop after N requests")
    p.add_argument("--time-budget", type=float, default=50.0, metavar="SECONDS",
                   help="stop drawing new cases after this long (default 50)")
    p.add_argument("--report-json", metavar="FILE", help="write the JSON report here")
    p.add_argument("--junit-xml", metavar="FILE", help="write a JUnit XML report here")
    p.add_argument("--replay-dir", metavar="DIR",
                   help="write one replay file per failure here (default: next to --report-json)")
    p.add_argument("--replay", metavar="FILE",
                   help="re-send a failure's sequence of calls (a replay file) in a fresh prefix")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    suites = tuple(s.strip() for s in args.suite.split(",") if s.strip())
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise ValueError(f"unknown suite(s) {', '.join(unknown) or '(none)'}; known: "
                         f"{', '.join(SUITES)}")
    for name in ("max_examples", "max_requests"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("rate_limit", "time_budget"):
        value = getattr(args, name)
        if value is not None and not value > 0:  # also refuses NaN
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    endpoint = args.endpoint or os.environ.get("BULKREG_ENDPOINT") or None
    cs = args.connection_string or (os.environ.get("BULKREG_CONNECTION_STRING") if endpoint
                                    else None)
    if endpoint and not cs:
        raise ValueError(("--endpoint" if args.endpoint else "BULKREG_ENDPOINT")
                         + " needs --connection-string or BULKREG_CONNECTION_STRING")
    if args.connection_string and not endpoint:
        raise ValueError("--connection-string needs --endpoint (the built-in hub makes its own)")
    if args.ca_cert and not Path(args.ca_cert).is_file():
        raise ValueError(f"--ca-cert {args.ca_cert}: no such file")
    replay = None
    prefix = args.prefix
    if args.replay:
        try:
            replay = json.loads(Path(args.replay).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read replay file {args.replay}: {exc}") from None
        if not isinstance(replay, dict) or "payload" not in replay:
            raise ValueError(f"{args.replay} is not a bulkreg replay file")
    return Settings(endpoint=endpoint, connection_string=cs, suites=suites,
                    max_examples=args.max_examples, seed=args.seed, strict=args.strict,
                    prefix=prefix, rate_limit=args.rate_limit, max_requests=args.max_requests,
                    time_budget=args.time_budget, replay=replay, ca_cert=args.ca_cert)


def _notices(settings: Settings) -> list[str]:
    """What the run did with the environment that the user may not expect (one line each)."""
    if settings.endpoint is None and os.environ.get("BULKREG_CONNECTION_STRING"):
        return ["BULKREG_CONNECTION_STRING is ignored: no --endpoint (or BULKREG_ENDPOINT) was "
                "given, so the built-in reference hub is tested"]
    return []


class LiveProgress:
    """A status line on a terminal, redrawn four times a second: the suite running, requests
    sent, checks passed / failed / deviations, time. Each finished step stays on its own line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.stats: Callable[[], str] = lambda: ""
        self.step = ""
        self.started = time.monotonic()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._tick, daemon=True)

    def __call__(self, step: str) -> None:
        with self.lock:
            if self.step:
                self.stream.write(f"\r\x1b[Kbulkreg conform: {self.step} done\n")
            self.step = step
        if not self.thread.is_alive():
            self.thread.start()
        self._draw()

    def _tick(self) -> None:
        while not self.done.wait(0.25):
            self._draw()

    def _draw(self) -> None:
        with self.lock:
            if self.done.is_set():
                return
            elapsed = time.monotonic() - self.started
            self.stream.write(f"\r\x1b[Kbulkreg conform: {self.step}: {self.stats()}, "
                              f"{elapsed:.0f}s")
            self.stream.flush()

    def close(self) -> None:
        with self.lock:
            self.done.set()
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _progress(stream: TextIO) -> LiveProgress | None:
    """The live display on a terminal; quiet otherwise (CI logs, pipes)."""
    return LiveProgress(stream) if stream.isatty() else None


def _secrets(settings: Settings) -> tuple[str, ...]:
    cs = settings.connection_string or ""
    key = cs.split("SharedAccessKey=", 1)[1].split(";", 1)[0] if "SharedAccessKey=" in cs else ""
    return tuple(s for s in (cs, key) if s)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as exc:
        p.print_usage(sys.stderr)
        print(f"bulkreg conform: error: {exc}", file=sys.stderr)
        return 2
    for notice in _notices(settings):
        print(f"bulkreg conform: {notice}", file=sys.stderr)
    secrets = _secrets(settings)
    try:
        live = _progress(sys.stderr)
        try:
            result = run(settings, progress=live)
        finally:
            if live is not None:
                live.close()
    except ClientError as exc:
        print(f"bulkreg conform: error: {report.scrub(str(exc), secrets)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the run started (or a second Ctrl-C during cleanup)
        print("bulkreg conform: interrupted", file=sys.stderr)
        return 130
    _write(result, args, secrets)
    print(report.summary(result, secrets))
    return _exit_code(result)


def _write(result: Result, args: argparse.Namespace, secrets: tuple[str, ...]) -> None:
    if args.report_json:
        report.write_json(result, args.report_json, secrets)
    if args.junit_xml:
        report.write_junit(result, args.junit_xml, secrets)
    replay_dir = args.replay_dir or (str(Path(args.report_json).parent / "bulkreg-replays")
                                     if args.report_json else None)
    if replay_dir and result.failures:
        for path in report.write_replays(result, replay_dir, secrets):
            print(f"replay: {_replay_command(result, path)}", file=sys.stderr)
        if not result.builtin and not os.environ.get("BULKREG_CONNECTION_STRING"):
            print("replay: export BULKREG_CONNECTION_STRING first (replay commands never carry "
                  "the key)", file=sys.stderr)


def _replay_command(result: Result, path: Path) -> str:
    """``bulkreg conform --replay FILE`` as it must be run: the endpoint (and CA) included, the
    connection string left to the environment."""
    words = ["bulkreg", "conform"]
    if not result.builtin:
        words += ["--endpoint", result.endpoint]
    if result.settings.ca_cert:
        words += ["--ca-cert", result.settings.ca_cert]
    return shlex.join([*words, "--replay", str(path)])


def _exit_code(result: Result) -> int:
    unreachable = any("unreachable" in e for e in result.errors)
    if unreachable and result.requests <= 1:
        return 2
    return 1 if result.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
