"""Benchmark: a 1,000,000-line import job through Azurite into `bulkreg serve --db`, then an
export of the same registry (issue 14 §8).

Owns the figures of docs/jobs.md's Scale section: the job's wall time and lines per second, and the
hub's resident memory while it runs. The blob is streamed (4 MiB chunks, 1,000 lines a batch),
so the hub's memory follows the registry it builds, not the file: the script measures the same
hub restarted on the same --db (the registry alone, loaded from SQLite) and prints how much the
job's peak exceeds it, and the RSS at every tenth of the job against the blob read so far.
The export runs on that restarted hub. Prints figures; asserts nothing; exit 0 unless it cannot
run (no Azurite: `npm ci` in tests/azurite).

    python tests/benchmarks/bench_jobs.py [--lines 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _data
from azure.storage.blob import ContainerClient

from bulkreg_conformance.azurite import find_azurite, start_azurite
from bulkreg_conformance.jobs_client import JobsClient

MIB = 1024 * 1024


def rss(pid: int, field: str = "VmRSS") -> float:
    """Resident (VmRSS) or peak resident (VmHWM) memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Hub:
    """`bulkreg serve --db FILE` as a process of its own (its memory is measured alone)."""

    def __init__(self, db: Path, log: Path) -> None:
        with log.open("a") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bulkreg_conformance.hub.cli", "--db", str(db)],
                stdout=subprocess.PIPE, stderr=errors, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip().partition("=")[2]
        cs = self.process.stdout.readline().strip().partition("=")[2]
        if not self.url:
            raise SystemExit(f"bulkreg serve did not start; see {log}")
        self.client = JobsClient(cs, self.url, timeout=120)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)
        if self.process.stdout is not None:
            self.process.stdout.close()


class Sampler(threading.Thread):
    """The hub's RSS every 0.2 s, with the job's progress as last seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.progress = 0
        self.samples: list[tuple[float, int, float]] = []  # (seconds, progress %, MiB)
        self.done = threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.samples.append((time.monotonic() - self.start_time, self.progress,
                                 rss(self.pid)))


def run_job(hub: Hub, job: dict[str, Any]) -> tuple[dict[str, Any], float, Sampler]:
    sampler = Sampler(hub.process.pid)
    sampler.start()
    started = time.monotonic()

    def seen(state: dict[str, Any]) -> None:
        sampler.progress = int(state.get("progress") or 0)

    ended = hub.client.wait(job["jobId"], poll=0.5, on_progress=seen)
    wall = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    return ended, wall, sampler


def by_tenths(sampler: Sampler) -> str:
    shown, cells = set(), []
    for _, progress, mib in sampler.samples:
        tenth = progress // 10 * 10
        if tenth not in shown:
            shown.add(tenth)
            cells.append(f"{tenth}%: {mib:,.0f}")
    return ", ".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=_data.positive, default=1_000_000)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    args = parser.parse_args(argv)
    if find_azurite() is None:
        print("Azurite is not installed: run `npm ci` in tests/azurite", file=sys.stderr)
        return 2
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    work.mkdir(parents=True, exist_ok=True)
    print(_data.load_note("start"))
    try:
        return measure(work, args.lines)
    finally:
        print(_data.load_note("end"))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, lines: int) -> int:
    source_file = work / "devices.txt"
    begun = time.monotonic()
    size = _data.write_import_file(source_file, lines, profile="small")
    print(f"file: {lines:,} lines, {size / MIB:,.0f} MiB (written in "
          f"{time.monotonic() - begun:.1f} s)")
    with start_azurite(work / "azurite") as azurite:
        source, target = azurite.container_uri("input"), azurite.container_uri("output")
        begun = time.monotonic()
        with source_file.open("rb") as stream:
            ContainerClient.from_container_url(source).upload_blob(
                "devices.txt", stream, overwrite=True, max_concurrency=2)
        print(f"upload to Azurite: {time.monotonic() - begun:.1f} s")

        db, log = work / "hub.db", work / "hub.log"
        hub = Hub(db, log)
        empty = rss(hub.process.pid)
        job = hub.client.create_import(source, target)
        ended, wall, sampler = run_job(hub, job)
        peak = rss(hub.process.pid, "VmHWM")
        hub.stop()
        failed = sum(1 for _ in ContainerClient.from_container_url(target).download_blob(
            "importErrors.log").readall().splitlines())
        print(f"import job: {ended['status']} {ended.get('failureReason') or ''}".rstrip())
        print(f"  wall time {wall:,.1f} s ({lines / wall:,.0f} lines/s); importErrors.log "
              f"{failed:,} lines (update/delete of absent devices in the mix)")
        print(f"  hub RSS: {empty:,.0f} MiB empty, peak {peak:,.0f} MiB; by progress "
              f"(MiB): {by_tenths(sampler)}")

        hub = Hub(db, log)  # the same registry, loaded from SQLite: what the registry costs
        loaded = rss(hub.process.pid)
        devices = hub.client._call("GET", "/statistics/devices")["totalDeviceCount"]
        print(f"the same hub restarted on the same --db: {loaded:,.0f} MiB (the registry of "
              f"{devices:,} devices alone, loaded from SQLite)")

        # the same file again: its lines update (or delete) devices that exist, so the registry
        # does not grow and the hub's memory shows what the job itself holds
        again = hub.client.create_import(source, target)
        ended, wall, sampler = run_job(hub, again)
        again_peak = rss(hub.process.pid, "VmHWM")
        print(f"the same import again into the loaded hub: {ended['status']}, wall time "
              f"{wall:,.1f} s ({lines / wall:,.0f} lines/s)")
        print(f"  hub RSS: {loaded:,.0f} MiB before, peak {again_peak:,.0f} MiB "
              f"({again_peak - loaded:+,.0f} MiB for a {size / MIB:,.0f} MiB blob); by progress "
              f"(MiB): {by_tenths(sampler)}")
        hub.stop()

        hub = Hub(db, log)
        loaded = rss(hub.process.pid)
        devices = hub.client._call("GET", "/statistics/devices")["totalDeviceCount"]
        export = hub.client.create_export(target, exclude_keys=False)
        ended, wall, sampler = run_job(hub, export)
        export_peak = rss(hub.process.pid, "VmHWM")
        hub.stop()
        exported = ContainerClient.from_container_url(target).get_blob_client(
            "devices.txt").get_blob_properties().size
        print(f"export job ({devices:,} devices, a restarted hub): {ended['status']}, wall time "
              f"{wall:,.1f} s ({devices / wall:,.0f} devices/s), devices.txt "
              f"{exported / MIB:,.0f} MiB")
        print(f"  hub RSS: {loaded:,.0f} MiB before, peak {export_peak:,.0f} MiB "
              f"({export_peak - loaded:+,.0f} MiB); by progress (MiB): {by_tenths(sampler)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
