"""Seed sweep: the default ``bulkreg conform`` against its own hub over N random seeds.

A gate that fails a faithful endpoint on one seed in a hundred gets switched off, so this runs
the quick start's command (``bulkreg conform --seed S``, built-in hub, default suites and budget)
once per seed, each in its own process, and prints the pass count, the slowest run and, for every
failing seed, its verdict line and first failure. Exit 0 when every seed passed, 1 otherwise.

    python tests/benchmarks/seed_sweep.py                 # 200 random seeds, 2 at a time
    python tests/benchmarks/seed_sweep.py --count 10 --jobs 1 --first-seed 1000

Seeds are random unless ``--first-seed`` is given (then consecutive from it); every failing seed
is printed so it can be re-run alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    seed: int
    exit_code: int
    seconds: float
    verdict: str
    first_failure: str


def _conform(seed: int, timeout: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="bulkreg-sweep-") as tmp:
        report = Path(tmp) / "report.json"
        started = time.monotonic()
        command = [sys.executable, "-m", "bulkreg_validator", "conform", "--seed", str(seed),
                   "--report-json", str(report)]
        env = {k: v for k, v in os.environ.items()
               if k not in {"BULKREG_CONNECTION_STRING", "BULKREG_ENDPOINT", "BULKREG_URL",
                            "BULKREG_CA_CERT", "BULKREG_READ_CONNECTION_STRING"}}
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  cwd=tmp, env=env, check=False)
        except subprocess.TimeoutExpired:
            return Run(seed, -1, time.monotonic() - started, "timed out", "")
        seconds = time.monotonic() - started
        verdict = next((line for line in proc.stdout.splitlines()
                        if line.startswith("verdict:")), proc.stderr.strip()[-200:])
        first = ""
        if report.is_file():
            data = json.loads(report.read_text(encoding="utf-8"))
            failures = [f for f in data.get("failures", []) if f.get("verdict") == "failed"]
            if failures:
                f = failures[0]
                first = f"{f['check']} ({f['evidence']}, {f['suite']}): {f['message'][:300]}"
            elif data.get("errors"):
                first = "; ".join(data["errors"])[:300]
        return Run(seed, proc.returncode, seconds, verdict, first)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="seeds to run (default 200)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--first-seed", type=int, help="consecutive seeds from this one")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds before a run counts as hung (default 120)")
    args = parser.parse_args(argv)
    if args.first_seed is not None:
        seeds = list(range(args.first_seed, args.first_seed + args.count))
    else:
        seeds = [random.SystemRandom().randrange(2**31) for _ in range(args.count)]
    started = time.monotonic()
    runs: list[Run] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for run in pool.map(lambda s: _conform(s, args.timeout), seeds):
            runs.append(run)
            mark = "pass" if run.exit_code == 0 else "FAIL"
            print(f"[{len(runs):>4}/{len(seeds)}] seed {run.seed:>10}  {mark}  "
                  f"{run.seconds:5.1f}s  {run.verdict}", flush=True)
    passed = [r for r in runs if r.exit_code == 0]
    slowest = max(runs, key=lambda r: r.seconds)
    print()
    print(f"passed: {len(passed)} of {len(runs)} seeds ({time.monotonic() - started:.0f}s in all, "
          f"{args.jobs} at a time)")
    print(f"slowest run: seed {slowest.seed}, {slowest.seconds:.1f}s; median "
          f"{sorted(r.seconds for r in runs)[len(runs) // 2]:.1f}s")
    for run in runs:
        if run.exit_code != 0:
            print(f"FAILED seed {run.seed} (exit {run.exit_code}): {run.verdict}\n    "
                  f"{run.first_failure}")
    return 0 if len(passed) == len(runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
