"""The ``bulkreg`` command line: ``lint``, ``rules``, ``schema-path``, ``schema-bundle``, and the
``serve``/``conform`` entry points of the conformance kit.

Arguments are parsed apart from running (``parse`` -> ``run_*``), and the heavy half of the project
(hub, hypothesis, schemathesis, requests) is imported only when ``serve``/``conform`` run, so
``bulkreg lint`` starts fast. Exit codes: 0 clean, 1 findings, 2 usage errors or unreadable input.
"""

from __future__ import annotations

import argparse
import importlib
import io
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import bulkreg_schema

from . import validate, validate_import
from ._report import REPORTERS, FileResult, Summary, rules_markdown, rules_text

__all__ = ["build_parser", "main", "version"]

IMPORT_SUFFIXES = (".jsonl", ".ndjson", ".txt")
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_BOM = b"\xef\xbb\xbf"
_SNIFF_LINES = 1000  # blank lines skipped at most when sniffing stdin


class UsageError(Exception):
    """Bad arguments or an environment problem: one line on stderr, exit 2."""


# --- arguments -----------------------------------------------------------------------------------


def api_version(text: str) -> str:
    if not _API_VERSION.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an api-version: expected YYYY-MM-DD or YYYY-MM-DD-preview "
            f"(e.g. {bulkreg_schema.API_VERSION})")
    return text


def version() -> str:
    """The installed distribution's version (its metadata, not a copy in the code)."""
    from importlib import metadata  # noqa: PLC0415 - only --version reads it

    try:
        return metadata.version("bulkreg")
    except metadata.PackageNotFoundError:
        return "(unknown: bulkreg is not installed as a distribution)"


class _Version(argparse.Action):
    """--version, reading the metadata only when asked (argparse's own action formats its
    string whenever the parser is built, and every lint run builds it)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                         nargs=0, help="print bulkreg's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        sys.stdout.write(f"bulkreg {version()}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkreg",
        description="Contract, offline validator, reference hub and conformance kit for Azure "
                    "IoT Hub Bulk Registry - Update Registry (POST /devices).",
        epilog="Run `bulkreg COMMAND --help` for a command's options.")
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_lint(commands)
    rules = commands.add_parser("rules", help="print the rule table")
    rules.add_argument("--markdown", action="store_true",
                       help="print the table of docs/rules.md as markdown (with sources)")
    path = commands.add_parser(
        "schema-path", help="print the file of a JSON Schema (for editors and other tools)")
    path.add_argument("name", nargs="?", metavar="NAME",
                      help=f"one of {', '.join(bulkreg_schema.SCHEMA_NAMES)}; "
                           "without NAME, list every schema with its file")
    bundle = commands.add_parser(
        "schema-bundle", help="print one self-contained JSON Schema (for editors)",
        description="Print schema NAME with every schema it references inlined under $defs and "
                    "no $id, so an editor needs neither network nor sibling files.")
    bundle.add_argument("name", metavar="NAME", help="e.g. BulkRequest or ImportLine")
    bundle.add_argument("--output", "-o", metavar="FILE", help="write to FILE, not stdout")
    # serve/conform are dispatched before parsing (see main); these entries are for --help only.
    commands.add_parser("serve", help="run the reference hub (needs bulkreg[conform])",
                        add_help=False)
    commands.add_parser("conform", help="run the conformance kit against an endpoint "
                                        "(needs bulkreg[conform])", add_help=False)
    commands.add_parser("sas-token", help="print a SharedAccessSignature token for curl",
                        add_help=False)
    commands.add_parser("jobs", help="import and export jobs on a hub: import|export|show|"
                                     "list|cancel (needs bulkreg[conform])", add_help=False)
    return parser


def _add_lint(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lint = commands.add_parser(
        "lint", help="check bulk payloads and import files offline",
        description="Check bulk payloads (the body of POST /devices) and import files "
                    "(one device per line) offline. Exit 0: no error; 1: findings; "
                    "2: usage error or unreadable input.")
    lint.add_argument("paths", nargs="+", metavar="PATH", help="files to check; - reads stdin")
    lint.add_argument("--format", choices=sorted(REPORTERS), default="text",
                      help="output format (default: text)")
    lint.add_argument("--mode", choices=("auto", "bulk", "import"), default="auto",
                      help="auto (default): *.jsonl, *.ndjson, *.txt are import files, other "
                           "files bulk payloads; stdin starting with '{' is an import file")
    lint.add_argument("--api-version", type=api_version, default=bulkreg_schema.API_VERSION,
                      metavar="V", help="api-version the payload is meant for "
                                        f"(default: {bulkreg_schema.API_VERSION})")
    lint.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    lint.add_argument("--output", "-o", metavar="FILE",
                      help="write the report to FILE instead of stdout")
    lint.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="colour text output: auto (default) = on a terminal unless NO_COLOR "
                           "is set")


# --- lint ----------------------------------------------------------------------------------------


def mode_of(path: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "import" if path.lower().endswith(IMPORT_SUFFIXES) else "bulk"


def _sniff(stream: IO[bytes]) -> tuple[str, list[bytes]]:
    """Guess stdin's kind from its first non-blank line: ``{`` starts an import file."""
    head: list[bytes] = []
    for line in itertools.islice(stream, _SNIFF_LINES):
        head.append(line)
        start = line.strip().removeprefix(_BOM).lstrip()
        if start:
            return ("import" if start.startswith(b"{") else "bulk"), head
    return "bulk", head


def lint_stream(stream: IO[bytes], mode: str, version: str) -> FileResult:
    """Lint stdin (or any binary stream): import files stream, bulk payloads are read whole."""
    kind, head = _sniff(stream) if mode == "auto" else (mode, [])
    if kind == "import":
        lines: Iterator[bytes] = itertools.chain(head, stream)
        return FileResult("<stdin>", validate_import(lines, api_version=version))
    data = b"".join(head) + stream.read()
    return FileResult("<stdin>", validate(data, api_version=version))


_NOT_ONE_ARRAY = ("json-syntax", "bulk-not-array")


def looks_like_import(path: str, result: FileResult) -> bool:
    """Whether a file read as a bulk payload is rather an import file: it is not one JSON array
    (json-syntax: data after the first value; bulk-not-array: one object) and its first
    non-blank line is a whole JSON object on its own."""
    report = result.report
    if report is None or not any(f.rule in _NOT_ONE_ARRAY for f in report.errors):
        return False
    try:
        with open(path, "rb") as stream:  # noqa: PTH123 - reads one line, not the file
            first = next((line for line in itertools.islice(stream, _SNIFF_LINES)
                          if line.strip()), b"")
    except OSError:
        return False
    if not first.lstrip().startswith(b"{"):
        return False
    import orjson  # noqa: PLC0415 - already loaded by the validator

    try:
        return type(orjson.loads(first)) is dict
    except orjson.JSONDecodeError:
        return False


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def lint_path(path: str, mode: str, version: str) -> FileResult:
    """Lint one file; an unreadable one gives a FileResult with ``error`` set."""
    try:
        if Path(path).is_dir():  # may raise too: a directory we cannot search
            return FileResult(path, None, f"cannot read {path}: it is a directory")
        if mode_of(path, mode) == "import":
            with open(path, "rb") as stream:  # noqa: PTH123 - binary stream, read line by line
                return FileResult(path, validate_import(stream, api_version=version))
        return FileResult(path, validate(Path(path).read_bytes(), api_version=version))
    except OSError as exc:
        return FileResult(path, None, f"cannot read {path}: {_reason(exc)}")


def _use_color(choice: str, stream: IO[str]) -> bool:
    if choice != "auto":
        return choice == "always"
    return "NO_COLOR" not in os.environ and stream.isatty()


def run_lint(args: argparse.Namespace, stdin: IO[bytes], stdout: IO[str],
             stderr: IO[str]) -> int:
    if args.paths.count("-") > 1:
        raise UsageError("stdin (-) can be given only once")
    if args.output is None:
        return _lint(args, stdin, stdout, stderr, _use_color(args.color, stdout)).exit_code
    try:
        # opened before linting, so a bad --output fails at once and not after a long run
        out = open(args.output, "w", encoding="utf-8")  # noqa: PTH123, SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {_reason(exc)}") from exc
    with out:
        summary = _lint(args, stdin, out, stderr, args.color == "always")
    # the report went to the file: the terminal still says how the run went, in one line
    stdout.write(f"{summary.text()} (report: {args.output})\n")
    return summary.exit_code


def _lint(args: argparse.Namespace, stdin: IO[bytes], out: IO[str], stderr: IO[str],
          color: bool) -> Summary:
    results: list[FileResult] = []
    for path in args.paths:
        if path == "-":
            result = lint_stream(stdin, args.mode, args.api_version)
        else:
            result = lint_path(path, args.mode, args.api_version)
        if result.error is not None:
            stderr.write(f"bulkreg lint: {result.error}\n")
        elif path != "-" and args.mode == "auto" and mode_of(path, "auto") == "bulk" \
                and looks_like_import(path, result):
            stderr.write(f"bulkreg lint: hint: {path} looks like an import file (one device "
                         "object per line); lint it with --mode import\n")
        results.append(result)
    summary = Summary.of(results, args.strict)
    REPORTERS[args.format](out, color=color).write(results, summary)
    return summary


# --- rules, schema-path --------------------------------------------------------------------------


def run_rules(args: argparse.Namespace, stdout: IO[str]) -> int:
    stdout.write(rules_markdown() if args.markdown else rules_text())
    return 0


def run_schema_path(args: argparse.Namespace, stdout: IO[str]) -> int:
    if args.name is None:
        for name in bulkreg_schema.SCHEMA_NAMES:
            stdout.write(f"{name}\t{bulkreg_schema.path(name)}\n")
        return 0
    try:
        stdout.write(f"{bulkreg_schema.path(args.name)}\n")
    except KeyError as exc:
        raise UsageError(exc.args[0]) from exc
    return 0


def run_schema_bundle(args: argparse.Namespace, stdout: IO[str]) -> int:
    import json  # noqa: PLC0415 - only this command writes JSON

    try:
        text = json.dumps(bulkreg_schema.bundle(args.name), indent=2, ensure_ascii=False) + "\n"
    except KeyError as exc:
        raise UsageError(exc.args[0]) from exc
    if args.output is None:
        stdout.write(text)
        return 0
    try:
        target = Path(args.output)
        target.parent.mkdir(parents=True, exist_ok=True)  # e.g. .vscode/ in a fresh checkout
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {_reason(exc)}") from exc
    return 0


# --- serve, conform: the conformance kit, imported only when asked for ---------------------------


# command -> module whose main(argv) runs it; imported by name so lint never loads it.
DISPATCH = {
    "serve": "bulkreg_conformance.hub.cli",
    "conform": "bulkreg_conformance.cli",
    "sas-token": "bulkreg_conformance.sas_cli",
    "jobs": "bulkreg_conformance.jobs_cli",
}


# what the [conform] extra installs (pyproject.toml), by import name
EXTRA_MODULES = frozenset({"werkzeug", "requests", "hypothesis", "schemathesis", "azure"})


def dispatch(command: str, rest: list[str]) -> int:
    try:
        module = importlib.import_module(DISPATCH[command])
        entry: Callable[[list[str]], int] = module.main
        return entry(rest)
    except ModuleNotFoundError as exc:  # also an import deferred into the command's run
        missing = exc.name or ""
        if missing.partition(".")[0] not in EXTRA_MODULES \
                and not DISPATCH[command].startswith(missing):
            raise
        raise UsageError(f"`bulkreg {command}` needs the [conform] extra (no module "
                         f"{exc.name!r}); install it with: {install_command()}") from exc


def install_command() -> str:
    """The pip command that adds the [conform] extra to this very installation: bulkreg is not
    on PyPI, so the command names where it was installed from (PEP 610 direct_url.json)."""
    import json  # noqa: PLC0415 - only this message needs them
    from importlib import metadata  # noqa: PLC0415
    from urllib.parse import unquote, urlparse  # noqa: PLC0415

    try:
        info = json.loads(metadata.distribution("bulkreg").read_text("direct_url.json") or "0")
    except (metadata.PackageNotFoundError, ValueError):
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return "pip install 'bulkreg[conform]'"  # from an index: the same index has the extra
    url = info["url"]
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict):
        return f"pip install 'bulkreg[conform] @ {vcs.get('vcs', 'git')}+{url}@" \
               f"{vcs.get('commit_id', '')}'"
    if url.startswith("file://") and isinstance(info.get("dir_info"), dict):
        editable = "-e " if info["dir_info"].get("editable") else ""
        return f"pip install {editable}'{unquote(urlparse(url).path)}[conform]'"
    return f"pip install 'bulkreg[conform] @ {url}'"


# --- main ----------------------------------------------------------------------------------------


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    """Parsed arguments, or the exit code argparse chose (--help: 0, bad usage: 2).

    An argument no command knows is reported by that command's parser, with its usage and the
    nearest option (``lint --fromat``: lint's usage, "did you mean --format?"), not by the
    top-level parser, which would show the top-level usage.
    """
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            command = _command_parser(parser, args.command)
            command.error(f"unrecognized arguments: {' '.join(extra)}{_suggest(command, extra)}")
        return args
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2


def _command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # argparse keeps its subparsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    return parser


def _suggest(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    import difflib  # noqa: PLC0415 - only a typo pays for it

    known = [o for action in parser._actions for o in action.option_strings]
    for arg in extra:
        if arg.startswith("--"):
            near = difflib.get_close_matches(arg.partition("=")[0], known, n=1)
            if near:
                return f" (did you mean {near[0]}?)"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    stdout, stderr = sys.stdout, sys.stderr
    _tolerant(stdout)
    try:
        if not args_list:
            # no command: the whole help, not argparse's "arguments are required" line; exit 2
            # as for any usage error, so a script that lost its command does not pass
            build_parser().print_help(stderr)
            return 2
        if args_list[0] in DISPATCH:
            # serve/conform own their arguments entirely; argparse must not touch them.
            return dispatch(args_list[0], args_list[1:])
        parsed = _parse(build_parser(), args_list)
        if isinstance(parsed, int):
            return parsed
        if parsed.command == "lint":
            return run_lint(parsed, sys.stdin.buffer, stdout, stderr)
        if parsed.command == "rules":
            return run_rules(parsed, stdout)
        if parsed.command == "schema-bundle":
            return run_schema_bundle(parsed, stdout)
        return run_schema_path(parsed, stdout)
    except UsageError as exc:
        stderr.write(f"bulkreg: {exc}\n")
        return 2
    except KeyboardInterrupt:
        stderr.write("bulkreg: interrupted\n")
        return 130
    except BrokenPipeError:
        # the reader went away (`bulkreg lint ... | head`): stop quietly, as cat does.
        _silence_stdout()
        return 1


def _tolerant(stream: IO[str]) -> None:
    # Messages quote the payload; a terminal that cannot show a character must not crash the run.
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        stream.reconfigure(errors="backslashreplace")


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
