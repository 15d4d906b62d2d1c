"""The lint reporters: every format carries every finding (rule, errorCode, severity, location,
message), and the machine formats are valid documents, read back with real parsers.

SARIF is checked with jsonschema against ``SARIF_SUBSET`` below: the SARIF 2.1.0 JSON schema
cannot be downloaded in this environment, so the subset restates, from the OASIS SARIF 2.1.0
specification and its schema (sarif-schema-2.1.0.json), the required properties, the property
names and the value constraints of every object bulkreg writes, closed with
``additionalProperties: false`` as the official schema does.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml

from bulkreg_validator import RULES, validate, validate_import
from bulkreg_validator._report import (
    REPORTERS,
    FileResult,
    Summary,
    rules_markdown,
    rules_text,
)
from bulkreg_validator.cli import build_parser

BAD = b'[{"id": "bad id", "importMode": "Create", "status": "x"}]'
IMPORT = b'{"id": "a", "importMode": "create"}\n\n{"id": "a", "importMode": "create"}\n'


def results() -> list[FileResult]:
    """Real reports: errors and a warning, a clean file, an import file, an unreadable path."""
    return [
        FileResult("payloads/bad.json", validate(BAD)),
        FileResult("payloads/ok.json", validate(b'[{"id": "ok", "importMode": "create"}]')),
        FileResult("devices.txt", validate_import(io.BytesIO(IMPORT))),
        FileResult("gone.json", None, "cannot read gone.json: No such file or directory"),
    ]


def render(fmt: str, items: list[FileResult], strict: bool = False) -> str:
    out = io.StringIO()
    REPORTERS[fmt](out).write(items, Summary.of(items, strict))
    return out.getvalue()


def all_findings(items: list[FileResult]) -> list[tuple[str, Any]]:
    return [(r.path, f) for r in items if r.report for f in r.report.findings]


def test_fixture_has_what_the_formats_must_show() -> None:
    findings = [f for _, f in all_findings(results())]
    assert {f.severity for f in findings} == {"error", "warning"}
    assert any(f.code is None for f in findings)
    assert len(findings) >= 5


def test_reporter_table_matches_the_cli_choices() -> None:
    assert set(REPORTERS) == {"text", "json", "github", "junit", "sarif"}
    lint = build_parser().parse_args(["lint", "--format", "sarif", "x"])
    assert lint.format == "sarif"
    for name, cls in REPORTERS.items():
        assert cls.name == name


def test_summary_exit_codes() -> None:
    items = results()
    assert Summary.of(items, strict=False).exit_code == 2  # unreadable wins
    assert Summary.of(items[:3], strict=False).exit_code == 1
    warn_only = [FileResult("w.json", validate(b'[{"id": "a", "importMode": "Create"}]'))]
    assert Summary.of(warn_only, strict=False).exit_code == 0
    assert Summary.of(warn_only, strict=True).exit_code == 1
    assert Summary.of(items[1:2], strict=True).exit_code == 0


# --- text ----------------------------------------------------------------------------------------


def test_text_lines() -> None:
    items = results()
    lines = render("text", items).splitlines()
    expected = all_findings(items)
    assert len(lines) == len(expected) + 1
    for line, (path, f) in zip(lines, expected, strict=False):
        code = f" [{f.code}]" if f.code else ""
        assert line == f"{path}:{f.line}:{f.column}: {f.severity} {f.rule}{code} {f.message}"
    assert lines[-1] == ("bulkreg lint: failed: 4 files, 4 entries, 3 errors, 2 warnings, "
                         "1 unreadable")


def test_text_colour() -> None:
    out = io.StringIO()
    items = results()[:1]
    REPORTERS["text"](out, color=True).write(items, Summary.of(items, False))
    assert "\033[31merror\033[0m" in out.getvalue()
    assert "\033[33mwarning\033[0m" in out.getvalue()


# --- json ----------------------------------------------------------------------------------------


def test_json_document() -> None:
    items = results()
    doc = json.loads(render("json", items))
    assert [f["path"] for f in doc["files"]] == [r.path for r in items]
    for file, result in zip(doc["files"], items, strict=True):
        report = result.report
        assert file["entries"] == (report.entries if report else 0)
        assert file["findings"] == ([f._asdict() for f in report.findings] if report else [])
        assert set(file["findings"][0] if file["findings"] else {}) <= {
            "rule", "code", "severity", "pointer", "line", "column", "message", "evidence"}
    assert doc["files"][3]["error"] == "cannot read gone.json: No such file or directory"
    assert doc["summary"] == {"files": 4, "entries": 4, "errors": 3, "warnings": 2,
                              "unreadable": 1, "truncated": 0, "strict": False, "exit_code": 2}


def test_json_keeps_non_ascii_and_reports_truncation() -> None:
    truncated = validate_import(io.BytesIO(IMPORT * 3), max_findings=1)
    assert truncated.truncated > 0
    doc = json.loads(render("json", [FileResult("é.txt", truncated)]))
    assert doc["files"][0]["path"] == "é.txt"
    assert doc["files"][0]["truncated"] == truncated.truncated
    assert doc["summary"]["truncated"] == truncated.truncated


# --- github --------------------------------------------------------------------------------------

ANNOTATION = re.compile(r"::(error|warning) file=([^,]*),line=(\d+),col=(\d+),title=([^:]+)::(.*)")


def test_github_annotations() -> None:
    items = results()
    lines = render("github", items).splitlines()
    expected = all_findings(items)
    for line, (path, f) in zip(lines, expected, strict=False):
        match = ANNOTATION.fullmatch(line)
        assert match, line
        assert match.groups()[:5] == (f.severity, path, str(f.line), str(f.column), f.rule)
        message = match.group(6).replace("%25", "%")
        assert message == (f"[{f.code}] " if f.code else "") + f.message
    assert lines[len(expected)] == ("::error file=gone.json,title=unreadable::"
                                    "cannot read gone.json: No such file or directory")
    assert lines[-1].startswith("bulkreg lint: failed:")


def test_github_escapes_properties_and_data() -> None:
    item = FileResult("odd,name:%.json", validate(b"[1]\n\n}"))
    line = render("github", [item]).splitlines()[0]
    assert line.startswith("::error file=odd%2Cname%3A%25.json,line=")
    assert "\n" not in line


# --- junit ---------------------------------------------------------------------------------------


def test_junit_read_back_with_junitparser() -> None:
    items = results()
    document = render("junit", items)
    ET.fromstring(document.split("\n", 1)[1])  # well-formed XML after the declaration
    xml = JUnitXml.fromstring(document)
    suites = list(xml)
    assert [s.name for s in suites] == [r.path for r in items]
    bad, ok, imported, gone = suites
    cases = list(bad)
    assert len(cases) == len(items[0].report.findings)  # type: ignore[union-attr]
    failed = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
    assert [c.result[0].type for c in failed] == ["ArgumentInvalid", "DeserializationError"]
    assert all(c.is_passed for c in cases if c not in failed)  # the warning passes...
    warning = next(c for c in cases if c.is_passed)
    assert "warning enum-case" in (warning.system_out or "")  # ...and still says so
    assert [c.name for c in ok] == ["valid"] and all(c.is_passed for c in ok)
    assert imported.tests == 2 and imported.failures == 1
    assert isinstance(next(iter(gone)).result[0], Error)
    assert (xml.tests, xml.failures, xml.errors) == (7, 3, 1)


def test_junit_strict_fails_warnings() -> None:
    items = results()[:1]
    xml = JUnitXml.fromstring(render("junit", items, strict=True))
    assert xml.failures == len(items[0].report.findings)  # type: ignore[union-attr]


def test_junit_case_carries_location_and_message() -> None:
    items = results()[:1]
    case = next(iter(next(iter(JUnitXml.fromstring(render("junit", items))))))
    finding = items[0].report.findings[0]  # type: ignore[union-attr]
    assert case.classname == "payloads/bad.json"
    assert finding.pointer in case.name and f"line {finding.line}" in case.name
    assert case.result[0].message == finding.message
    assert f"evidence: {finding.evidence}" in case.result[0].text


# --- sarif ---------------------------------------------------------------------------------------

_MESSAGE = {"type": "object", "properties": {"text": {"type": "string"}, "id": {"type": "string"},
                                             "arguments": {"type": "array"}},
            "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
            "additionalProperties": False}
_LEVEL = {"enum": ["none", "note", "warning", "error"]}
_BAG = {"type": "object"}
_ARTIFACT_LOCATION = {"type": "object", "properties": {
    "uri": {"type": "string", "pattern": r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$"},
    "uriBaseId": {"type": "string"}, "index": {"type": "integer", "minimum": -1},
    "description": _MESSAGE, "properties": _BAG}, "additionalProperties": False}
_LOCATION = {"type": "object", "additionalProperties": False, "properties": {
    "id": {"type": "integer", "minimum": -1},
    "physicalLocation": {
        "type": "object", "additionalProperties": False,
        "anyOf": [{"required": ["address"]}, {"required": ["artifactLocation"]}],
        "properties": {
            "address": _BAG, "artifactLocation": _ARTIFACT_LOCATION,
            "region": {"type": "object", "additionalProperties": False, "properties": {
                "startLine": {"type": "integer", "minimum": 1},
                "startColumn": {"type": "integer", "minimum": 1},
                "endLine": {"type": "integer", "minimum": 1},
                "endColumn": {"type": "integer", "minimum": 1},
                "charOffset": {"type": "integer", "minimum": -1},
                "byteOffset": {"type": "integer", "minimum": -1},
                "snippet": _BAG, "message": _MESSAGE, "properties": _BAG}},
            "contextRegion": _BAG, "properties": _BAG}},
    "logicalLocations": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "properties": {
            "name": {"type": "string"}, "index": {"type": "integer", "minimum": -1},
            "fullyQualifiedName": {"type": "string"}, "decoratedName": {"type": "string"},
            "parentIndex": {"type": "integer", "minimum": -1}, "kind": {"type": "string"},
            "properties": _BAG}}},
    "message": _MESSAGE, "annotations": {"type": "array"}, "relationships": {"type": "array"},
    "properties": _BAG}}
_DESCRIPTOR = {"type": "object", "required": ["id"], "additionalProperties": False, "properties": {
    "id": {"type": "string"}, "deprecatedIds": {"type": "array"}, "guid": {"type": "string"},
    "name": {"type": "string"},
    "shortDescription": {"type": "object", "required": ["text"],
                         "properties": {"text": {"type": "string"},
                                        "markdown": {"type": "string"}, "properties": _BAG},
                         "additionalProperties": False},
    "fullDescription": _BAG, "messageStrings": _BAG, "helpUri": {"type": "string"},
    "help": _BAG, "relationships": {"type": "array"},
    "defaultConfiguration": {"type": "object", "additionalProperties": False, "properties": {
        "enabled": {"type": "boolean"}, "level": _LEVEL, "rank": {"type": "number"},
        "parameters": _BAG, "properties": _BAG}},
    "properties": _BAG}}
_RESULT = {"type": "object", "required": ["message"], "additionalProperties": False, "properties": {
    "ruleId": {"type": "string"}, "ruleIndex": {"type": "integer", "minimum": -1},
    "rule": _BAG, "kind": {"enum": ["notApplicable", "pass", "fail", "review", "open",
                                    "informational"]},
    "level": _LEVEL, "message": _MESSAGE, "analysisTarget": _ARTIFACT_LOCATION,
    "locations": {"type": "array", "items": _LOCATION}, "guid": {"type": "string"},
    "fingerprints": _BAG, "partialFingerprints": _BAG, "properties": _BAG}}
_NOTIFICATION = {"type": "object", "required": ["message"], "additionalProperties": False,
                 "properties": {"locations": {"type": "array", "items": _LOCATION},
                                "message": _MESSAGE, "level": _LEVEL, "properties": _BAG}}
SARIF_SUBSET: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "required": ["version", "runs"], "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string"}, "version": {"const": "2.1.0"},
        "inlineExternalProperties": {"type": "array"}, "properties": _BAG,
        "runs": {"type": "array", "items": {
            "type": "object", "required": ["tool"], "properties": {
                "tool": {"type": "object", "required": ["driver"], "properties": {
                    "driver": {"type": "object", "required": ["name"], "properties": {
                        "name": {"type": "string"}, "version": {"type": "string"},
                        "semanticVersion": {"type": "string"},
                        "informationUri": {"type": "string", "format": "uri"},
                        "rules": {"type": "array", "items": _DESCRIPTOR, "uniqueItems": True},
                        "properties": _BAG}},
                    "extensions": {"type": "array"}, "properties": _BAG},
                    "additionalProperties": False},
                "results": {"type": "array", "items": _RESULT},
                "invocations": {"type": "array", "items": {
                    "type": "object", "required": ["executionSuccessful"],
                    "properties": {"executionSuccessful": {"type": "boolean"},
                                   "exitCode": {"type": "integer"},
                                   "toolExecutionNotifications": {"type": "array",
                                                                  "items": _NOTIFICATION},
                                   "properties": _BAG}}},
                "artifacts": {"type": "array"}, "properties": _BAG}}},
    },
}


def sarif(items: list[FileResult]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(render("sarif", items))
    return doc


def test_sarif_subset_schema_is_a_valid_schema_and_can_fail() -> None:
    jsonschema.Draft202012Validator.check_schema(SARIF_SUBSET)
    validator = jsonschema.Draft202012Validator(SARIF_SUBSET)
    doc = sarif(results())
    doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    assert not validator.is_valid(doc)
    assert not validator.is_valid({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]})


def test_sarif_validates() -> None:
    jsonschema.Draft202012Validator(SARIF_SUBSET).validate(sarif(results()))


def test_sarif_rules_come_from_the_rule_table() -> None:
    driver = sarif(results())["runs"][0]["tool"]["driver"]
    assert [r["id"] for r in driver["rules"]] == list(RULES)
    for descriptor in driver["rules"]:
        rule = RULES[descriptor["id"]]
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["defaultConfiguration"]["level"] == rule.severity
        assert descriptor["properties"]["evidence"] == rule.evidence
        assert descriptor["properties"]["errorCode"] == rule.code


def test_sarif_results_match_the_findings() -> None:
    items = results()
    run = sarif(items)["runs"][0]
    expected = all_findings(items)
    assert len(run["results"]) == len(expected)
    for result, (path, f) in zip(run["results"], expected, strict=True):
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == f.rule == \
            result["ruleId"]
        assert (result["level"], result["message"]["text"]) == (f.severity, f.message)
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == path
        assert physical["region"] == {"startLine": f.line, "startColumn": f.column}
        assert result["properties"] == {"errorCode": f.code, "pointer": f.pointer,
                                        "evidence": f.evidence}
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False and invocation["exitCode"] == 2
    note = invocation["toolExecutionNotifications"][0]
    assert note["message"]["text"] == "cannot read gone.json: No such file or directory"


def test_sarif_uris_are_escaped() -> None:
    items = [FileResult("my payloads/ä.json", validate(b"[")),
             FileResult("/abs/x y.json", validate(b"["))]
    run = sarif(items)["runs"][0]
    jsonschema.Draft202012Validator(SARIF_SUBSET).validate({"version": "2.1.0", "runs": [run]})
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in run["results"]]
    assert uris == ["my%20payloads/%C3%A4.json", "file:///abs/x%20y.json"]


# --- every machine format is as complete as the text one -----------------------------------------


@pytest.mark.parametrize("fmt", ["json", "github", "junit", "sarif"])
def test_machine_formats_carry_every_finding(fmt: str) -> None:
    items = results()
    document = render(fmt, items)
    unescaped = document.replace("%25", "%").replace("&apos;", "'").replace("&quot;", '"')
    for path, f in all_findings(items):
        for part in (path, f.rule, f.message, str(f.line), str(f.column)):
            assert part in unescaped, (fmt, part)
        if f.code:
            assert f.code in document


# --- the rule table ------------------------------------------------------------------------------


def test_rules_markdown_has_a_row_per_rule_with_eight_cells() -> None:
    lines = rules_markdown().splitlines()
    assert len(lines) == len(RULES) + 2
    for line, rule in zip(lines[2:], RULES.values(), strict=True):
        cells = re.split(r"(?<!\\) \| ", line.strip("| "))
        assert len(cells) == 8, line
        assert cells[0] == rule.id and cells[1] == (rule.code or "-")


def test_rules_markdown_escapes_pipes() -> None:
    rule = next(iter(RULES.values()))._replace(summary="a | b")
    assert "a \\| b" in rules_markdown([rule])


def test_rules_text_aligns_columns() -> None:
    lines = rules_text().splitlines()
    starts = {line.index(" " + line.split()[1]) for line in lines[1:]}
    assert len(starts) == 1  # the errorCode column starts at the same place on every row
