"""Live-safety rails: foreign devices untouched, every created device deleted (also on failure),
keys never in any output, exit codes of the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from bulkreg_conformance.hub.app import Hub
from bulkreg_conformance.runner import Settings, run

from .conftest import Served


def _snapshot(hub: Hub) -> bytes:
    records = {"|".join(k): v for k, v in hub.registry.records().items()}
    return orjson.dumps(records, option=orjson.OPT_SORT_KEYS)


def test_foreign_devices_end_byte_identical(serve: Callable[..., Served]) -> None:
    served = serve()
    served.hub.seed([{"id": f"foreign-{n}", "importMode": "create", "tags": {"n": n}}
                     for n in range(1000)], "2021-04-12")
    before = _snapshot(served.hub)
    assert len(served.hub.registry) == 1000
    result = run(Settings(endpoint=served.url, connection_string=served.connection_string,
                          suites=("differential", "auth", "property"), max_examples=5, seed=3))
    assert result.exit_code() == 0
    assert result.leaks == []
    assert _snapshot(served.hub) == before


def test_created_devices_are_deleted_even_when_the_run_fails(
        serve: Callable[..., Served]) -> None:
    from .test_broken_hubs import DEFECTS  # noqa: PLC0415

    served = serve(DEFECTS["ignored eTag"][0])
    result = run(Settings(endpoint=served.url, connection_string=served.connection_string,
                          suites=("property",), max_examples=3, seed=5))
    assert result.exit_code() == 1
    assert len(served.hub.registry) == 0


def test_cli_never_prints_the_key(serve: Callable[..., Served], tmp_path: Path) -> None:
    from .test_broken_hubs import DEFECTS  # noqa: PLC0415

    served = serve(DEFECTS["error naming the wrong device"][0])
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "bulkreg_conformance.cli", "--endpoint", served.url,
         "--connection-string", served.connection_string, "--suite", "auth,property",
         "--max-examples", "3", "--seed", "1", "--report-json", str(report),
         "--junit-xml", str(junit)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    outputs = [proc.stdout, proc.stderr, report.read_text(), junit.read_text()]
    outputs += [p.read_text() for p in (tmp_path / "bulkreg-replays").glob("*.json")]
    assert len(outputs) > 4  # replay files were written
    assert "errors" in json.loads(report.read_text())["checks"]
    for text in outputs:
        assert served.key not in text
        assert "sig=" not in text.replace("sig=<redacted>", "")


def test_cli_usage_errors_and_unreachable_endpoint_exit_2() -> None:
    def cli(*args: str) -> int:
        return subprocess.run([sys.executable, "-m", "bulkreg_conformance.cli", *args],
                              capture_output=True, timeout=60, check=False).returncode

    assert cli("--suite", "nope") == 2
    assert cli("--endpoint", "http://127.0.0.1:9") == 2
    cs = "HostName=h.azure-devices.net;SharedAccessKeyName=o;SharedAccessKey=" + "QUFB" * 8
    assert cli("--endpoint", "http://127.0.0.1:9", "--connection-string", cs) == 2
