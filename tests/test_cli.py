"""The `bulkreg` command line: exit codes, inputs (files, stdin, import-mode detection), unreadable
paths, argument errors, the rules/schema-path commands, serve/conform dispatch and the lightness
of the lint path."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bulkreg_schema
from bulkreg_validator import RULES, cli

ROOT = Path(__file__).resolve().parents[1]
GOOD = b'[{"id": "dev-1", "importMode": "create"}, {"id": "dev-2", "importMode": "create"}]'
BAD_ID = b'[{"id": "bad id", "importMode": "create"}]'  # a space is not allowed in an id
WARN_ONLY = b'[{"id": "dev-1", "importMode": "Create"}]'  # enum-case: a warning
IMPORT_DUP = b'{"id": "dev-1", "importMode": "create"}\n{"id": "dev-1", "importMode": "create"}\n'
IMPORT_BLANK = b'{"id": "dev-1", "importMode": "create"}\n\n'  # import-blank-line: a warning


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def rules_in(out: str) -> list[str]:
    """The rule column of text-format finding lines."""
    return [line.split()[2] for line in out.splitlines() if not line.startswith("bulkreg lint:")]


# --- exit codes ----------------------------------------------------------------------------------


def test_clean_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lint", write(tmp_path, "ok.json", GOOD))
    assert (code, err) == (0, "")
    assert out == "bulkreg lint: ok: 1 file, 2 entries, 0 errors, 0 warnings\n"


def test_finding_exits_1_with_the_text_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.json", BAD_ID)
    code, out, _ = run(capsys, "lint", path)
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith(f"{path}:1:")
    _, _, rest = first.partition(f"{path}:1:")
    column, _, rest = rest.partition(": ")
    assert column.isdigit()
    assert rest.startswith("error device-id-format [ArgumentInvalid] id 'bad id'")
    assert out.splitlines()[-1].startswith("bulkreg lint: failed: 1 file, 1 entry, 1 error")


def test_warnings_pass_unless_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "warn.json", WARN_ONLY)
    code, out, _ = run(capsys, "lint", path)
    assert code == 0
    assert rules_in(out) == ["enum-case"]
    code, out, _ = run(capsys, "lint", "--strict", path)
    assert code == 1
    assert "(--strict: warnings fail)" in out


def test_error_code_is_left_out_when_the_hub_accepts(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "devices.txt", IMPORT_BLANK)
    code, out, _ = run(capsys, "lint", path)
    assert code == 0
    assert RULES["import-blank-line"].code is None
    assert out.splitlines()[0] == (
        f"{path}:2:1: warning import-blank-line "
        "blank line: an import file holds one device object per line")


@pytest.mark.parametrize("data", [b"", b"\x00\xff\xfe garbage", b"[1, 2,", b"\xef\xbb\xbf[]"],
                         ids=["empty", "binary", "truncated", "bom"])
def test_hostile_files_are_findings_not_tracebacks(tmp_path: Path, data: bytes,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lint", write(tmp_path, "x.json", data))
    assert (code, err) == (1, "")
    assert rules_in(out)[0].startswith(("json-", "bulk-"))


# --- unreadable inputs and usage errors: exit 2, one line on stderr ------------------------------


def assert_one_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.json")
    code, out, err = run(capsys, "lint", missing)
    assert code == 2
    assert_one_line(err, f"cannot read {missing}", "No such file")
    assert "1 unreadable" in out


def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "lint", str(tmp_path))
    assert code == 2
    assert_one_line(err, "it is a directory")


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "secret.json", GOOD)
    Path(path).chmod(0)
    if os.geteuid() == 0:
        # root reads anything: drop the effective uid to nobody around the call
        os.seteuid(65534)
        try:
            code, _, err = run(capsys, "lint", path)
        finally:
            os.seteuid(0)
    else:
        code, _, err = run(capsys, "lint", path)
    assert code == 2
    assert_one_line(err, f"cannot read {path}", "Permission denied")


def test_unreadable_wins_over_findings_and_the_rest_is_still_linted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "bad.json", BAD_ID)
    code, out, err = run(capsys, "lint", bad, str(tmp_path / "missing.json"))
    assert code == 2
    assert rules_in(out) == ["device-id-format"]
    assert_one_line(err, "missing.json")


@pytest.mark.parametrize("version", ["2021-4-12", "latest", "2021-04-12-beta", "20210412", ""])
def test_invalid_api_version(tmp_path: Path, version: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lint", "--api-version", version, write(tmp_path, "a.json", GOOD))
    assert (code, out) == (2, "")
    assert "is not an api-version: expected YYYY-MM-DD or YYYY-MM-DD-preview" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("version", ["2021-04-12", "2020-05-31-preview"])
def test_valid_api_version(tmp_path: Path, version: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "lint", "--api-version", version, write(tmp_path, "a.json", GOOD))
    assert code == 0


def test_api_version_reaches_the_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # twin arrays need api-version 2019-10-01 or later
    path = write(tmp_path, "a.json",
                 b'[{"id": "d", "importMode": "create", "tags": {"list": [1, 2]}}]')
    assert run(capsys, "lint", path)[0] == 0
    code, out, _ = run(capsys, "lint", "--api-version", "2019-03-30", path)
    assert code == 1
    assert rules_in(out) == ["twin-array-api-version"]


@pytest.mark.parametrize("argv", [[], ["lint"], ["lint", "--format", "xml", "a.json"],
                                  ["lint", "--mode", "csv", "a.json"], ["frobnicate"]])
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "usage: bulkreg" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("argv", "usage", "hint"), [
    (["lint", "--fromat", "json", "a.json"], "usage: bulkreg lint", "did you mean --format?"),
    (["lint", "a.json", "--colour", "never"], "usage: bulkreg lint", "did you mean --color?"),
    (["lint", "--strictt", "a.json"], "usage: bulkreg lint", "did you mean --strict?"),
    (["schema-bundle", "BulkRequest", "--outptu", "x"], "usage: bulkreg schema-bundle",
     "did you mean --output?"),
    (["rules", "--markdwn"], "usage: bulkreg rules", "did you mean --markdown?"),
])
def test_an_unknown_option_gets_its_commands_usage(argv: list[str], usage: str, hint: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(usage), err
    assert "COMMAND" not in err  # not the top-level usage
    assert "unrecognized arguments: " in err and hint in err


def test_the_lint_synopsis_lists_every_lint_option() -> None:
    """docs/lint.md's synopsis of ``bulkreg lint`` names every option the parser has."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "lint.md").read_text(encoding="utf-8")
    synopsis = page.split("```\nbulkreg lint ", 1)[1].split("```", 1)[0]
    lint = cli._command_parser(cli.build_parser(), "lint")
    options = [a.option_strings[-1] if a.option_strings[-1].startswith("--")
               else a.option_strings[0] for a in lint._actions if a.option_strings]
    missing = [o for o in options if o not in ("--help",) and o not in synopsis]
    assert not missing, f"docs/lint.md's lint synopsis lacks {missing}"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", "--help")
    assert code == 0
    assert "--api-version" in out


def test_bare_bulkreg_prints_the_whole_help_and_exits_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert (code, out) == (2, "")
    assert err == cli.build_parser().format_help()
    for command in ("lint", "rules", "schema-path", "schema-bundle", "serve", "conform",
                    "sas-token", "--version"):
        assert command in err
    assert "required" not in err


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib  # noqa: PLC0415
    from importlib import metadata  # noqa: PLC0415

    code, out, err = run(capsys, "--version")
    assert (code, err) == (0, "")
    assert out == f"bulkreg {metadata.version('bulkreg')}\n"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert out == f"bulkreg {pyproject['project']['version']}\n", \
        "the installed metadata is stale: reinstall (pip install -e '.[test]')"


def test_version_of_a_checkout_that_is_not_installed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata  # noqa: PLC0415

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, "bulkreg (unknown: bulkreg is not installed as a distribution)\n")


def test_stdin_only_once(monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, GOOD)
    code, _, err = run(capsys, "lint", "-", "-")
    assert code == 2
    assert_one_line(err, "stdin (-) can be given only once")


# --- modes: which files are import files ---------------------------------------------------------


@pytest.mark.parametrize("name", ["devices.txt", "d.jsonl", "d.ndjson", "D.JSONL"])
def test_auto_mode_reads_import_files_by_suffix(tmp_path: Path, name: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", write(tmp_path, name, IMPORT_DUP))
    assert code == 1
    assert rules_in(out) == ["duplicate-id"]
    assert ":2:" in out.splitlines()[0]  # the second line holds the duplicate


def test_auto_mode_reads_other_files_as_bulk(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", write(tmp_path, "d.json", IMPORT_DUP))
    assert code == 1
    assert "duplicate-id" not in rules_in(out)
    assert rules_in(out)[0] == "json-syntax"  # two JSON texts are not one body


def test_explicit_modes_override_the_suffix(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    as_json = write(tmp_path, "d.json", IMPORT_DUP)
    assert rules_in(run(capsys, "lint", "--mode", "import", as_json)[1]) == ["duplicate-id"]
    as_txt = write(tmp_path, "payload.txt", GOOD)
    assert run(capsys, "lint", "--mode", "bulk", as_txt)[0] == 0
    code, out, _ = run(capsys, "lint", as_txt)  # an import line is an object, not an array
    assert code == 1
    assert rules_in(out) == ["value-type"]


@pytest.mark.parametrize(("data", "hinted"), [
    (IMPORT_DUP, True),                                            # two objects, two lines
    (b'\n  {"id": "dev-1", "importMode": "create"}\n', True),       # one line: one object
    (b'{"id": "a"}\n{"id": "b"\n', True),                          # a later line is broken
    (GOOD, False),                                                 # a bulk payload
    (BAD_ID, False),                                               # a bulk payload, findings
    (b'{\n  "id": "dev-1"\n}\n', False),                           # one indented object
    (b'[{"id": "a"}]\n[{"id": "b"}]\n', False),                     # two arrays
    (b'{"id": "a"} trailing\n', False),                            # no JSON object alone
])
def test_an_import_file_named_json_gets_a_hint(tmp_path: Path, data: bytes, hinted: bool,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "devices.json", data)
    _, out, err = run(capsys, "lint", path)
    hint = f"bulkreg lint: hint: {path} looks like an import file (one device object per " \
           "line); lint it with --mode import\n"
    assert err == (hint if hinted else "")
    assert out.splitlines()[-1].startswith("bulkreg lint: ")  # the report itself is unchanged
    # with the mode said explicitly there is nothing to hint
    assert run(capsys, "lint", "--mode", "bulk", path)[2] == ""


def test_no_hint_for_a_file_already_read_as_an_import_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "devices.jsonl", b'{"id": "a"}\n{"id": "b"\n')  # line 2 is broken
    code, out, err = run(capsys, "lint", path)
    assert (code, err) == (1, "")
    assert rules_in(out) == ["json-syntax"]


def test_mode_of() -> None:
    assert cli.mode_of("a/devices.TXT", "auto") == "import"
    assert cli.mode_of("a/devices.json", "auto") == "bulk"
    assert cli.mode_of("a/devices.json", "import") == "import"
    assert cli.mode_of("a/devices.jsonl", "bulk") == "bulk"


# --- stdin ---------------------------------------------------------------------------------------


def test_stdin_bulk(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, BAD_ID)
    code, out, _ = run(capsys, "lint", "-")
    assert code == 1
    assert out.startswith("<stdin>:1:")
    assert rules_in(out) == ["device-id-format"]


def test_stdin_starting_with_an_object_is_an_import_file(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, b"\n  \n" + IMPORT_DUP)
    code, out, _ = run(capsys, "lint", "-")
    assert code == 1
    assert rules_in(out) == ["import-blank-line", "import-blank-line", "duplicate-id"]
    assert out.splitlines()[2].startswith("<stdin>:4:")  # line numbers count the sniffed lines


def test_stdin_with_explicit_bulk_mode(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, IMPORT_DUP)
    code, out, _ = run(capsys, "lint", "--mode", "bulk", "-")
    assert code == 1
    assert rules_in(out)[0] == "json-syntax"


def test_stdin_and_files_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, GOOD)
    code, out, _ = run(capsys, "lint", "-", write(tmp_path, "ok.json", GOOD))
    assert code == 0
    assert "2 files, 4 entries" in out


# --- output and colour ---------------------------------------------------------------------------


def test_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    code, out, _ = run(capsys, "lint", "--format", "json", "--output", str(report),
                       write(tmp_path, "bad.json", BAD_ID))
    # the report goes to the file; the terminal gets the one-line summary
    assert code == 1
    assert out == ("bulkreg lint: failed: 1 file, 1 entry, 1 error, 0 warnings "
                   f"(report: {report})\n")
    assert json.loads(report.read_text())["summary"]["errors"] == 1


def test_output_file_that_cannot_be_written(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "lint", "--output", str(tmp_path / "no" / "such" / "dir.txt"),
                       write(tmp_path, "ok.json", GOOD))
    assert code == 2
    assert_one_line(err, "cannot write")


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli._use_color("auto", FakeTty())
    assert not cli._use_color("auto", io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli._use_color("auto", FakeTty())
    assert cli._use_color("always", io.StringIO())
    assert not cli._use_color("never", FakeTty())


def test_colour_always(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.json", BAD_ID)
    assert "\033[31merror\033[0m" in run(capsys, "lint", "--color", "always", path)[1]
    assert "\033[" not in run(capsys, "lint", path)[1]  # captured stdout is no tty


# --- rules, schema-path, serve/conform -----------------------------------------------------------


def test_rules_text_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed == list(RULES)


def test_rules_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules", "--markdown")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == ("| rule | errorCode | severity | evidence | scope | checked by | what "
                        "| source |")
    assert len(lines) == len(RULES) + 2
    assert lines[2].startswith("| json-syntax | IotHubFormatError | error |")


def test_schema_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema-path", "BulkRequest")
    assert code == 0
    path = Path(out.strip())
    assert path == bulkreg_schema.path("BulkRequest")
    assert json.loads(path.read_text())["$id"].endswith("/BulkRequest.json")


def test_schema_path_lists_every_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema-path")
    assert code == 0
    names = [line.split("\t")[0] for line in out.splitlines()]
    assert names == list(bulkreg_schema.SCHEMA_NAMES)
    assert all(Path(line.split("\t")[1]).is_file() for line in out.splitlines())


def test_schema_path_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "schema-path", "Nope")
    assert (code, out) == (2, "")
    assert_one_line(err, "no schema named 'Nope'", "BulkRequest")


def test_conform_without_the_kit_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(cli.DISPATCH, "conform", "bulkreg_conformance_not_installed.cli")
    code, _, err = run(capsys, "conform", "--endpoint", "http://127.0.0.1:1")
    assert code == 2
    assert_one_line(err, "needs the [conform] extra", "pip install ", "[conform]")


# A Python without the [conform] extra: importing any of its modules fails, as it would.
WITHOUT_EXTRA = """
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"requests", "werkzeug", "hypothesis", "schemathesis"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
for name in [m for m in sys.modules if m.partition(".")[0] in {"requests", "werkzeug"}]:
    del sys.modules[name]
from bulkreg_validator.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv", [["conform"], ["serve"], ["serve", "--port", "0"],
                                  ["conform", "--endpoint", "http://127.0.0.1:1"],
                                  ["conform", "--help"]])
def test_without_the_extra_one_line_names_the_install_command(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", WITHOUT_EXTRA, *argv], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert_one_line(proc.stderr, f"`bulkreg {argv[0]}` needs the [conform] extra",
                    "install it with: pip install ")
    # this checkout is installed editable: the command reinstalls it with the extra
    assert "[conform]'" in proc.stderr


@pytest.mark.parametrize(("info", "command"), [
    (None, "pip install 'bulkreg[conform]'"),
    ({"url": "file:///src/bulk%20reg", "dir_info": {"editable": True}},
     "pip install -e '/src/bulk reg[conform]'"),
    ({"url": "file:///src/bulkreg", "dir_info": {}}, "pip install '/src/bulkreg[conform]'"),
    ({"url": "https://github.com/o/bulkreg", "vcs_info": {"vcs": "git", "commit_id": "abc"}},
     "pip install 'bulkreg[conform] @ git+https://github.com/o/bulkreg@abc'"),
    ({"url": "file:///w/bulkreg-0.1.0-py3-none-any.whl", "archive_info": {}},
     "pip install 'bulkreg[conform] @ file:///w/bulkreg-0.1.0-py3-none-any.whl'"),
])
def test_install_command_follows_where_bulkreg_came_from(
        monkeypatch: pytest.MonkeyPatch, info: dict[str, object] | None, command: str) -> None:
    from importlib import metadata  # noqa: PLC0415

    class Installed:
        def read_text(self, name: str) -> str | None:
            return json.dumps(info) if info is not None and name == "direct_url.json" else None

    monkeypatch.setattr(metadata, "distribution", lambda name: Installed())
    assert cli.install_command() == command


def test_serve_passes_its_arguments_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fake_hub_cli.py").write_text(textwrap.dedent("""
        seen = []
        def main(argv):
            seen.append(argv)
            return 7
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.DISPATCH, "serve", "fake_hub_cli")
    code, _, _ = run(capsys, "serve", "--help", "--port", "0", "lint")
    import fake_hub_cli  # type: ignore[import-not-found]  # noqa: PLC0415 - made above

    assert code == 7
    assert fake_hub_cli.seen == [["--help", "--port", "0", "lint"]]


# --- processes: python -m, the console script, and the weight of the lint path ------------------

HEAVY = ("hypothesis", "schemathesis", "requests", "werkzeug", "bulkreg_conformance")

LIGHTNESS = """
import sys
from bulkreg_validator import cli
code = cli.main(["lint", "--format", sys.argv[1], sys.argv[2]])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print("RESULT", code, ",".join(heavy), "xml.etree" in sys.modules,
      "importlib.metadata" in sys.modules)
"""


@pytest.mark.parametrize("fmt", ["text", "junit"])
def test_lint_stays_light(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, "bad.json", BAD_ID)
    proc = subprocess.run(
        [sys.executable, "-c", LIGHTNESS.format(heavy=set(HEAVY)), fmt, path],
        capture_output=True, text=True, timeout=60, check=False)
    result = proc.stdout.splitlines()[-1].split(" ")
    assert result[:3] == ["RESULT", "1", ""], proc.stdout + proc.stderr
    # xml.etree loads only for the format that needs it
    assert result[3] == ("True" if fmt == "junit" else "False")
    assert result[4] == "False"  # --version reads the metadata only when asked


def test_python_dash_m(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bulkreg_validator", "lint", write(tmp_path, "bad.json", BAD_ID)],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "device-id-format [ArgumentInvalid]" in proc.stdout


def console_script() -> Path:
    script = Path(sys.executable).with_name("bulkreg")
    if not script.exists():
        pytest.skip("bulkreg is not installed next to this interpreter")
    return script


def test_console_script_version_and_bare(tmp_path: Path) -> None:
    from importlib import metadata  # noqa: PLC0415

    script = console_script()
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                          timeout=60, check=False, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0, f"bulkreg {metadata.version('bulkreg')}\n", "")
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=60,
                          check=False, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith("usage: bulkreg [-h] [--version] COMMAND ...\n")
    assert "lint" in proc.stderr and "conform" in proc.stderr


def test_console_script_and_stdin(tmp_path: Path) -> None:
    script = console_script()
    proc = subprocess.run([str(script), "lint", "-"], input=IMPORT_DUP, capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 1
    assert b"<stdin>:2:" in proc.stdout
    assert b"duplicate-id" in proc.stdout


# --- schema-bundle: one self-contained schema for editors ----------------------------------------


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def resolve(doc: dict[str, object], ref: str) -> object:
    node: object = doc
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict), ref
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.mark.parametrize("name", ["BulkRequest", "ImportLine"])
def test_schema_bundle_is_self_contained(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema-bundle", name)
    assert code == 0
    doc = json.loads(out)
    assert "$id" not in out  # nothing for an editor to fetch
    assert refs(doc)
    for ref in refs(doc):
        assert ref.startswith("#/$defs/"), ref
        assert isinstance(resolve(doc, ref), dict | bool), ref


@pytest.mark.parametrize(("payload", "valid"), [
    (GOOD, True),
    (BAD_ID, False),
    (b'[{"id": "d", "importMode": "create", "status": "paused"}]', False),
    (b'[{"id": "d", "importMode": "create", "tags": {"a.b": 1}}]', False),  # '.' in a twin key
    (b'[{"id": "d", "importMode": "create", "eTg": "x"}]', False),  # the schema is closed
    (b"[" + b",".join(b'{"id": "d%d", "importMode": "create"}' % i for i in range(101)) + b"]",
     False),
    (b"[]", False),
])
def test_schema_bundle_agrees_with_the_schema_files(payload: bytes, valid: bool) -> None:
    import jsonschema  # noqa: PLC0415 - test-only dependency
    import referencing  # noqa: PLC0415

    bundled = jsonschema.Draft202012Validator(bulkreg_schema.bundle("BulkRequest"))
    documents = bulkreg_schema.registry()
    registry = referencing.Registry().with_resources(
        (uri, referencing.Resource.from_contents(doc)) for uri, doc in documents.items())
    files = jsonschema.Draft202012Validator(
        documents[bulkreg_schema.BASE_URI + "BulkRequest.json"], registry=registry)
    instance = json.loads(payload)
    assert files.is_valid(instance) is valid
    assert bundled.is_valid(instance) is valid


def test_schema_bundle_to_a_file_and_unknown_names(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bulk.schema.json"
    assert run(capsys, "schema-bundle", "BulkRequest", "-o", str(target))[0] == 0
    assert json.loads(target.read_text())["$ref"] == "#/$defs/BulkRequest"
    code, _, err = run(capsys, "schema-bundle", "Nope")
    assert code == 2
    assert_one_line(err, "no schema named 'Nope'")


def test_schema_bundle_creates_missing_folders(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / ".vscode" / "deeper" / "bulkreg-bulk.schema.json"
    assert run(capsys, "schema-bundle", "BulkRequest", "-o", str(target)) == (0, "", "")
    assert json.loads(target.read_text()) == bulkreg_schema.bundle("BulkRequest")
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "schema-bundle", "BulkRequest", "-o", str(blocker / "x.json"))
    assert code == 2
    assert_one_line(err, "cannot write")


def test_one_bundler_for_editors_and_openapi() -> None:
    """openapi.json's components are the bundle of every schema, refs under components."""
    components = bulkreg_schema.openapi()["components"]["schemas"]
    every = bulkreg_schema.bundle(*bulkreg_schema.SCHEMA_NAMES,
                                  defs="#/components/schemas/")["$defs"]
    # the same schemas, but the operation's accept unknown members (the service ignores them);
    # the SDK reads add their own response schemas (Module, RegistryStatistics, ...)
    shared = {name: components[name] for name in every}
    assert shared == _accepting_unknown_members(every)
    assert shared != every
    single = bulkreg_schema.bundle("BulkRequest")
    assert set(single["$defs"]) < set(every)  # only what BulkRequest reaches
    assert single["$defs"]["BulkRequest"]["items"] == {"$ref": "#/$defs/ExportImportDevice"}


def _accepting_unknown_members(node: object) -> object:
    if isinstance(node, dict):
        return {k: _accepting_unknown_members(v) for k, v in node.items()
                if not (k == "additionalProperties" and v is False)}
    if isinstance(node, list):
        return [_accepting_unknown_members(v) for v in node]
    return node
