"""Reporters of a conformance run: the text summary, JSON, JUnit XML and replay files.

Every reporter works from the :class:`~bulkreg_conformance.runner.Result` alone, and every
string it writes passes through :func:`scrub` (every form of the run's key, tokens and
signatures, see :mod:`~bulkreg_conformance.redact`) before it is cut to size and again last, so
a secret that slipped into a message still never reaches a file or the terminal. Reports stay
small: each string is cut at :data:`MAX_STRING` characters (less when the report would pass
:data:`MAX_REPORT` bytes), marked as truncated.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from bulkreg_conformance.checks import evidence_of
from bulkreg_conformance.coverage import GROUPS
from bulkreg_conformance.redact import REDACTED, Redactor

if TYPE_CHECKING:
    from bulkreg_conformance.runner import Result

__all__ = ["MAX_REPORT", "MAX_STRING", "detail", "scrub", "summary", "to_json", "write_json",
           "write_junit", "write_replays"]

MAX_STRING = 64 * 1024  # characters of one string (a body, a message) in a report
MAX_REPORT = 8 * 1024 * 1024  # bytes of report.json; strings are cut shorter to stay below
_CUTS = (MAX_STRING, 16 * 1024, 4096, 1024, 256)  # not a contract limit: report sizes
_SAFE = re.compile(r"[^A-Za-z0-9._-]")  # file names every CI artifact store accepts
_SECRETS = re.compile(r"(SharedAccessKey=)[^;\s\"']+|(sig=)[^&\s\"']+", re.IGNORECASE)


@functools.lru_cache(maxsize=8)
def _redactor(secrets: tuple[str, ...]) -> Redactor:
    return Redactor(secrets)


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without any form of ``secrets`` or anything shaped like a key or signature."""
    text = _redactor(tuple(sorted(set(secrets)))).text(text)
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, text)


def _walk(value: Any, leaf: Any) -> Any:
    if isinstance(value, str):
        return leaf(value)
    if isinstance(value, dict):
        return {k: _walk(v, leaf) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, leaf) for v in value]
    return value


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated: {len(text)} characters]"


def _all_secrets(result: Result, secrets: tuple[str, ...]) -> tuple[str, ...]:
    return (*secrets, *result.secrets)


def _data(result: Result, secrets: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    """The JSON report, scrubbed whole before anything is cut (a cut must not leave half a
    secret behind), and its text within MAX_REPORT bytes."""
    every = _all_secrets(result, secrets)
    clean = _walk(to_json(result), lambda text: scrub(text, every))
    for limit in _CUTS:
        data = _walk(clean, lambda text, n=limit: _cut(text, n))
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if len(text.encode("utf-8", "surrogatepass")) <= MAX_REPORT:
            break
    return data, text


def _coverage(result: Result) -> dict[str, Any]:
    cov = result.coverage
    return {
        "reached": cov.reached(),
        "requests_to_reach": cov.requests,
        "required": len(cov.required),
        "covered": len(cov.required) - len(cov.missing()),
        "groups": {GROUPS[group]: {"reached": done, "required": total, "missing": missing}
                   for group, (done, total, missing) in cov.by_group().items()},
        "missing": [{"item": item, "what": cov.required[item], "why": cov.why(item)}
                    for item in cov.missing()],
    }


def to_json(result: Result) -> dict[str, Any]:
    strict = result.settings.strict
    return {
        "verdict": result.verdict.lower(),
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
        "notes": result.notes,
        "interrupted": result.interrupted,
    }


def write_json(result: Result, path: str | Path, secrets: tuple[str, ...] = ()) -> None:
    text = _data(result, secrets)[1]
    Path(path).write_text(scrub(text, _all_secrets(result, secrets)) + "\n", encoding="utf-8",
                          errors="surrogatepass")


def write_replays(result: Result, directory: str | Path,
                  secrets: tuple[str, ...] = ()) -> list[Path]:
    """One replay file per detailed failure (``bulkreg conform --replay FILE``)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    every = _all_secrets(result, secrets)
    written = []
    for n, failure in enumerate(result.failures, 1):
        if failure.replay is None or failure.payload is None:
            continue
        path = out / f"replay-{n:03d}-{_SAFE.sub('-', failure.check)}.json"
        text = json.dumps(_walk(failure.replay, lambda t: scrub(t, every)), indent=2,
                          ensure_ascii=False)
        path.write_text(scrub(text, every), encoding="utf-8", errors="surrogatepass")
        written.append(path)
    return written


def write_junit(result: Result, path: str | Path, secrets: tuple[str, ...] = ()) -> None:
    """One testcase per check; a failure element per failed check (deviations as skipped
    unless --strict), with the reproducer in the text."""
    every = _all_secrets(result, secrets)
    data = _data(result, secrets)[0]
    suite = ET.Element("testsuite", name="bulkreg conform", tests=str(len(result.tally)),
                       time=f"{result.elapsed:.2f}")
    failures = 0
    for name, tally in sorted(result.tally.items()):
        case = ET.SubElement(suite, "testcase", classname="bulkreg.conform", name=name)
        mine = [f for f in data["failures"] if f["check"] == name]
        if tally.failed:
            failures += 1
            element = ET.SubElement(case, "failure", message=scrub(
                mine[0]["message"] if mine else f"{tally.failed} failure(s)", every))
            element.text = scrub("\n\n".join(detail(f) for f in mine), every)
        elif tally.deviation:
            element = ET.SubElement(case, "skipped", message=scrub(
                f"deviation ({tally.deviation}): " + (mine[0]["message"] if mine else ""), every))
    for leak in result.leaks:
        case = ET.SubElement(suite, "testcase", classname="bulkreg.conform", name="leak")
        ET.SubElement(case, "failure", message=f"device {leak} left behind")
        failures += 1
    case = ET.SubElement(suite, "testcase", classname="bulkreg.conform", name="minimum-coverage")
    errors = 0
    if not result.coverage.reached() and not result.failed:
        # "nothing failed" without the minimum is no pass: an error (the run could not tell)
        cov = data["coverage"]
        element = ET.SubElement(case, "error", message=scrub(
            f"INCOMPLETE: {cov['covered']} of {cov['required']} coverage items reached", every))
        element.text = scrub("\n".join(_missing_lines(data, limit=None)), every)
        errors = 1
    properties = ET.Element("properties")
    ET.SubElement(properties, "property", name="verdict", value=result.verdict)
    suite.insert(0, properties)
    suite.set("tests", str(len(result.tally) + len(result.leaks) + 1))
    suite.set("errors", str(errors))
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
    every = _all_secrets(result, secrets)
    data = _data(result, secrets)[0]
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
    groups = ", ".join(f"{name} {g['reached']}/{g['required']}"
                       for name, g in cov["groups"].items())
    lines += [
        "",
        f"endpoint: {data['endpoint']}" + (" (built-in reference hub)" if result.builtin else ""),
        f"prefix: {data['prefix']}  seed: {data['seed']}  requests: {data['requests']}  "
        f"time: {data['elapsed_seconds']:.1f}s",
        *(f"note: {note}" for note in data["notes"]),
        ((f"coverage: minimum reached (after {cov['requests_to_reach']} requests): "
          if cov["requests_to_reach"] else "coverage: minimum reached: ") if cov["reached"] else
         f"coverage: minimum NOT reached ({cov['covered']} of {cov['required']} items): ")
        + groups,
        *_missing_lines(data),
    ]
    if data["leaks"]:
        lines.append("LEAKED devices (still on the endpoint, or not confirmed gone): "
                     + ", ".join(data["leaks"]))
    else:
        lines.append("cleanup: every device the run created is gone")
    lines += [f"error: {e}" for e in data["errors"]]
    failed = sum(c["failed"] for c in data["checks"].values())
    deviations = sum(c["deviation"] for c in data["checks"].values())
    missing = len(cov["missing"])
    lines.append(f"verdict: {data['verdict'].upper()} ({failed} failed, {deviations} "
                 f"deviation(s)" + (f", {missing} coverage item(s) not reached" if missing else "")
                 + f"{', strict' if result.settings.strict else ''})")
    return scrub("\n".join(lines), every)


def _missing_lines(data: dict[str, Any], limit: int | None = 12) -> list[str]:
    """One line per coverage item not reached: what it is and why (the first ``limit``)."""
    missing = data["coverage"]["missing"]
    shown = missing if limit is None else missing[:limit]
    lines = [f"not covered: {m['item']} ({m['what']}): {m['why']}" for m in shown]
    if len(missing) > len(shown):
        lines.append(f"not covered: … and {len(missing) - len(shown)} more (--report-json "
                     "lists them all)")
    return lines
