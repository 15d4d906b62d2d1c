"""``bulkreg conform``: test an endpoint (or the built-in hub) against the contract.

Thin: parse arguments, build :class:`~bulkreg_conformance.settings.Settings`, run, report. Exit
0 when the endpoint conforms and the run reached its minimum coverage (PASS), 1 on failures
(deviations too with ``--strict``), 2 on a usage error or an endpoint that cannot be tested
(unreachable, untrusted certificate, token refused or read-only: one line), 3 when nothing
failed but the run did not reach its minimum coverage (INCOMPLETE), 130 after Ctrl-C
(INTERRUPTED). The endpoint and connection string may come from the environment, so the key
stays out of shell history and CI logs: ``BULKREG_ENDPOINT`` or ``BULKREG_URL`` (what ``bulkreg
serve`` prints), ``BULKREG_CONNECTION_STRING``, ``BULKREG_READ_CONNECTION_STRING`` and
``BULKREG_CA_CERT``; the connection string alone, without an endpoint, is ignored (the built-in
hub makes its own).
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
from bulkreg_conformance.settings import DEFAULT_TIME_BUDGET

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bulkreg conform",
        description="Test an IoT Hub bulk registry endpoint against the contract. Without "
                    "--endpoint, starts the built-in reference hub on 127.0.0.1 and tests it "
                    "over real HTTP.")
    p.add_argument("--endpoint", metavar="URL",
                   help="base URL of the hub, gateway or mock (default: $BULKREG_ENDPOINT, "
                        "else $BULKREG_URL as `bulkreg serve` prints it)")
    p.add_argument("--connection-string", metavar="CS",
                   help="service connection string (default: $BULKREG_CONNECTION_STRING); its "
                        "HostName is what tokens are signed for")
    p.add_argument("--read-connection-string", metavar="CS",
                   help="a connection string whose policy may only read (default: "
                        "$BULKREG_READ_CONNECTION_STRING): the auth suite checks that it cannot "
                        "write (the built-in hub supplies its own)")
    p.add_argument("--blob-container-uri", metavar="URI",
                   help="a container SAS URI (read, write, delete, list) for the jobs suite "
                        "(default: $BULKREG_BLOB_CONTAINER_URI; the built-in hub uses Azurite "
                        "when it is installed)")
    p.add_argument("--ca-cert", metavar="FILE",
                   help="trust the CA certificate(s) in FILE (PEM) for an https endpoint "
                        "(default: $BULKREG_CA_CERT, else the system's or $REQUESTS_CA_BUNDLE)")
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
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help=f"stop drawing new cases after this long (default "
                        f"{DEFAULT_TIME_BUDGET:.0f}, grown under --rate-limit to fit the "
                        f"minimum-coverage plan)")
    p.add_argument("--report-json", metavar="FILE", help="write the JSON report here")
    p.add_argument("--junit-xml", metavar="FILE", help="write a JUnit XML report here")
    p.add_argument("--replay-dir", metavar="DIR",
                   help="write one replay file per failure here (default: next to --report-json)")
    p.add_argument("--replay", metavar="FILE",
                   help="re-send a failure's sequence of calls (a replay file) in a fresh prefix")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    named = tuple(s.strip() for s in args.suite.split(",") if s.strip())
    suites = tuple(s for s in named if s != "differential")  # an observer now, always on
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
    endpoint = args.endpoint or _env_endpoint()
    cs = args.connection_string or (os.environ.get("BULKREG_CONNECTION_STRING") if endpoint
                                    else None)
    read_cs = args.read_connection_string or (
        os.environ.get("BULKREG_READ_CONNECTION_STRING") if endpoint else None)
    if endpoint and not cs:
        raise ValueError(("--endpoint" if args.endpoint else _env_endpoint_name())
                         + " needs --connection-string or BULKREG_CONNECTION_STRING")
    if args.connection_string and not endpoint:
        raise ValueError("--connection-string needs --endpoint (the built-in hub makes its own)")
    if args.read_connection_string and not endpoint:
        raise ValueError("--read-connection-string needs --endpoint (the built-in hub supplies "
                         "its own)")
    ca_cert = args.ca_cert or (os.environ.get("BULKREG_CA_CERT") if endpoint else None) or None
    if ca_cert and not Path(ca_cert).is_file():
        raise ValueError(f"{'--ca-cert' if args.ca_cert else 'BULKREG_CA_CERT'} {ca_cert}: no "
                         "such file")
    for option in ("report_json", "junit_xml", "replay_dir"):
        _writable(getattr(args, option), option)
    replay = None
    prefix = args.prefix
    if args.replay:
        try:
            replay = json.loads(Path(args.replay).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read replay file {args.replay}: {exc}") from None
        if not isinstance(replay, dict) or "payload" not in replay:
            raise ValueError(f"{args.replay} is not a bulkreg replay file")
    blob = args.blob_container_uri or os.environ.get("BULKREG_BLOB_CONTAINER_URI") or None
    if blob and not blob.lower().startswith(("https://", "http://")):
        raise ValueError("--blob-container-uri must be a container SAS URI (https://…?sv=…)")
    if endpoint and suites == ("jobs",) and not blob:
        raise ValueError("the jobs suite needs --blob-container-uri (or "
                         "BULKREG_BLOB_CONTAINER_URI) against an endpoint")
    return Settings(endpoint=endpoint, connection_string=cs, read_connection_string=read_cs,
                    suites=suites, max_examples=args.max_examples, seed=args.seed,
                    strict=args.strict, prefix=prefix, rate_limit=args.rate_limit,
                    max_requests=args.max_requests, time_budget=args.time_budget, replay=replay,
                    ca_cert=ca_cert, blob_container_uri=blob)


_ENDPOINT_VARIABLES = ("BULKREG_ENDPOINT", "BULKREG_URL")  # BULKREG_URL: what `serve` prints


def _env_endpoint() -> str | None:
    return next((os.environ[v] for v in _ENDPOINT_VARIABLES if os.environ.get(v)), None)


def _env_endpoint_name() -> str:
    return next((v for v in _ENDPOINT_VARIABLES if os.environ.get(v)), _ENDPOINT_VARIABLES[0])


def _writable(path: str | None, option: str) -> None:
    """Create the folder a report goes to now, before any request: a run must never end in
    an unwritable report."""
    if not path:
        return
    folder = Path(path) if option == "replay_dir" else Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--{option.replace('_', '-')} {path}: cannot create the folder "
                         f"{folder} ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--{option.replace('_', '-')} {path}: the folder {folder} is not "
                         "writable")


def _notices(settings: Settings, args: argparse.Namespace) -> list[str]:
    """What the run did with the environment that the user may not expect (one line each)."""
    notes = []
    if settings.endpoint is None and os.environ.get("BULKREG_CONNECTION_STRING"):
        notes.append("BULKREG_CONNECTION_STRING is ignored: no --endpoint (or BULKREG_ENDPOINT, "
                     "BULKREG_URL) was given, so the built-in reference hub is tested")
    if "differential" in args.suite.split(","):
        notes.append("the differential comparison is no longer a suite: it observes every bulk "
                     "call of every run")
    return notes


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
    from bulkreg_conformance.suites.jobs import sas_signature  # noqa: PLC0415

    signature = sas_signature(settings.blob_container_uri or "") or ""
    return tuple(s for s in (cs, key, signature) if s)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as exc:
        p.print_usage(sys.stderr)
        print(f"bulkreg conform: error: {exc}", file=sys.stderr)
        return 2
    for notice in _notices(settings, args):
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
    try:
        _write(result, args, secrets)
    except OSError as exc:  # the folder was checked before the run; it may have gone since
        print(f"bulkreg conform: error: cannot write a report: {exc}", file=sys.stderr)
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
    return result.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
