"""Benchmark: `bulkreg lint` on one 100-device bulk file against `check-jsonschema`.

Owns the issue 2 §5 lint target: median wall time of the whole command (a fresh process, as a
pre-commit hook or a developer runs it) <= 150 ms, and >= 5x faster than check-jsonschema checking
the same file with bulkreg's own BulkRequest schema. Both commands run interleaved in the same
session, so machine noise hits both alike. Prints figures; asserts nothing; exit 0 unless the
benchmark itself cannot run.

    python tests/benchmarks/bench_lint.py [--runs 15] [--warmup 2] [--devices 100]
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _data

import bulkreg_schema

TARGET_MS = 150.0
TARGET_RATIO = 5.0
# What `bulkreg lint` imports before it reads a byte (context for the startup share).
IMPORTED = "bulkreg_validator.cli" if importlib.util.find_spec("bulkreg_validator.cli") \
    else "bulkreg_validator"


# Installed packages carry bytecode (pip compiles wheels at install time); an editable checkout or
# a PYTHONDONTWRITEBYTECODE shell would make every run recompile from source, so compile first
# and let the measured processes use and write bytecode, as a user's would.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_bytecode() -> None:
    for name in ("bulkreg_validator", "bulkreg_schema", "orjson", "check_jsonschema"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                compileall.compile_dir(folder, quiet=1)


def run(argv: list[str]) -> tuple[int, str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=ENV)
    return done.returncode, (done.stdout + done.stderr).strip()


def wall_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env=ENV)
    return (time.perf_counter() - start) * 1000


def check_jsonschema_argv(tmp: Path, data: Path) -> list[str]:
    """check-jsonschema with the shipped schema file if its refs resolve, else with a bundle."""
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if exe is None:
        raise SystemExit("check-jsonschema is not installed in this environment (pip install "
                         "check-jsonschema, or the project's test extra)")
    direct = [exe, "--schemafile", str(bulkreg_schema.path("BulkRequest")), str(data)]
    code, out = run(direct)
    if code == 0:
        print(f"check-jsonschema: shipped schema file {bulkreg_schema.path('BulkRequest')}")
        return direct
    first = next((ln for ln in out.splitlines() if "Unresolvable" in ln), out[:200])
    bundle = tmp / "BulkRequest.bundle.json"
    bundle.write_text(json.dumps(bulkreg_schema.bundle("BulkRequest")), encoding="utf-8")
    print(f"check-jsonschema: the shipped schema file fails offline ({first.strip()}); its "
          f"$refs resolve against the https $id. Using a single-file bundle of the registry "
          f"instead (`bulkreg schema-bundle BulkRequest`): {bundle}")
    return [exe, "--schemafile", str(bundle), str(data)]


def sanity(name: str, argv_for: Any, good: Path, bad: Path) -> None:
    """Both commands must pass the generated file and fail a one-character mutation of it."""
    code_good, out_good = run(argv_for(good))
    code_bad, _ = run(argv_for(bad))
    if code_good != 0 or code_bad == 0:
        raise SystemExit(f"{name}: sanity check failed (valid file exit {code_good}, mutated "
                         f"file exit {code_bad}); output:\n{out_good[:2000]}")


def median_pair(argvs: dict[str, list[str]], runs: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for argv in argvs.values():
            wall_ms(argv)
    times: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(runs):  # interleaved: noise hits every command alike
        for name, argv in argvs.items():
            times[name].append(wall_ms(argv))
    return times


def in_process_ms(payload: bytes, runs: int) -> list[float]:
    """validate() alone, in this process: the part of lint that is not startup or output."""
    import bulkreg_validator  # noqa: PLC0415 - imported here so the subprocesses start cold

    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        report = bulkreg_validator.validate(payload)
        times.append((time.perf_counter() - start) * 1000)
    if not report.ok:
        raise SystemExit(f"validate() found errors in the generated file: {report.errors[:3]}")
    return times[1:]


def describe(times: list[float]) -> str:
    return (f"median {statistics.median(times):7.1f} ms   min {min(times):7.1f} ms   "
            f"max {max(times):7.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=_data.positive, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--devices", type=_data.positive, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(_data.load_note("at start"))
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="bulkreg-bench-") as name:
        tmp = Path(name)
        data = tmp / "bulk.json"
        size = _data.write_bulk_file(data, args.devices, seed=args.seed)
        bad = tmp / "bulk-bad.json"
        bad.write_text(data.read_text(encoding="utf-8").replace('"id": "', '"id": " ', 1),
                       encoding="utf-8")
        print(f"bulk file: {args.devices} devices, {size} bytes "
              f"({size // max(args.devices, 1)} bytes/device, indented), seed {args.seed}")
        ours, note = _data.lint_command(data)
        print(f"bulkreg lint: {note}")
        theirs = check_jsonschema_argv(tmp, data)
        sanity("bulkreg lint", lambda p: _data.lint_command(p)[0], data, bad)
        sanity("check-jsonschema", lambda p: [*theirs[:-1], str(p)], data, bad)
        print("sanity: both pass the file and both fail it with one invalid id\n")
        argvs = {"python -c pass": [sys.executable, "-c", "pass"],
                 "import only": [sys.executable, "-c", f"import {IMPORTED}"],
                 "bulkreg lint": ours, "check-jsonschema": theirs}
        times = median_pair(argvs, args.runs, args.warmup)
        in_process = in_process_ms(data.read_bytes(), args.runs)
    print(f"{args.runs} runs after {args.warmup} warm-ups, wall time of the whole process:")
    for label, values in times.items():
        print(f"  {label:<18} {describe(values)}")
    print(f"  ('import only' is `python -c \"import {IMPORTED}\"`)")
    print(f"in-process validate() of the same bytes: {describe(in_process)}")
    ours_ms = statistics.median(times["bulkreg lint"])
    ratio = statistics.median(times["check-jsonschema"]) / ours_ms
    startup = statistics.median(times["python -c pass"])
    print(f"\nratio check-jsonschema / bulkreg lint (medians): {ratio:.2f}x")
    print(f"bulkreg lint above bare interpreter startup: {ours_ms - startup:.1f} ms")
    print(f"target median <= {TARGET_MS:.0f} ms: {_data.verdict(ours_ms <= TARGET_MS)} "
          f"({ours_ms:.1f} ms)")
    print(f"target >= {TARGET_RATIO:.0f}x faster than check-jsonschema: "
          f"{_data.verdict(ratio >= TARGET_RATIO)} ({ratio:.2f}x)")
    print(_data.load_note("at end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
