"""``bulkreg sas-token`` and the curl recipe of docs/serve.md, run for real against ``bulkreg
serve``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bulkreg_conformance.hub.cli import BackgroundHub
from bulkreg_conformance.sas import generate_token, make_connection_string, new_key

from .conftest import API

SERVE_DOC = Path(__file__).parents[2] / "docs" / "serve.md"
BIN = Path(sys.executable).parent


def _sas_token(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BULKREG_")}
    return subprocess.run([sys.executable, "-m", "bulkreg_validator", "sas-token", *args],
                          env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_token_opens_the_hub(hub: BackgroundHub) -> None:
    import requests  # noqa: PLC0415

    done = _sas_token(env={"BULKREG_CONNECTION_STRING": hub.connection_string})
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("SharedAccessSignature sr=") and "\n" not in token
    answer = requests.get(f"{hub.url}/devices/none", params={"api-version": API},
                          headers={"Authorization": token}, timeout=30)
    assert answer.status_code == 404  # authenticated: the device is simply absent
    scoped = _sas_token("--connection-string", hub.connection_string, "--resource",
                        f"{hub.hub.host_name}/twins")
    refused = requests.get(f"{hub.url}/devices/none", params={"api-version": API},
                           headers={"Authorization": scoped.stdout.strip()}, timeout=30)
    assert refused.status_code == 401  # a token for /twins does not open /devices


def test_policy_picks_the_matching_connection_string() -> None:
    key = new_key()
    reader = make_connection_string("h.example", "registryRead", key)
    done = _sas_token("--policy", "registryRead", "--ttl", "60",
                      env={"BULKREG_CONNECTION_STRING_REGISTRYREAD": reader})
    assert done.returncode == 0, done.stderr
    expected = generate_token("h.example", "registryRead", key, ttl=60)
    # the same policy and resource; the expiry second may differ
    assert done.stdout.split("&se=")[0].split("&sig=")[0] == expected.split("&sig=")[0]
    assert done.stdout.strip().endswith("&skn=registryRead")


@pytest.mark.parametrize(("args", "env", "says"), [
    ((), {}, "no connection string"),
    (("--connection-string", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0!"), {},
     "not valid base64"),
    (("--connection-string", "garbage"), {}, "not Name=Value"),
    (("--policy", "service"), {"BULKREG_CONNECTION_STRING":
                               "HostName=h;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0"},
     "policy p, not service"),
    (("--ttl", "0"), {}, "below 1 second"),
])
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], env: dict[str, str],
                                          says: str) -> None:
    done = _sas_token(*args, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert says in done.stderr and "Traceback" not in done.stderr
    assert "c2VjcmV0" not in done.stderr  # never the key


def _recipe() -> str:
    text = SERVE_DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- curl-recipe -->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert found, "docs/serve.md has no curl recipe block"
    return found.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_recipe_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKREG_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", _recipe()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert '"isSuccessful":true' in done.stdout
    assert '"deviceId":"curl-1"' in done.stdout
    assert (tmp_path / ".bulkreg-tls" / "ca.pem").is_file()
