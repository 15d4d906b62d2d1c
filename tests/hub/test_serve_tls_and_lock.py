"""`bulkreg serve` as a user runs it: --tls (made, reused, or the user's own pair), the --db lock
against a second server, a lock released by SIGKILL, and an access log without colour codes."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from bulkreg_conformance.hub.tls import local_certificates
from bulkreg_conformance.sas import generate_token, parse_connection_string

API = "2021-04-12"
SERVE = [sys.executable, "-m", "bulkreg_conformance.hub.cli"]


@contextmanager
def serve(*args: str, stderr: object = subprocess.PIPE) -> Iterator[tuple[subprocess.Popen[str],
                                                                         dict[str, str]]]:
    """The process and its ready lines (NAME -> value)."""
    process = subprocess.Popen([*SERVE, *args], stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        while "BULKREG_CONNECTION_STRING" not in lines or \
                ("--tls" in args and "BULKREG_CA_CERT" not in lines):
            line = process.stdout.readline()
            assert line, "serve exited before its ready lines"
            name, _, value = line.strip().partition("=")
            lines[name] = value
        yield process, lines
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None and not isinstance(stream, int):
                stream.close()


def _get(lines: dict[str, str], path: str, verify: str | bool = True) -> requests.Response:
    cs = parse_connection_string(lines["BULKREG_CONNECTION_STRING"])
    token = generate_token(cs.host_name, cs.key_name, cs.key)
    return requests.get(lines["BULKREG_URL"] + path, params={"api-version": API},
                        headers={"Authorization": token}, verify=verify, timeout=30)


def test_tls_makes_a_ca_prints_it_and_reuses_it(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    with serve("--tls", "--tls-dir", str(folder)) as (_, lines):
        ca = lines["BULKREG_CA_CERT"]
        assert Path(ca) == folder / "ca.pem"
        assert lines["BULKREG_URL"].startswith("https://127.0.0.1:")
        port = lines["BULKREG_URL"].rsplit(":", 1)[1]
        assert lines["BULKREG_CONNECTION_STRING"].startswith(f"HostName=127.0.0.1:{port};")
        assert _get(lines, "/devices/none", verify=ca).status_code == 404
        try:
            _get(lines, "/devices/none", verify=True)  # the system store does not know our CA
            raise AssertionError("an unknown CA was accepted")
        except requests.exceptions.SSLError:
            pass
        assert (folder / "server.key").stat().st_mode & 0o077 == 0  # the key is private
        first = (folder / "ca.pem").read_bytes()
    with serve("--tls", "--tls-dir", str(folder)) as (_, lines):
        assert (folder / "ca.pem").read_bytes() == first  # reused, still trusted
        assert _get(lines, "/devices/none", verify=ca).status_code == 404


def test_the_users_own_certificate(tmp_path: Path) -> None:
    own = local_certificates(tmp_path / "mine")
    with serve("--tls-cert", str(own.cert), "--tls-key", str(own.key)) as (_, lines):
        assert "BULKREG_CA_CERT" not in lines  # the user knows their own CA
        assert _get(lines, "/devices/none", verify=str(own.ca)).status_code == 404


def test_plain_http_to_the_tls_port_is_closed(tmp_path: Path) -> None:
    with serve("--tls", "--tls-dir", str(tmp_path)) as (_, lines):
        plain = lines["BULKREG_URL"].replace("https://", "http://")
        try:
            requests.get(plain + "/devices/x", timeout=30)
            raise AssertionError("plain http was answered")
        except requests.exceptions.ConnectionError:
            pass
        assert _get(lines, "/devices/none", verify=lines["BULKREG_CA_CERT"]).status_code == 404


def test_unusable_tls_arguments_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    for args, says in ((["--tls-cert", str(junk)], "go together"),
                       (["--tls-cert", str(junk), "--tls-key", str(junk)], "TLS certificate")):
        done = subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 2 and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_second_server_on_one_db_exits_2_naming_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite"
    with serve("--db", str(db)) as (first, lines):
        second = subprocess.run([*SERVE, "--db", str(db)], capture_output=True, text=True,
                                timeout=60, check=False)
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert second.stdout == ""  # no ready line: it never served
        assert _get(lines, "/devices/none").status_code == 404  # the first one is unharmed
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    with serve("--db", str(db)) as (_, lines):  # the kernel released the lock with the process
        assert _get(lines, "/devices/none").status_code == 404


def test_the_access_log_in_a_file_has_no_colour_codes(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    with log.open("w") as sink, serve("--access-log", stderr=sink) as (process, lines):
        for path in ("/devices/a", "/devices/b"):
            assert _get(lines, path).status_code == 404
        process.send_signal(signal.SIGTERM)
        process.wait(10)
    deadline = time.monotonic() + 10
    while "stopped" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = log.read_text()
    assert "\x1b[" not in text
    requests_logged = [line for line in text.splitlines() if '"GET /devices/' in line]
    assert len(requests_logged) == 2 and all(line.endswith(tuple("0123456789"))
                                            for line in requests_logged)
    assert " 404 " in requests_logged[0]


def test_the_hub_certificate_verifies_for_every_local_name(tmp_path: Path) -> None:
    found = local_certificates(tmp_path)
    context = ssl.create_default_context(cafile=str(found.ca))
    with serve("--tls-cert", str(found.cert), "--tls-key", str(found.key)) as (_, lines):
        port = int(lines["BULKREG_URL"].rsplit(":", 1)[1])
        import socket  # noqa: PLC0415

        for name in ("localhost", "127.0.0.1"):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
                    context.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
