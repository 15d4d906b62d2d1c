"""Reporters: how `bulkreg lint` writes its results (text, json, github, junit, sarif).

A reporter gets every file's result at once and writes one document; ``REPORTERS`` maps a
``--format`` name to its class. The machine formats carry everything the text format shows
(severity, rule, errorCode, location, message) plus the JSON pointer and evidence level. Modules
only some formats need (json, xml, urllib) are imported inside those reporters, so the text path
stays light.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import PurePath
from typing import IO, Any, ClassVar, NamedTuple

from ._findings import Finding, Report
from ._rules import RULES, Rule

__all__ = ["REPORTERS", "FileResult", "Reporter", "Summary", "rules_markdown", "rules_text"]

TOOL = "bulkreg"
INFO_URI = "https://github.com/bulkreg/bulkreg"


class FileResult(NamedTuple):
    """One linted input: its report, or why it could not be read."""

    path: str  # as the user wrote it; "<stdin>" for -
    report: Report | None
    error: str | None = None  # set when the input could not be read


class Summary(NamedTuple):
    files: int
    entries: int
    errors: int
    warnings: int
    unreadable: int
    truncated: int
    strict: bool
    exit_code: int

    @classmethod
    def of(cls, results: Sequence[FileResult], strict: bool) -> Summary:
        reports = [r.report for r in results if r.report is not None]
        errors = sum(len(rep.errors) for rep in reports)
        warnings = sum(len(rep.warnings) for rep in reports)
        unreadable = sum(1 for r in results if r.error is not None)
        if unreadable:
            code = 2
        elif errors or (strict and warnings):
            code = 1
        else:
            code = 0
        return cls(len(results), sum(rep.entries for rep in reports), errors, warnings,
                   unreadable, sum(rep.truncated for rep in reports), strict, code)

    def fails(self, finding: Finding) -> bool:
        """Whether this finding makes the run fail."""
        return finding.severity == "error" or self.strict

    def text(self) -> str:
        parts = [f"{_plural(self.files, 'file')}, {_plural(self.entries, 'entry', 'entries')}",
                 _plural(self.errors, "error"), _plural(self.warnings, "warning")]
        if self.unreadable:
            parts.append(f"{self.unreadable} unreadable")
        if self.truncated:
            parts.append(f"{self.truncated} more findings not shown")
        verdict = {0: "ok", 1: "failed", 2: "failed"}[self.exit_code]
        strict = " (--strict: warnings fail)" if self.strict and self.warnings else ""
        return f"bulkreg lint: {verdict}: {', '.join(parts)}{strict}"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _line(finding: Finding) -> int:
    return finding.line or 1


def _column(finding: Finding) -> int:
    return finding.column or 1


def _findings(results: Sequence[FileResult]) -> Iterable[tuple[FileResult, Finding]]:
    for result in results:
        if result.report is not None:
            for finding in result.report.findings:
                yield result, finding


class Reporter:
    """Writes all results as one document to ``stream``."""

    name: ClassVar[str]

    def __init__(self, stream: IO[str], *, color: bool = False) -> None:
        self.stream = stream
        self.color = color

    def write(self, results: Sequence[FileResult], summary: Summary) -> None:
        raise NotImplementedError


# --- text ----------------------------------------------------------------------------------------

_STYLE = {"error": "\033[31m", "warning": "\033[33m", "path": "\033[1m", "rule": "\033[36m",
          "ok": "\033[32m", "failed": "\033[1;31m"}
_RESET = "\033[0m"


class TextReporter(Reporter):
    """``path:line:col: severity rule [errorCode] message``, then one summary line."""

    name = "text"

    def paint(self, text: str, style: str) -> str:
        return f"{_STYLE[style]}{text}{_RESET}" if self.color else text

    def line(self, path: str, finding: Finding) -> str:
        code = f" [{finding.code}]" if finding.code else ""
        where = self.paint(f"{path}:{_line(finding)}:{_column(finding)}:", "path")
        return (f"{where} {self.paint(finding.severity, finding.severity)} "
                f"{self.paint(finding.rule, 'rule')}{code} {finding.message}")

    def write(self, results: Sequence[FileResult], summary: Summary) -> None:
        # Unreadable inputs are reported on stderr by the CLI, as they happen.
        out = [self.line(result.path, finding) for result, finding in _findings(results)]
        text = summary.text()
        out.append(self.paint(text, "ok" if summary.exit_code == 0 else "failed"))
        self.stream.write("\n".join(out) + "\n")


# --- json ----------------------------------------------------------------------------------------


def _file_json(result: FileResult) -> dict[str, Any]:
    report = result.report
    doc: dict[str, Any] = {
        "path": result.path,
        "entries": report.entries if report else 0,
        "findings": [f._asdict() for f in report.findings] if report else [],
    }
    if report is not None and report.truncated:
        doc["truncated"] = report.truncated
    if result.error is not None:
        doc["error"] = result.error
    return doc


class JsonReporter(Reporter):
    """``{"files": [{path, entries, findings: [Finding...]}], "summary": {...}}``."""

    name = "json"

    def write(self, results: Sequence[FileResult], summary: Summary) -> None:
        import json  # noqa: PLC0415 - only this format needs it

        doc = {"files": [_file_json(r) for r in results], "summary": summary._asdict()}
        self.stream.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# --- github --------------------------------------------------------------------------------------


def _gh_data(text: str) -> str:
    # Escaping as in @actions/core's command.ts: '%', CR and LF in data; also ':' and ',' in
    # property values.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


class GithubReporter(Reporter):
    """GitHub Actions workflow commands: one ``::error``/``::warning`` annotation per finding."""

    name = "github"

    def annotation(self, path: str, finding: Finding) -> str:
        code = f"[{finding.code}] " if finding.code else ""
        props = (f"file={_gh_property(path)},line={_line(finding)},col={_column(finding)},"
                 f"title={_gh_property(finding.rule)}")
        return f"::{finding.severity} {props}::{_gh_data(code + finding.message)}"

    def write(self, results: Sequence[FileResult], summary: Summary) -> None:
        out = [self.annotation(result.path, finding) for result, finding in _findings(results)]
        out.extend(
            f"::error file={_gh_property(r.path)},title=unreadable::{_gh_data(r.error)}"
            for r in results if r.error is not None
        )
        out.append(summary.text())
        self.stream.write("\n".join(out) + "\n")


# --- junit ---------------------------------------------------------------------------------------


class JunitReporter(Reporter):
    """JUnit XML: a testsuite per file, a testcase per finding (one passing case if clean).

    Errors (and warnings under --strict) are ``<failure>``s; other warnings are passing cases
    whose ``<system-out>`` holds the warning, so nothing is lost. An unreadable file is an
    ``<error>``.
    """

    name = "junit"

    def write(self, results: Sequence[FileResult], summary: Summary) -> None:
        import xml.etree.ElementTree as ET  # noqa: PLC0415 - only this format needs it

        root = ET.Element("testsuites", name="bulkreg lint")
        totals = {"tests": 0, "failures": 0, "errors": 0}
        text = TextReporter(self.stream)
        for result in results:
            suite = ET.SubElement(root, "testsuite", name=result.path)
            counts = self.suite(ET, suite, result, summary, text)
            for key, value in counts.items():
                suite.set(key, str(value))
                totals[key] += value
            suite.set("skipped", "0")
        for key, value in totals.items():
            root.set(key, str(value))
        ET.indent(root)
        self.stream.write(ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")

    @staticmethod
    def suite(ET: Any, suite: Any, result: FileResult, summary: Summary,
              text: TextReporter) -> dict[str, int]:
        if result.error is not None:
            case = ET.SubElement(suite, "testcase", name="read", classname=result.path)
            ET.SubElement(case, "error", message=result.error, type="unreadable")
            return {"tests": 1, "failures": 0, "errors": 1}
        assert result.report is not None
        findings = result.report.findings
        if not findings:
            ET.SubElement(suite, "testcase", name="valid", classname=result.path)
            return {"tests": 1, "failures": 0, "errors": 0}
        failures = 0
        for finding in findings:
            name = f"{finding.rule} at {finding.pointer or '/'} " \
                   f"(line {_line(finding)}, column {_column(finding)})"
            case = ET.SubElement(suite, "testcase", name=name, classname=result.path)
            detail = text.line(result.path, finding) + f"\npointer: {finding.pointer or '/'}" \
                f"\nevidence: {finding.evidence}"
            if summary.fails(finding):
                failures += 1
                failure = ET.SubElement(case, "failure", message=finding.message,
                                        type=finding.code or finding.rule)
                failure.text = detail
            else:
                ET.SubElement(case, "system-out").text = detail
        return {"tests": len(findings), "failures": failures, "errors": 0}


# --- sarif ---------------------------------------------------------------------------------------

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _sarif_rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "shortDescription": {"text": rule.summary},
        "defaultConfiguration": {"level": rule.severity},
        "properties": {"errorCode": rule.code, "evidence": rule.evidence, "scope": rule.scope,
                       "checkedBy": rule.where, "source": rule.source},
    }


def _artifact_uri(path: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415 - only this format needs it

    pure = PurePath(path)
    if pure.is_absolute():
        return pure.as_uri()
    return quote(pure.as_posix())


class SarifReporter(Reporter):
    """SARIF 2.1.0: one run; tool.driver.rules is the whole rule table, results point into it."""

    name = "sarif"

    def write(self, results: Sequence[FileResult], summary: Summary) -> None:
        import json  # noqa: PLC0415 - only this format needs it

        index = {rule_id: i for i, rule_id in enumerate(RULES)}
        run: dict[str, Any] = {
            "tool": {"driver": {"name": TOOL, "version": _version(), "informationUri": INFO_URI,
                                "rules": [_sarif_rule(rule) for rule in RULES.values()]}},
            "results": [self.result(r.path, f, index) for r, f in _findings(results)],
            "invocations": [self.invocation(results, summary)],
        }
        doc = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
        self.stream.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")

    @staticmethod
    def result(path: str, finding: Finding, index: dict[str, int]) -> dict[str, Any]:
        location: dict[str, Any] = {
            "physicalLocation": {
                "artifactLocation": {"uri": _artifact_uri(path)},
                "region": {"startLine": _line(finding), "startColumn": _column(finding)},
            },
        }
        if finding.pointer:
            # the JSON pointer names the member, as a logical location inside the artifact
            location["logicalLocations"] = [{"fullyQualifiedName": finding.pointer}]
        return {
            "ruleId": finding.rule,
            "ruleIndex": index[finding.rule],
            "level": finding.severity,
            "message": {"text": finding.message},
            "locations": [location],
            "properties": {"errorCode": finding.code, "pointer": finding.pointer,
                           "evidence": finding.evidence},
        }

    @staticmethod
    def invocation(results: Sequence[FileResult], summary: Summary) -> dict[str, Any]:
        notes = [{"level": "error", "message": {"text": r.error},
                  "locations": [{"physicalLocation": {
                      "artifactLocation": {"uri": _artifact_uri(r.path)}}}]}
                 for r in results if r.error is not None]
        doc: dict[str, Any] = {"executionSuccessful": summary.unreadable == 0,
                               "exitCode": summary.exit_code}
        if notes:
            doc["toolExecutionNotifications"] = notes
        return doc


def _version() -> str:
    # importlib.metadata costs milliseconds at import; only the sarif format names the version
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("bulkreg")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "0+unknown"


REPORTERS: dict[str, type[Reporter]] = {
    cls.name: cls for cls in (TextReporter, JsonReporter, GithubReporter, JunitReporter,
                              SarifReporter)
}


# --- the rule table, for `bulkreg rules` and docs/rules.md --------------------------------------

RULE_COLUMNS = ("rule", "errorCode", "severity", "evidence", "scope", "checked by", "what",
                "source")


# The sources a rule cites: keys of the evidence document, each a heading there (its anchor is the
# key in lower case), and GitHub issues, listed there under "Issues". Links are relative to
# docs/, where the table is shown (docs/rules.md) beside the evidence document.
EVIDENCE = "evidence.md"
SOURCE_KEYS = ("SWG-0313", "SWG", "REST", "PY270", "PY210", "PY223", "PYNEW", "CS2", "CS",
               "NODE", "JAVA", "DOC-IR", "DOC-TW", "DOC-BULK", "DOC-QT", "DOC-SEC", "EDGE",
               "IMPORT-LOG", "RFC 8259")
_SOURCE_KEY = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, SOURCE_KEYS)) + r")(?![\w-])")
_ISSUE = re.compile(r"(?<![\w/#-])([A-Za-z][\w.-]*#\d+)")


def cite(source: str) -> str:
    """``source`` with each key and issue linked to its entry in the evidence document."""
    linked = _SOURCE_KEY.sub(
        lambda m: f"[{m[1]}]({EVIDENCE}#{m[1].lower().replace(' ', '-')})", source)
    return _ISSUE.sub(lambda m: f"[{m[1]}]({EVIDENCE}#issues)", linked)


def _rule_cells(rule: Rule) -> tuple[str, ...]:
    return (rule.id, rule.code or "-", rule.severity, rule.evidence, rule.scope, rule.where,
            rule.summary, rule.source)


def rules_markdown(rules: Iterable[Rule] = RULES.values()) -> str:
    """The rule table of docs/rules.md (GitHub-flavoured markdown), generated from ``RULES``;
    sources link to the evidence document beside it."""

    def row(cells: Iterable[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [row(RULE_COLUMNS), row("---" for _ in RULE_COLUMNS)]
    lines.extend(row((*_rule_cells(rule)[:-1], cite(rule.source))) for rule in rules)
    return "\n".join(lines) + "\n"


def rules_text(rules: Iterable[Rule] = RULES.values()) -> str:
    """The rule table for a terminal: aligned columns, without the long source column."""
    rows = [RULE_COLUMNS[:-1], *(_rule_cells(rule)[:-1] for rule in rules)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ) + "\n"
