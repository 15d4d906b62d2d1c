"""Benchmark: peak memory of `bulkreg lint --mode import` on a 1,000,000-line import file.

Owns the issue 2 §5 memory target: validating a 1M-line import file stays under 200 MiB peak RSS
(the validator streams; only the duplicate-id set grows with the file). The file is generated
line by line into a temp dir, never held in memory. A second copy, identical but for one line
near the end that repeats an early line's id, checks that the whole-file duplicate is reported.
Peak RSS comes from ``os.wait4`` on the linting child alone (its own rusage, not the max over
every child). Prints figures; asserts nothing; exit 0 unless it cannot run.

    python tests/benchmarks/bench_memory.py [--lines 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _data

TARGET_MIB = 200.0
DUP_FROM = 17  # the early line whose id is repeated
DUP_BACK = 10  # how far from the end the repeating line sits

_ID = re.compile(rb'"id":"([^"]*)"')


def write_files(clean: Path, dup: Path, lines: int, seed: int) -> tuple[int, int, str]:
    """Write the clean file and its one-duplicate twin in one streaming pass.

    Returns (bytes of the clean file, line number of the duplicate, the repeated id).
    """
    dup_line = max(lines - DUP_BACK, DUP_FROM + 1)
    first = b""  # the member '"id":"..."' of line DUP_FROM
    size = 0
    with clean.open("wb", buffering=1 << 20) as a, dup.open("wb", buffering=1 << 20) as b:
        for number, line in enumerate(_data.import_lines(lines, seed=seed, profile="small"), 1):
            a.write(line)
            size += len(line)
            if number == DUP_FROM:
                first = _id_member(line)
            b.write(line.replace(_id_member(line), first, 1) if number == dup_line else line)
    return size, dup_line, json.loads(b"{" + first + b"}")["id"]


def _id_member(line: bytes) -> bytes:
    found = _ID.search(line)
    if found is None:  # the generator always writes an id first; a change there must show
        raise SystemExit(f"generated line without an id: {line[:80]!r}")
    return found.group(0)


def lint_child(path: Path, out: Path) -> tuple[int, float, float]:
    """Lint ``path`` in a child process: (exit code, peak RSS in MiB, wall seconds)."""
    argv, _ = _data.lint_command(path, mode="import")
    with out.open("wb") as sink:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, tell Popen
    return child.returncode, usage.ru_maxrss / 1024, wall  # ru_maxrss is KiB on Linux


def baseline_rss(tmp: Path) -> float:
    """Peak RSS of the same command on a one-line file: interpreter plus imports."""
    one = tmp / "one.jsonl"
    one.write_bytes(next(_data.import_lines(2, seed=99, profile="small")))
    _, rss, _ = lint_child(one, tmp / "one.out")
    return rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=_data.positive, default=1_000_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the files into this directory and keep them")
    args = parser.parse_args(argv)
    if args.lines < DUP_FROM + 2:
        parser.error(f"--lines must be at least {DUP_FROM + 2}")
    print(_data.load_note("at start"))
    with tempfile.TemporaryDirectory(prefix="bulkreg-bench-") as name:
        tmp = args.keep or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        clean, dup = tmp / "devices.jsonl", tmp / "devices-dup.jsonl"
        start = time.perf_counter()
        size, dup_line, dup_id = write_files(clean, dup, args.lines, args.seed)
        print(f"import file: {args.lines} lines, {size / 2**20:.1f} MiB "
              f"({size // args.lines} bytes/line, seed {args.seed}), generated in "
              f"{time.perf_counter() - start:.1f} s")
        print(f"lint command: {_data.lint_command(clean, mode='import')[1]}")
        print(f"one-line file, same command: peak RSS {baseline_rss(tmp):.1f} MiB\n")
        code, rss, wall = lint_child(clean, tmp / "clean.out")
        output = (tmp / "clean.out").read_text(encoding="utf-8", errors="replace")
        print(f"clean file:     exit {code}, peak RSS {rss:7.1f} MiB, wall {wall:6.1f} s "
              f"({args.lines / wall:,.0f} lines/s)")
        if code != 0:
            print(f"  unexpected findings on the clean file:\n{output[:2000]}")
        print(f"target peak RSS < {TARGET_MIB:.0f} MiB: {_data.verdict(rss < TARGET_MIB)} "
              f"({rss:.1f} MiB)\n")
        code, rss, wall = lint_child(dup, tmp / "dup.out")
        output = (tmp / "dup.out").read_text(encoding="utf-8", errors="replace")
        print(f"duplicate file: exit {code}, peak RSS {rss:7.1f} MiB, wall {wall:6.1f} s")
        hits = [ln for ln in output.splitlines() if "duplicate-id" in ln]
        found = code == 1 and any(f":{dup_line}:" in ln for ln in hits)
        print(f"  line {dup_line} repeats the id {dup_id!r} of line {DUP_FROM}: "
              f"{'reported' if found else 'NOT reported'}")
        for line in hits[:3]:
            print(f"  {line}")
        if not found:
            print(f"  lint output (exit {code}):\n{output[:2000]}")
    print(_data.load_note("at end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
