"""`bulkreg serve --db FILE` keeps its identity across restarts (real processes): the tokens it
issued before a crash are accepted after it, until ``--rotate-key``."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from bulkreg_conformance.sas import generate_token, parse_connection_string

from .test_serve_process import serve

API = "2021-04-12"


def _token(cs: str) -> str:
    parsed = parse_connection_string(cs)
    return generate_token(parsed.host_name, parsed.key_name, parsed.key)


def _get(url: str, token: str, device: str) -> int:
    return requests.get(f"{url}/devices/{device}", params={"api-version": API},
                        headers={"Authorization": token}, timeout=10).status_code


def _stderr(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.kill()
    process.wait(10)
    assert process.stderr is not None
    return process.stderr.read()


def test_a_restarted_hub_accepts_the_tokens_it_issued(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite"
    with serve("--db", str(db)) as (process, url, cs):
        token = _token(cs)  # signed before the crash, as a client would hold it
        created = requests.post(f"{url}/devices", params={"api-version": API},
                                json=[{"id": "kept", "importMode": "create"}],
                                headers={"Authorization": token}, timeout=10)
        assert created.status_code == 200
        os.kill(process.pid, signal.SIGKILL)
        first_log = _stderr(process)
    key = parse_connection_string(cs).key
    identity = Path(f"{db}.identity")
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert key in identity.read_text()
    assert key not in first_log and str(identity) in first_log

    with serve("--db", str(db)) as (process, url2, cs2):
        assert (url2, cs2) == (url, cs)  # same port, same HostName, same key
        assert _get(url2, token, "kept") == 200  # the old token, accepted
        process.send_signal(signal.SIGTERM)
        assert key not in _stderr(process)

    with serve("--db", str(db), "--rotate-key") as (process, url3, cs3):
        assert url3 == url and cs3 != cs  # same address, new key
        assert _get(url3, token, "kept") == 401  # the old token, refused from now on
        assert _get(url3, _token(cs3), "kept") == 200  # the registry is still there
        rotated_log = _stderr(process)
    assert key not in identity.read_text() and parse_connection_string(cs3).key not in rotated_log


def test_a_port_given_replaces_the_kept_one(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite"
    with serve("--db", str(db)):
        pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with serve("--db", str(db), "--port", str(free)) as (_, url, cs):
        assert url.endswith(f":{free}") and f"HostName=127.0.0.1:{free};" in cs
    assert json.loads(Path(f"{db}.identity").read_text())["port"] == free


def test_the_kept_port_taken_is_one_line_naming_the_way_out(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite"
    with serve("--db", str(db)) as (_, url, _cs):
        port = int(url.rpartition(":")[2])
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = _run("--db", str(db))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bulkreg_conformance.hub.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("args", "says"), [
    (["--rotate-key"], "--rotate-key needs --db"),
    (["--db", "{db}", "--rotate-key", "--connection-string",
      "HostName=h;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0"], "exclude each other"),
])
def test_rotate_key_misuse_is_a_usage_error(tmp_path: Path, args: list[str], says: str) -> None:
    result = _run(*(a.format(db=tmp_path / "hub.sqlite") for a in args))
    assert result.returncode == 2 and says in result.stderr
    assert "Traceback" not in result.stderr and "c2VjcmV0" not in result.stderr


def test_a_damaged_identity_file_is_one_line_and_rotate_key_replaces_it(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite"
    identity = Path(f"{db}.identity")
    identity.write_text('{"keys": {"iothubowner": "not base64!"}}')
    result = _run("--db", str(db))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not a bulkreg identity file" in result.stderr and "--rotate-key" in result.stderr
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600  # tightened on the way
    with serve("--db", str(db), "--rotate-key") as (_, url, cs):
        assert _get(url, _token(cs), "none") == 404
    assert "not base64!" not in identity.read_text()


def test_with_a_connection_string_nothing_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite"
    with serve("--db", str(db)) as (_, _url, cs):
        pass
    with serve("--db", str(db), "--connection-string", cs):
        pass
    with serve("--db", str(tmp_path / "other.sqlite"), "--connection-string", cs):
        pass
    assert not Path(f"{tmp_path / 'other.sqlite'}.identity").exists()
