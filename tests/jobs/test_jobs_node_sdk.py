"""The official Node.js service SDK (npm azure-iothub, pinned in tests/hub/node), unmodified,
running import and export jobs on the hub over TLS with Azurite as the blob store: every step of
tests/hub/node/jobs.js is a test here.

The SDK always dials port 443 of the connection string's HostName: skipped (with the reason) only
where node/npm are missing or port 443 cannot be bound; CI runs as root (.ci/run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkreg_conformance.azurite import Azurite
from bulkreg_conformance.hub.cli import BackgroundHub, start_background
from bulkreg_conformance.hub.tls import local_certificates, server_context

from .conftest import fresh_container

NODE_DIR = Path(__file__).resolve().parents[1] / "hub" / "node"
STEPS = ["upload", "importDevicesFromBlob", "getJob until completed", "read importErrors.log",
         "listJobs", "exportDevicesToBlob", "round trip", "exportDevicesToBlob excluding keys",
         "cancelJob"]

pytestmark = pytest.mark.sdk


def _sdk_installed() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the Node.js SDK scenario")
    if not (NODE_DIR / "node_modules" / "azure-iothub").is_dir():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"npm ci failed:\n{done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def on_443(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BackgroundHub, Path]]:
    _sdk_installed()
    found = local_certificates(tmp_path_factory.mktemp("tls"))
    try:
        running = start_background(port=443, tls=server_context(found.cert, found.key))
    except PermissionError:
        pytest.skip("cannot bind 127.0.0.1:443 (needs root or CAP_NET_BIND_SERVICE); the Node "
                    "SDK always dials port 443")
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.1:443: {exc.strerror}")
    with running:
        running.hub.jobs.storage_retries = 0
        yield running, found.ca


@pytest.fixture(scope="module")
def scenario(on_443: tuple[BackgroundHub, Path], azurite: Azurite) -> dict[str, dict[str, object]]:
    running, ca = on_443
    containers = {name: fresh_container(azurite) for name in ("input", "output", "copy", "big")}
    running.hub.jobs.batch_lines = 50
    running.hub.jobs.hold(100)  # the cancelJob step's 300-line import stays running until cancelled
    env = {**os.environ, "BULKREG_CONNECTION_STRING": running.connection_string,
           "BULKREG_CONTAINERS": json.dumps(containers), "NODE_EXTRA_CA_CERTS": str(ca)}
    env.pop("NODE_TLS_REJECT_UNAUTHORIZED", None)  # the certificate is verified for real
    done = subprocess.run(["node", "jobs.js"], cwd=NODE_DIR, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            step = json.loads(line)
            results[step["step"]] = step
    assert results, f"the scenario printed no step:\n{done.stdout}\n{done.stderr}"
    return results


@pytest.mark.parametrize("step", STEPS)
def test_node_sdk_job_step(scenario: dict[str, dict[str, object]], step: str) -> None:
    assert step in scenario, f"step {step!r} did not run"
    assert scenario[step]["ok"], scenario[step].get("detail")


def test_the_scenario_runs_exactly_these_steps(scenario: dict[str, dict[str, object]]) -> None:
    assert list(scenario) == STEPS
