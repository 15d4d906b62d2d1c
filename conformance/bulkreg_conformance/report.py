"""Reporters of a conformance run: the text summary, JSON, JUnit XML and replay files.

Every reporter works from the :class:`~bulkreg_conformance.runner.Result` alone, and every
string it writes passes through :func:`scrub` last, so a key, token or connection string that
slipped into a message still never reaches a file or the terminal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from bulkreg_conformance.checks import evidence_of

if TYPE_CHECKING:
    from bulkreg_conformance.runner import Result

__all__ = ["detail", "scrub", "summary", "to_json", "write_json", "write_junit", "write_replays"]

_SECRETS = re.compile(r"(SharedAccessKey=)[^;\s\"']+|(sig=)[^&\s\"']+", re.IGNORECASE)


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2)) + "<redacted>", text)


def _coverage(result: Result) -> dict[str, Any]:
    cov = result.coverage
    return {"rules_exercised": sorted(cov.rules), "rules_missing": cov.missing_rules(),
            "mode_outcomes": sorted(f"{m} x {o}" for m, o in cov.cells),
            "mode_outcomes_expected": len(cov.expected_cells()),
            "mode_outcomes_missing": [f"{m} x {o}" for m, o in cov.missing_cells()]}


def to_json(result: Result) -> dict[str, Any]:
    strict = result.settings.strict
    return {
        "verdict": "fail" if result.failed else "pass",
        "endpoint": result.endpoint,
        "builtin_hub": result.builtin,
        "prefix": result.prefix,
        "seed": result.seed,
        "strict": strict,
        "requests": result.requests,
        "elapsed_seconds": round(result.elapsed, 2),
        "checks": {name: {"passed": t.passed, "failed": t.failed, "deviation": t.deviation,
                          "evidence": evidence_of(name)}
                   for name, t in sorted(result.tally.items())},
        "failures": [f.to_dict(strict) for f in result.failures],
        "suppressed_failures": dict(result.suppressed),
        "coverage": _coverage(result),
        "leaks": result.leaks,
        "errors": result.errors,
        "interrupted": result.interrupted,
    }


def write_json(result: Result, path: str | Path, secrets: tuple[str, ...] = ()) -> None:
    text = json.dumps(to_json(result), indent=2, ensure_ascii=False)
    Path(path).write_text(scrub(text, secrets) + "\n", encoding="utf-8")


def write_replays(result: Result, directory: str | Path,
                  secrets: tuple[str, ...] = ()) -> list[Path]:
    """One replay file per detailed failure (``bulkreg conform --replay FILE``)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, failure in enumerate(result.failures, 1):
        if failure.replay is None or failure.payload is None:
            continue
        path = out / f"replay-{n:03d}-{failure.check}.json"
        path.write_text(scrub(json.dumps(failure.replay, indent=2, ensure_ascii=False), secrets),
                        encoding="utf-8")
        written.append(path)
    return written


def write_junit(result: Result, path: str | Path, secrets: tuple[str, ...] = ()) -> None:
    """One testcase per check; a failure element per failed check (deviations as skipped
    unless --strict), with the reproducer in the text."""
    strict = result.settings.strict
    suite = ET.Element("testsuite", name="bulkreg conform", tests=str(len(result.tally)),
                       time=f"{result.elapsed:.2f}")
    failures = 0
    for name, tally in sorted(result.tally.items()):
        case = ET.SubElement(suite, "testcase", classname="bulkreg.conform", name=name)
        mine = [f for f in result.failures if f.check == name]
        if tally.failed:
            failures += 1
            element = ET.SubElement(case, "failure", message=scrub(
                mine[0].message if mine else f"{tally.failed} failure(s)", secrets))
            element.text = scrub("\n\n".join(detail(f.to_dict(strict)) for f in mine), secrets)
        elif tally.deviation:
            element = ET.SubElement(case, "skipped", message=scrub(
                f"deviation ({tally.deviation}): " + (mine[0].message if mine else ""), secrets))
    for leak in result.leaks:
        case = ET.SubElement(suite, "testcase", classname="bulkreg.conform", name="leak")
        ET.SubElement(case, "failure", message=f"device {leak} left behind")
        failures += 1
    suite.set("failures", str(failures))
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def detail(failure: dict[str, Any]) -> str:
    lines = [f"[{failure['verdict']}] {failure['check']} (evidence: {failure['evidence']}"
             + (f", rule {failure['rule']}" if failure["rule"] else "") + ")",
             f"  {failure['message']}"]
    if failure["payload"] is not None:
        payload = failure["payload"]
        lines.append("  payload: " + (payload if len(payload) <= 400 else payload[:400] + "…"))
    for exchange in failure["exchanges"][:2]:
        response = exchange["response"]
        body = response["body"]
        lines.append(f"  {exchange['request']['method']} {exchange['request']['url']} -> "
                     f"{response['status']} {body[:300]}")
    for curl in failure["curl"][:1]:
        lines.append(f"  reproduce: {curl if len(curl) <= 600 else curl[:600] + '…'}")
    return "\n".join(lines)


def summary(result: Result, secrets: tuple[str, ...] = ()) -> str:
    """The text summary: checks x passed/failed/deviation, requests, time, coverage."""
    data = to_json(result)
    rows = [("check", "evidence", "passed", "failed", "deviation")]
    for name, c in data["checks"].items():
        rows.append((name, str(c["evidence"]), str(c["passed"]), str(c["failed"]),
                     str(c["deviation"])))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for failure in data["failures"]:
        lines += ["", detail(failure)]
    cov = data["coverage"]
    missing = cov["mode_outcomes_missing"]
    lines += [
        "",
        f"endpoint: {data['endpoint']}" + (" (built-in reference hub)" if result.builtin else ""),
        f"prefix: {data['prefix']}  seed: {data['seed']}  requests: {data['requests']}  "
        f"time: {data['elapsed_seconds']:.1f}s",
        f"coverage: {len(cov['rules_exercised'])} rules exercised negatively"
        + (f" (missing: {', '.join(cov['rules_missing'])})" if cov["rules_missing"] else
           " (all bulk rules)")
        + f"; importMode x outcome: {cov['mode_outcomes_expected'] - len(missing)} of "
        f"{cov['mode_outcomes_expected']} cells (every importMode, createOrUpdate too, with "
        "each outcome it can have: ok, not found, already exists, etag mismatch)"
        + (f", missing: {', '.join(missing)}" if missing else ""),
    ]
    if data["leaks"]:
        lines.append(f"LEAKED devices (still on the endpoint): {', '.join(data['leaks'])}")
    else:
        lines.append("cleanup: every device the run created is gone")
    lines += [f"error: {e}" for e in data["errors"]]
    failed = sum(c["failed"] for c in data["checks"].values())
    deviations = sum(c["deviation"] for c in data["checks"].values())
    lines.append(f"verdict: {data['verdict'].upper()} ({failed} failed, {deviations} "
                 f"deviation(s){', strict' if result.settings.strict else ''})")
    return scrub("\n".join(lines), secrets)
