"""Reproducible, realistic device records for the benchmark scripts, and their shared helpers.

Owns the one generator every benchmark uses, so a bulk file, an import file and the 1M-line
memory file are drawn from the same shapes: ids with the characters the hub allows, etags shaped
like the service's (base64 of a version counter), SAS keys of 32 random bytes or SHA-256/SHA-1
thumbprints, nested tags and desired properties with arrays, all within every rule of the
validator. A ``random.Random(seed)`` drives everything, so the same seed gives the same bytes.

The keys are random bytes drawn at run time from the seeded generator; they are not real keys.
This module also finds the command that runs ``bulkreg lint`` (the console script when the CLI
exists, else a stand-in calling the library) and formats the target verdicts, so the scripts
report the same way. It is not a test module: pytest collects only ``test_*.py``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "PROFILES",
    "bulk_payload",
    "device",
    "import_lines",
    "lint_command",
    "load_note",
    "positive",
    "verdict",
    "write_bulk_file",
    "write_import_file",
]

# How much twin data a device carries: "bulk" is a full provisioning entry of a few KB,
# "import" a typical exported/imported line (~850 bytes), "small" a lean line (~280 bytes: id,
# mode, status, authentication, two tags) for the 1M-line memory file.
PROFILES = ("bulk", "import", "small")

_SITES = ("ams", "fra", "sea", "osa", "gru", "jnb", "syd", "dub", "yyz", "sin")
_KINDS = ("meter", "sensor", "gateway", "valve", "pump", "camera", "hvac", "lock")
_TEAMS = ("ops-north", "ops-south", "facilities", "energy", "security", "r-and-d")
_UNITS = ("C", "kPa", "V", "A", "kWh", "m3/h", "ppm", "%RH")
_ENVS = ("prod", "staging", "dev")
_WORDS = ("north", "wing", "roof", "basement", "line", "bay", "dock", "hall", "annex", "yard")

_BULK_MODES = (("create", 60), ("update", 15), ("updateIfMatchETag", 10),
               ("updateTwin", 10), ("updateTwinIfMatchETag", 5))
_IMPORT_MODES = (("createOrUpdate", 55), (None, 15), ("createOrUpdateIfMatchETag", 5),
                 ("create", 10), ("update", 5), ("updateTwin", 5), ("delete", 5))
_TWIN_ONLY = {"updateTwin", "updateTwinIfMatchETag"}
_DELETE = {"delete", "deleteIfMatchETag"}
_ETAG = {"updateIfMatchETag", "deleteIfMatchETag", "createOrUpdateIfMatchETag"}


def _pick(rng: random.Random, weighted: tuple[tuple[Any, int], ...]) -> Any:
    values = [v for v, _ in weighted]
    weights = [w for _, w in weighted]
    return rng.choices(values, weights)[0]


def _device_id(rng: random.Random, index: int) -> str:
    # The index keeps ids unique; the rest uses only characters every doc version allows.
    return f"{rng.choice(_SITES)}-{rng.choice(_KINDS)}_{index:07d}:{rng.randrange(16**4):04x}"


def _etag(rng: random.Random) -> str:
    # Device etags are observed as base64 of a decimal version counter (facts §2.2).
    return base64.b64encode(str(rng.randrange(10**9)).encode()).decode()


def _twin_etag(rng: random.Random) -> str:
    # Twin etags: base64 of an 8-byte big-endian integer (facts §2.2).
    return base64.b64encode(rng.randrange(2**20).to_bytes(8, "big")).decode()


def _authentication(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.7:
        return {"type": "sas", "symmetricKey": {
            "primaryKey": base64.b64encode(rng.randbytes(32)).decode(),
            "secondaryKey": base64.b64encode(rng.randbytes(32)).decode()}}
    if roll < 0.9:
        size = 32 if rng.random() < 0.8 else 20  # mostly SHA-256, some SHA-1
        return {"type": "selfSigned", "x509Thumbprint": {
            "primaryThumbprint": rng.randbytes(size).hex().upper(),
            "secondaryThumbprint": rng.randbytes(size).hex().upper()}}
    return {"type": "certificateAuthority"}


def _tags(rng: random.Random, profile: str) -> dict[str, Any]:
    if profile == "small":
        return {"site": rng.choice(_SITES), "env": rng.choice(_ENVS)}
    tags: dict[str, Any] = {
        "site": {"name": rng.choice(_SITES), "building": f"B{rng.randrange(1, 40)}",
                 "floor": rng.randrange(-2, 30),
                 "geo": {"lat": round(rng.uniform(-60, 70), 6),
                         "lon": round(rng.uniform(-180, 180), 6)}},
        "owner": {"team": rng.choice(_TEAMS), "costCenter": f"CC-{rng.randrange(10**5):05d}"},
        "environment": rng.choice(_ENVS),
        "labels": rng.sample(_WORDS, rng.randrange(1, 4)),
    }
    if profile == "bulk":
        tags["maintenance"] = {
            "contract": f"MC-{rng.randrange(10**6):06d}", "intervalDays": rng.choice((30, 90, 180)),
            "history": [{"date": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                         "by": rng.choice(_TEAMS), "note": " ".join(rng.sample(_WORDS, 4))}
                        for _ in range(rng.randrange(2, 5))]}
        tags["asset"] = {"serial": rng.randbytes(8).hex(), "vendor": {
            "name": rng.choice(("Contoso", "Fabrikam", "Northwind")),
            "model": {"family": rng.choice(_KINDS), "revision": rng.randrange(1, 9)}}}
    return tags


def _channel(rng: random.Random, n: int) -> dict[str, Any]:
    low = round(rng.uniform(-20, 10), 2)
    return {"name": f"ch{n}", "unit": rng.choice(_UNITS), "enabled": rng.random() < 0.9,
            "thresholds": {"low": low, "high": round(low + rng.uniform(5, 80), 2),
                           "alarm": {"severity": rng.randrange(1, 5),
                                     "notify": {"email": True, "sms": rng.random() < 0.3}}}}


def _desired(rng: random.Random, profile: str) -> dict[str, Any]:
    if profile == "small":
        return {"telemetry": {"intervalSeconds": rng.choice((10, 30, 60))}}
    channels = rng.randrange(3, 7) if profile == "bulk" else rng.randrange(1, 3)
    desired: dict[str, Any] = {
        "telemetry": {"intervalSeconds": rng.choice((5, 10, 30, 60, 300)),
                      "channels": [_channel(rng, n) for n in range(channels)]},
        "firmware": {"version": f"{rng.randrange(1, 4)}.{rng.randrange(20)}.{rng.randrange(99)}",
                     "sha256": rng.randbytes(32).hex()},
    }
    if profile == "bulk":
        desired["firmware"]["url"] = (
            f"https://updates.example.com/{rng.choice(_KINDS)}/{rng.randbytes(6).hex()}.bin")
        desired["schedule"] = {"windows": [
            {"day": d, "from": f"{rng.randrange(24):02d}:00", "hours": rng.randrange(1, 6)}
            for d in rng.sample(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), 3)]}
        desired["network"] = {"mqtt": {"keepAlive": 240, "qos": 1},
                              "proxy": {"host": f"proxy{rng.randrange(9)}.corp.example",
                                        "port": 3128}}
    return desired


def device(rng: random.Random, index: int, *, profile: str = "import",
           modes: str = "import") -> dict[str, Any]:
    """One valid entry (no finding, warnings included) for a bulk call or an import line."""
    mode = _pick(rng, _IMPORT_MODES if modes == "import" else _BULK_MODES)
    entry: dict[str, Any] = {"id": _device_id(rng, index)}
    if mode is not None:
        entry["importMode"] = mode
    if mode in _ETAG:
        entry["eTag"] = _etag(rng)
    if mode == "updateTwinIfMatchETag":
        entry["twinETag"] = _twin_etag(rng)
    if mode in _DELETE:
        return entry
    if mode not in _TWIN_ONLY:
        disabled = rng.random() < 0.1
        entry["status"] = "disabled" if disabled else "enabled"
        if disabled:
            entry["statusReason"] = f"decommissioned by {rng.choice(_TEAMS)} (ticket {index})"
        entry["authentication"] = _authentication(rng)
        if profile == "small":
            entry["tags"] = _tags(rng, profile)
            return entry
        entry["capabilities"] = {"iotEdge": rng.random() < 0.05}
        if rng.random() < 0.2:
            scope = f"ms-azure-iot-edge://gw-{rng.randrange(999):03d}-{rng.randrange(10**18)}"
            entry["deviceScope"] = scope
            entry["parentScopes"] = [scope]
    entry["tags"] = _tags(rng, profile)
    entry["properties"] = {"desired": _desired(rng, profile)}
    return entry


def bulk_payload(count: int = 100, *, seed: int = 1) -> list[dict[str, Any]]:
    """A bulk request body of ``count`` full entries."""
    rng = random.Random(seed)
    return [device(rng, i, profile="bulk", modes="bulk") for i in range(count)]


def write_bulk_file(path: Path, count: int = 100, *, seed: int = 1) -> int:
    """Write an indented bulk payload (as a developer would commit it); returns its size."""
    text = json.dumps(bulk_payload(count, seed=seed), indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))


def import_lines(count: int, *, seed: int = 2, profile: str = "import") -> Iterator[bytes]:
    """``count`` import-file lines (compact JSON, newline-terminated), generated lazily."""
    rng = random.Random(seed)
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for i in range(count):
        yield dumps(device(rng, i, profile=profile)).encode("utf-8") + b"\n"


def write_import_file(path: Path, count: int, *, seed: int = 2, profile: str = "import") -> int:
    """Stream ``count`` lines to ``path`` without holding them; returns the byte size."""
    size = 0
    with path.open("wb", buffering=1 << 20) as out:
        for line in import_lines(count, seed=seed, profile=profile):
            out.write(line)
            size += len(line)
    return size


# Stand-in for `bulkreg lint` while the CLI module does not exist yet: the same library call, the
# same exit codes (0 clean, 1 error findings), one text line per finding.
_STAND_IN = """\
import sys
import bulkreg_validator as bv
path, mode = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    report = bv.validate_import(f) if mode == "import" else bv.validate(f.read())
for x in report.findings:
    print(f"{path}:{x.line}:{x.column}: {x.severity} {x.rule} [{x.code}] {x.message}")
sys.exit(0 if report.ok else 1)
"""


def lint_command(path: Path, mode: str = "bulk") -> tuple[list[str], str]:
    """The argv that lints ``path``, and a line saying which command it is."""
    if importlib.util.find_spec("bulkreg_validator.cli") is not None:
        script = Path(sys.executable).with_name("bulkreg")
        if script.exists():
            return [str(script), "lint", "--mode", mode, str(path)], f"{script} lint"
        argv = [sys.executable, "-c", "import sys; from bulkreg_validator.cli import main; "
                "sys.exit(main())", "lint", "--mode", mode, str(path)]
        return argv, "python -c 'bulkreg_validator.cli.main()' lint (no console script found)"
    note = ("bulkreg_validator.cli does not exist yet: timing a stand-in that calls "
            "bulkreg_validator.validate/validate_import in `python -c` (same imports and work, "
            "no argument parsing or report formatting)")
    return [sys.executable, "-c", _STAND_IN, str(path), mode], note


def load_note(when: str) -> str:
    """The load average, so a reader can tell a quiet run from one that shared its cores."""
    one, five, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    busy = "  (busy: other work shares the cores, figures are noisy)" if one > cores * 0.75 \
        else ""
    return f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min) on {cores} cores{busy}"


def positive(text: str) -> int:
    """argparse type for sizes and counts: a clear usage error instead of a traceback later."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"
