"""The official Node.js service SDK (npm azure-iothub, pinned in node/package.json), unmodified,
as a real client of the hub over TLS: every step of node/scenario.js is a test here.

The SDK speaks https only and always dials port 443 of the connection string's HostName, so the
hub listens on 127.0.0.1:443 with a local CA the SDK trusts through NODE_EXTRA_CA_CERTS. Skipped,
with the reason in pytest's summary (tests/hub/conftest.py adds a "Node.js SDK tests" section),
only where node/npm are missing, the pinned SDK is not installed (``npm ci`` in tests/hub/node;
a test never reaches the network on its own) or port 443 cannot be bound (not root and no
CAP_NET_BIND_SERVICE, or another process holds it); CI runs as root and installs the SDK with
``npm ci`` (.ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkreg_conformance.hub.cli import BackgroundHub, start_background
from bulkreg_conformance.hub.tls import local_certificates, server_context

NODE_DIR = Path(__file__).parent / "node"
STEPS = ["addDevices", "get", "updateDevices", "updateDevices with the etag of get()",
         "updateDevices stale etag", "addDevices duplicate",
         "removeDevices", "create", "create duplicate", "update", "list", "getTwin",
         "updateTwin", "updateTwin stale etag", "wrong key", "delete", "createQuery",
         "getRegistryStatistics", "modules", "module twins"]

pytestmark = pytest.mark.sdk


def _sdk_installed() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        pytest.skip(f"{' and '.join(missing)} {verb} not on PATH: install Node.js (with npm) to "
                    "run the Node.js SDK scenario")
    if not (NODE_DIR / "node_modules" / "azure-iothub").is_dir():
        pytest.skip(f"the pinned Node.js SDK is not installed: run `npm ci` in {NODE_DIR} "
                    "(.ci/run does)")


@pytest.fixture(scope="module")
def on_443(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BackgroundHub, Path]]:
    _sdk_installed()
    found = local_certificates(tmp_path_factory.mktemp("tls"))
    try:
        running = start_background(port=443, tls=server_context(found.cert, found.key))
    except PermissionError:
        pytest.skip("127.0.0.1:443 cannot be bound (needs root or CAP_NET_BIND_SERVICE), and "
                    "the Node.js SDK dials no other port")
    except OSError as exc:
        pytest.skip(f"127.0.0.1:443 cannot be bound ({exc.strerror}), and the Node.js SDK dials "
                    "no other port")
    with running:
        yield running, found.ca


@pytest.fixture(scope="module")
def scenario(on_443: tuple[BackgroundHub, Path]) -> dict[str, dict[str, object]]:
    running, ca = on_443
    assert running.hub.host_name == "127.0.0.1"  # no port: what the Node SDK can dial
    env = {**os.environ, "BULKREG_CONNECTION_STRING": running.connection_string,
           "NODE_EXTRA_CA_CERTS": str(ca)}
    env.pop("NODE_TLS_REJECT_UNAUTHORIZED", None)  # the certificate is verified for real
    done = subprocess.run(["node", "scenario.js"], cwd=NODE_DIR, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            step = json.loads(line)
            results[step["step"]] = step
    assert results, f"the scenario printed no step:\n{done.stdout}\n{done.stderr}"
    return results


# Node's Device objects carry `etag` (lower case) and updateDevices(…, false) sends it as is: the
# hub reads member names case-insensitively, as Newtonsoft.Json does (decision member-casing), so
# that step must pass like the others.
@pytest.mark.parametrize("step", STEPS)
def test_node_sdk_step(scenario: dict[str, dict[str, object]], step: str) -> None:
    assert step in scenario, f"step {step!r} did not run"
    assert scenario[step]["ok"], scenario[step].get("detail")


def test_the_scenario_runs_exactly_these_steps(scenario: dict[str, dict[str, object]]) -> None:
    assert list(scenario) == STEPS
