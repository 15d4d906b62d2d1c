"""`bulkreg conform` with unusable arguments: exit 2 and one clear line, before any request."""

from __future__ import annotations

import pytest

from bulkreg_conformance.cli import main

CS = "HostName=h.azure-devices.net;SharedAccessKeyName=o;SharedAccessKey=" + "QUFB" * 8


@pytest.mark.parametrize(("args", "says"), [
    (["--rate-limit", "-1"], "--rate-limit must be positive"),
    (["--time-budget", "-3"], "--time-budget must be positive"),
    (["--time-budget", "nan"], "--time-budget must be positive"),
    (["--max-requests", "0"], "--max-requests must be at least 1"),
    (["--max-examples", "-1"], "--max-examples must be at least 1"),
    (["--suite", "nope"], "unknown suite(s) nope"),
    (["--prefix", "a/b"], "must be 1-64 characters allowed in a device id"),
    (["--endpoint", "notaurl", "--connection-string", CS], "is not an http(s) URL"),
    (["--endpoint", "http://127.0.0.1:1"], "needs --connection-string"),
])
def test_usage_errors_exit_2(args: list[str], says: str, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BULKREG_CONNECTION_STRING", raising=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
