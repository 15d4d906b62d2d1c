"""`bulkreg jobs import|export|show|list|cancel` as a user runs it: the real entry point in a
process, against `serve --tls` (its BULKREG_URL, connection string and CA) and Azurite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bulkreg_conformance.azurite import Azurite
from bulkreg_conformance.hub.cli import BackgroundHub, start_background
from bulkreg_conformance.hub.tls import local_certificates, server_context
from bulkreg_conformance.sas import parse_connection_string

from .conftest import HubJobs, fresh_container, lines_of

KEY = "QUJDREVGR0hJSktMTU5PUA=="  # a device key in the file: never printed
FILE = lines_of(
    {"id": "cli-1", "authentication": {"symmetricKey": {"primaryKey": KEY,
                                                        "secondaryKey": KEY}}},
    {"id": "cli-2", "importMode": "update"},                       # absent: the registry
    {"id": "cli 3"},                                               # lint predicts it
    {"id": "cli-4", "status": "Enabled"},                          # a warning only
    b'{"id": "cli-5", "authentication": {"symmetricKey": {"primaryKey": "' + KEY.encode() + b'"',
)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[tuple[BackgroundHub, dict[str, str]]]:
    found = local_certificates(tmp_path / "tls")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(found.ca))  # for this test's own requests
    with start_background(tls=server_context(found.cert, found.key)) as hub:
        hub.hub.jobs.storage_retries = 0
        env = {**os.environ, "BULKREG_URL": hub.url,
               "BULKREG_CONNECTION_STRING": hub.connection_string,
               "BULKREG_CA_CERT": str(found.ca)}
        env.pop("CI", None)
        env.pop("REQUESTS_CA_BUNDLE", None)  # the CLI trusts the hub through BULKREG_CA_CERT
        yield hub, env


def bulkreg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bulkreg_validator", "jobs", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _clean(done: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for text in (done.stdout, done.stderr):
        assert "Traceback" not in text
        assert "sig=" not in text.replace("sig=<redacted>", "")
        for secret in secrets:
            assert secret not in text


def test_import_prints_each_failure_beside_its_line(azurite: Azurite, tmp_path: Path,
                                                    served: tuple[BackgroundHub, dict[str, str]]
                                                    ) -> None:
    hub, env = served
    path = tmp_path / "fleet.txt"
    path.write_bytes(FILE)
    container = fresh_container(azurite)
    done = bulkreg(env, "import", str(path), "--container-uri", container)
    hub_key = parse_connection_string(hub.connection_string).key
    _clean(done, KEY, hub_key, urlsplit(container).query)
    assert done.returncode == 1, done.stderr
    assert "lint: 5 line(s); 2 will fail whatever the registry holds" in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("import job ") and lines[0].endswith(
        "completed: 5 line(s), 2 applied, 3 failed")
    assert lines[1] == ("fleet.txt:2: DeviceNotFound (404001): Device cli-2 could not be found. "
                        "[depends on the registry]")
    assert lines[2] == '    {"id": "cli-2", "importMode": "update"}'
    assert lines[3].startswith("fleet.txt:3: ArgumentInvalid (400004): id 'cli 3'")
    assert lines[3].endswith("[lint predicted it]")
    assert lines[5].startswith("fleet.txt:5: IotHubFormatError (400006): Invalid device format "
                               'in line: {"id": "cli-5", "authentication": {"symmetricKey": '
                               '{"primaryKey": "<redacted>"')
    assert lines[6] == ('    {"id": "cli-5", "authentication": {"symmetricKey": {"primaryKey": '
                        '"<redacted>"')
    assert len(lines) == 7
    assert HubJobs(hub).call("GET", "/devices/cli-4").status_code == 200


def test_every_line_applied_is_exit_0(azurite: Azurite, tmp_path: Path,
                                      served: tuple[BackgroundHub, dict[str, str]]) -> None:
    _, env = served
    path = tmp_path / "good.jsonl"
    path.write_bytes(lines_of({"id": "g1"}, {"id": "g2"}))
    source, target = fresh_container(azurite), fresh_container(azurite)
    done = bulkreg(env, "import", str(path), "--container-uri", source,
                   "--output-container-uri", target, "--blob-name", "good.jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].endswith("completed: 2 line(s), 2 applied, 0 failed")
    assert done.stderr.startswith("lint: 2 line(s); 0 will fail")  # no bar: not a terminal


def test_export_show_list_and_cancel(azurite: Azurite, tmp_path: Path,
                                     served: tuple[BackgroundHub, dict[str, str]]) -> None:
    hub, env = served
    client = HubJobs(hub)
    assert client.call("POST", "/devices", [{"id": f"x{i}", "importMode": "create"}
                                            for i in range(3)]).ok
    container = fresh_container(azurite)
    saved = tmp_path / "export.txt"
    done = bulkreg(env, "export", "--container-uri", container, "--exclude-keys",
                   "--download", str(saved))
    _clean(done, urlsplit(container).query)
    assert done.returncode == 0, done.stderr
    assert [json.loads(x)["id"] for x in saved.read_text().splitlines()] == ["x0", "x1", "x2"]
    job_id = done.stdout.split()[2]

    shown = bulkreg(env, "show", job_id)
    assert shown.returncode == 0 and "status: completed" in shown.stdout
    assert "excludeKeysInExport: True" in shown.stdout
    _clean(shown, urlsplit(container).query)
    listed = bulkreg(env, "list", "--json")
    assert [j["jobId"] for j in json.loads(listed.stdout)] == [job_id]
    assert "?" not in json.loads(listed.stdout)[0]["outputBlobContainerUri"]

    hub.hub.jobs.hold(0)  # the next import waits before its first batch
    path = tmp_path / "held.txt"
    path.write_bytes(lines_of({"id": "h1"}))
    started = bulkreg(env, "import", str(path), "--container-uri", container, "--no-wait")
    assert started.returncode == 0, started.stderr
    held = started.stdout.strip()
    busy = bulkreg(env, "export", "--container-uri", container)
    assert busy.returncode == 2
    assert "403 JobQuotaExceeded" in busy.stderr and "bulkreg jobs list" in busy.stderr
    cancelled = bulkreg(env, "cancel", held)
    assert cancelled.returncode == 0 and held in cancelled.stdout
    assert client.wait(held)["status"] == "cancelled"
    as_json = json.loads(bulkreg(env, "cancel", held, "--json").stdout)  # ended: unchanged
    assert as_json["status"] == "cancelled" and "?" not in as_json["inputBlobContainerUri"]
    again = bulkreg(env, "show", held)
    assert "failureReason: Cancelled. No line was applied." in again.stdout


def test_a_job_that_fails_is_exit_2_with_its_reason(azurite: Azurite, tmp_path: Path,
                                                    served: tuple[BackgroundHub,
                                                                  dict[str, str]]) -> None:
    _, env = served
    path = tmp_path / "devices.txt"
    path.write_bytes(lines_of({"id": "f1"}))
    source = fresh_container(azurite)
    name = urlsplit(source).path.rsplit("/", 1)[1]
    read_only = azurite.container_uri(name, "rl", create=False)
    done = bulkreg(env, "import", str(path), "--container-uri", source,
                   "--output-container-uri", read_only)
    _clean(done, urlsplit(read_only).query)
    assert done.returncode == 2
    assert "failed: Unable to access blob (IH400007)" in done.stdout
    assert "No line was applied." in done.stdout


@pytest.mark.parametrize(("args", "env_change", "words"), [
    (["import", "missing.txt", "--container-uri", "https://x/c"], {}, "no such file"),
    (["import", "EMPTY", "--container-uri", "https://x/c"], {}, "holds no device line"),
    (["list"], {"BULKREG_CONNECTION_STRING": ""}, "give --connection-string"),
    (["list"], {"BULKREG_CONNECTION_STRING": "HostName=h;SharedAccessKey=c2VjcmV0"},
     "connection string is not valid"),
    (["list"], {"BULKREG_CA_CERT": "/nonexistent.pem"}, "no such file"),
    (["list"], {"BULKREG_CA_CERT": ""}, "not trusted"),
    (["list"], {"BULKREG_URL": "https://127.0.0.1:9"}, "cannot reach"),
    (["show", "nope"], {}, "404 JobNotFound"),
    (["list"], {"WRONG_KEY": "1"}, "401 IotHubUnauthorizedAccess"),
    (["import", "x", "--poll", "0"], {}, "outside 0..3600"),
    (["frobnicate"], {}, "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path,
                                          served: tuple[BackgroundHub, dict[str, str]],
                                          args: list[str], env_change: dict[str, str],
                                          words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, env = served
    env = {**env, **env_change}
    if "WRONG_KEY" in env_change:
        env["BULKREG_CONNECTION_STRING"] = env["BULKREG_CONNECTION_STRING"].rsplit(
            "SharedAccessKey=", 1)[0] + "SharedAccessKey=" + "QUFB" * 11
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY").write_bytes(b"\n")
    done = bulkreg(env, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr, done.stderr
    _clean(done, "c2VjcmV0")
    assert len(done.stderr.strip().splitlines()) == 1 or done.stderr.startswith("usage:")
