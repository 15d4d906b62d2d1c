"""Benchmark: import-file validation throughput against jsonschema-rs, jsonschema and parse floors.

Owns the throughput targets of issue 2 §5 and issue 14 (item 8): ``bulkreg_validator.
validate_import`` with every rule on must reach >= 1.0x the devices/s of jsonschema-rs ``is_valid``
fed by ``orjson.loads`` over the same records with the same ImportLine schema (which checks fewer
rules: no duplicate ids or keys, byte lengths, twin sizes, etags, auth consistency), and >= 100x
pure-Python ``jsonschema``. jsonschema-rs fed by ``json.loads`` (issue 2's baseline) and the
parse-only floors (the same lines only parsed) are printed for context.

Every candidate reads the same binary file line by line in this process; each is run ``--repeats``
times round-robin with a ``gc.collect()`` before every run (GC stays enabled for all), and the
best run counts. Every baseline must agree that every line is valid, so a baseline that silently
checks nothing cannot win. Prints figures; asserts nothing; exit 0 unless it cannot run.

    python tests/benchmarks/bench_import.py [--lines 100000] [--repeats 3] [--jsonschema-lines N]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _data
import jsonschema
import jsonschema_rs
import orjson
import referencing
from referencing.jsonschema import DRAFT202012

import bulkreg_schema
import bulkreg_validator

TARGET_RS = 1.0
TARGET_JSONSCHEMA = 100.0

# A candidate reads the open file and returns how many lines it found valid.
Candidate = Callable[[Any], int]


def ours(stream: Any) -> int:
    report: bulkreg_validator.Report = bulkreg_validator.validate_import(stream)
    if report.findings:
        first = report.findings[0]
        print(f"  bulkreg finding: line {first.line}: {first.rule} {first.message}")
    lines: int = report.entries - len({f.line for f in report.findings})
    return lines


def rs_validator() -> Any:
    registry = jsonschema_rs.Registry(list(bulkreg_schema.registry().items()))
    return jsonschema_rs.validator_for(bulkreg_schema.load("ImportLine"), registry=registry)


def py_validator() -> Any:
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (uri, DRAFT202012.create_resource(doc)) for uri, doc in bulkreg_schema.registry().items())
    return jsonschema.Draft202012Validator(bulkreg_schema.load("ImportLine"), registry=registry)


def schema_candidate(is_valid: Callable[[Any], bool], loads: Callable[[bytes], Any],
                     limit: int | None = None) -> Candidate:
    def candidate(stream: Any) -> int:
        lines = stream if limit is None else itertools.islice(stream, limit)
        return sum(1 for line in lines if is_valid(loads(line)))
    return candidate


def parse_candidate(loads: Callable[[bytes], Any]) -> Candidate:
    def candidate(stream: Any) -> int:
        count = 0
        for line in stream:
            loads(line)
            count += 1
        return count
    return candidate


def candidates(jsonschema_lines: int) -> dict[str, tuple[Candidate, int | None]]:
    """name -> (candidate, how many lines it reads: None for the whole file)."""
    rs = rs_validator()
    py = py_validator()
    return {
        "bulkreg validate_import": (ours, None),
        "jsonschema-rs + json": (schema_candidate(rs.is_valid, json.loads), None),
        "jsonschema-rs + orjson": (schema_candidate(rs.is_valid, orjson.loads), None),
        "jsonschema (pure)": (schema_candidate(py.is_valid, orjson.loads, jsonschema_lines),
                              jsonschema_lines),
        "parse floor json": (parse_candidate(json.loads), None),
        "parse floor orjson": (parse_candidate(orjson.loads), None),
    }


def timed(candidate: Candidate, path: Path) -> tuple[float, int]:
    gc.collect()
    with path.open("rb") as stream:
        start = time.perf_counter()
        valid = candidate(stream)
        return time.perf_counter() - start, valid


def measure(path: Path, lines: int, repeats: int,
            table: dict[str, tuple[Candidate, int | None]]) -> dict[str, float]:
    """Best devices/s of every candidate; exits if one of them does not find every line valid."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, (candidate, limit) in table.items():
            seconds, valid = timed(candidate, path)
            expected = lines if limit is None else min(limit, lines)
            if valid != expected:
                raise SystemExit(f"sanity: {name} found {valid} of {expected} lines valid; the "
                                 "data or the baseline is broken")
            best[name] = max(best.get(name, 0.0), expected / seconds)
    return best


def report(rates: dict[str, float], jsonschema_lines: int) -> None:
    for name, rate in rates.items():
        extra = f"   (over the first {jsonschema_lines} lines)" if "pure" in name else ""
        print(f"  {name:<24} {rate:>12,.0f} devices/s{extra}")
    mine = rates["bulkreg validate_import"]
    ratios = {"ours / jsonschema-rs (json)": mine / rates["jsonschema-rs + json"],
              "ours / jsonschema-rs (orjson)": mine / rates["jsonschema-rs + orjson"],
              "ours / jsonschema (pure)": mine / rates["jsonschema (pure)"],
              "ours / parse floor (json)": mine / rates["parse floor json"],
              "ours / parse floor (orjson)": mine / rates["parse floor orjson"]}
    print("\nratios (devices/s over devices/s; > 1 means bulkreg is faster):")
    for name, ratio in ratios.items():
        print(f"  {name:<30} {ratio:8.2f}x")
    rs_json = ratios["ours / jsonschema-rs (json)"]
    rs_orjson = ratios["ours / jsonschema-rs (orjson)"]
    pure = ratios["ours / jsonschema (pure)"]
    print(f"\ntarget >= {TARGET_RS:.1f}x jsonschema-rs fed by orjson.loads (issue 14): "
          f"{_data.verdict(rs_orjson >= TARGET_RS)} ({rs_orjson:.2f}x)")
    print(f"for context: jsonschema-rs fed by json.loads (issue 2's baseline): {rs_json:.2f}x")
    print(f"target >= {TARGET_JSONSCHEMA:.0f}x pure jsonschema: "
          f"{_data.verdict(pure >= TARGET_JSONSCHEMA)} ({pure:.1f}x)")


def versions() -> str:
    names = ("jsonschema-rs", "jsonschema", "orjson")
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=_data.positive, default=100_000,
                        help="import lines to generate")
    parser.add_argument("--repeats", type=_data.positive, default=3,
                        help="runs per candidate; the best counts")
    parser.add_argument("--jsonschema-lines", type=_data.positive, default=None,
                        help="subsample for pure jsonschema (default: lines/50, at least 200)")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--profile", choices=_data.PROFILES, default="import")
    args = parser.parse_args(argv)
    sub = args.jsonschema_lines or max(200, args.lines // 50)
    print(_data.load_note("at start"))
    with tempfile.TemporaryDirectory(prefix="bulkreg-bench-") as name:
        path = Path(name) / "devices.jsonl"
        start = time.perf_counter()
        size = _data.write_import_file(path, args.lines, seed=args.seed, profile=args.profile)
        print(f"import file: {args.lines} lines, {size / 2**20:.1f} MiB "
              f"({size // max(args.lines, 1)} bytes/line, profile {args.profile!r}, seed "
              f"{args.seed}), generated in {time.perf_counter() - start:.1f} s")
        print(f"best of {args.repeats} runs each, round-robin, gc.collect() before each; "
              f"versions: {versions()}\n")
        rates = measure(path, args.lines, args.repeats, candidates(sub))
    print("sanity: every candidate found every line it read valid (bulkreg: no finding)\n")
    report(rates, sub)
    print(_data.load_note("at end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
