"""Before any suite: one authenticated read, and one line for what makes an endpoint untestable;
the endpoint and connection string from the environment; a replay command that runs as printed."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bulkreg_conformance.cli import main
from bulkreg_conformance.client import Client
from bulkreg_conformance.runner import PreflightFailed, preflight

from . import hostile
from .conftest import Served


def _answering(status: int, body: bytes, headers: dict[str, str] | None = None) -> Any:
    def behaviour(handler: hostile.Handler, _: bytes) -> None:
        handler.answer(status, body, headers)

    return behaviour


@pytest.mark.parametrize(("status", "body", "headers", "says"), [
    (401, b'{"Message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized"}', {},
     "the endpoint rejected the run's SAS token (401 IotHubUnauthorizedAccess); check the "
     "connection string"),
    (401, b"", {"iothub-errorcode": "IotHubUnauthorizedAccess"},
     "(401 IotHubUnauthorizedAccess)"),
    (401, b'{"ErrorCode": "<script>alert(1)</script>"}', {}, "token (401); check"),
    (403, b'{"Message":"ErrorCode:IotHubUnauthorizedAccess;no"}', {},
     "policy needs registry read and write permissions"),
])
def test_a_refused_token_is_one_line_naming_the_cause(
        status: int, body: bytes, headers: dict[str, str], says: str) -> None:
    cs, key = hostile.new_connection_string()
    with hostile.serve(_answering(status, body, headers)) as endpoint:
        client = Client(endpoint.url, cs, prefix="pre-")
        with pytest.raises(PreflightFailed) as caught:
            preflight(client)
        assert endpoint.seen.requests[0][:2] == ("GET", "/devices/pre-preflight"
                                                 "?api-version=2021-04-12")
    message = str(caught.value)
    assert says in message
    assert "\n" not in message and "<script>" not in message and key not in message


@pytest.mark.parametrize("status", [200, 404, 429, 500])
def test_any_other_answer_means_reachable_and_authorised(status: int) -> None:
    cs, _ = hostile.new_connection_string()
    with hostile.serve(_answering(status, b"{}")) as endpoint:
        preflight(Client(endpoint.url, cs, prefix="pre-", retry_budget=0.0))
        assert len(endpoint.seen.requests) >= 1


def test_the_connection_string_alone_tests_the_builtin_hub_and_says_so(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cs, key = hostile.new_connection_string()
    monkeypatch.setenv("BULKREG_CONNECTION_STRING", cs)
    monkeypatch.delenv("BULKREG_ENDPOINT", raising=False)
    monkeypatch.delenv("BULKREG_URL", raising=False)
    assert main(["--suite", "auth", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert "(built-in reference hub)" in out
    assert "BULKREG_CONNECTION_STRING is ignored: no --endpoint (or BULKREG_ENDPOINT, " \
        "BULKREG_URL)" in err
    assert "--connection-string" not in err  # never a flag the user did not give
    assert key not in out + err


def test_bulkreg_endpoint_pairs_with_the_connection_string(
        serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    served = serve()
    monkeypatch.setenv("BULKREG_ENDPOINT", served.url)
    monkeypatch.setenv("BULKREG_CONNECTION_STRING", served.connection_string)
    assert main(["--suite", "auth", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert f"endpoint: {served.url}\n" in out
    assert "ignored" not in err


@pytest.mark.parametrize(("env", "args", "says", "never"), [
    ({"BULKREG_ENDPOINT": "http://127.0.0.1:9"}, [],
     "BULKREG_ENDPOINT needs --connection-string or BULKREG_CONNECTION_STRING", "--endpoint"),
    ({}, ["--endpoint", "http://127.0.0.1:9", "--connection-string",
          "HostName=h;SharedAccessKeyName=o;SharedAccessKey=QUFB", "--ca-cert", "/nonexistent"],
     "--ca-cert /nonexistent: no such file", "Traceback"),
])
def test_environment_mistakes_name_what_was_given(
        env: dict[str, str], args: list[str], says: str, never: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("BULKREG_ENDPOINT", "BULKREG_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert says in err
    assert never not in err.split("error: ", 1)[1]


def test_the_printed_replay_command_runs_as_printed(serve: Callable[..., Served],
                                                    tmp_path: Path) -> None:
    from .test_broken_hubs import DEFECTS  # noqa: PLC0415

    served = serve(DEFECTS["error naming the wrong device"][0])
    cs = served.connection_string
    report = tmp_path / "r.json"
    first = hostile.conform("--endpoint", served.url, "--suite", "property",
                            "--max-examples", "3", "--seed", "1", "--report-json", str(report),
                            BULKREG_CONNECTION_STRING=cs)
    assert first.returncode == 1, first.stdout + first.stderr
    printed = [line.removeprefix("replay: ") for line in first.stderr.splitlines()
               if line.startswith("replay: bulkreg conform ")]
    assert printed, first.stderr
    command = shlex.split(printed[0])
    assert command[2:4] == ["--endpoint", served.url]
    assert served.key not in printed[0]
    replay = subprocess.run([sys.executable, "-m", "bulkreg_validator", *command[1:]],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**hostile.env(), "BULKREG_CONNECTION_STRING": cs})
    assert replay.returncode in (0, 1), replay.stdout + replay.stderr  # ran: not a usage error
    assert f"endpoint: {served.url}" in replay.stdout
    assert Path(command[-1]).name.startswith("replay-")
