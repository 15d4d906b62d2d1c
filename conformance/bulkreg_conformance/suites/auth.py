"""Auth suite: a missing, wrongly signed, expired or unknown-policy SAS gets 401 before the body;
a read-only policy may read but not write.

"Before the body is read" is tested by sending each bad token with a body that would otherwise be
rejected for its content (too many devices, broken JSON): an endpoint that parses first answers
413/400 instead of 401. The read-only case needs a second connection string whose policy may
only read (``--read-connection-string``; the built-in hub supplies its registryRead policy): its
token must get 401 on a bulk write (DOC-SEC: registryRead grants read access only) and may read.
All of it is part of the minimum-coverage plan (``auth:<case>`` items).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import bulkreg_schema
from bulkreg_conformance import sas
from bulkreg_conformance.answers import error_code
from bulkreg_conformance.checks import Problem
from bulkreg_conformance.evidence import DOCUMENTED, Evidence

if TYPE_CHECKING:
    from bulkreg_conformance.client import Exchange
    from bulkreg_conformance.session import Session

__all__ = ["planned", "read_only_token", "run"]

MAX_ENTRIES = bulkreg_schema.contract().max_entries
_INFERRED = Evidence("inferred")
_NO_VERDICT = frozenset({429, 503})  # throttled or unavailable: no verdict on the token
_OBSERVED = Evidence("observed")


def _tokens(s: Session) -> dict[str, str | None]:
    client = s.client
    return {
        "auth-missing": None,
        "auth-invalid": client.signed(key=sas.new_key()),
        "auth-expired": client.signed(ttl=60, now=time.time() - 3600),
        "auth-wrong-policy": client.signed(key_name="bulkreg-no-such-policy"),
    }


def run(s: Session) -> None:
    """Everything the suite claims is in the plan (:func:`planned`)."""


def planned(s: Session) -> None:
    bad_tokens(s)
    if s.settings.read_connection_string:
        read_only(s)


def bad_tokens(s: Session) -> None:
    device = s.fresh_id("auth")
    bodies = {
        "valid": f'[{{"id": "{device}", "importMode": "create"}}]'.encode(),
        "broken": f'[{{"id": "{device}", "importMode": '.encode(),
        "oversized": ("[" + ",".join(f'{{"id": "{device}-{n}", "importMode": "create"}}'
                                      for n in range(MAX_ENTRIES + 1)) + "]").encode(),
    }
    accepted: list[str] = []  # checks whose bad token got the valid body accepted
    read: Exchange | None = None
    for check, token in _tokens(s).items():
        auth = (check.removeprefix("auth-"), token) if token is not None else None
        judged = True
        for label, body in bodies.items():
            exchange = s.client.bulk(body, auth=auth, track=label == "valid")
            s.shape(exchange, body.decode())
            if exchange.status in _NO_VERDICT:  # throttled or unavailable: cannot tell
                judged = False
                continue
            s.judge(check, _claims(check, label, exchange), payload=body.decode(),
                    exchanges=[exchange])
            if label == "valid" and 200 <= exchange.status < 300:
                accepted.append(check)
        read = s.client.get_device(device, auth=auth)
        if read.status in _NO_VERDICT:
            judged = False
        else:
            s.judge(check, [] if read.status == 401 else
                    [f"GET /devices/{{id}} with {check.removeprefix('auth-')} token: expected "
                     f"401, got {read.status}"], exchanges=[read])
        item = f"auth:{check.removeprefix('auth-')}"
        if judged:
            s.coverage.cover(item)
        else:
            s.coverage.miss("throttling or unavailability (429/503 after the client's "
                            "retries)", item)
    if accepted:  # the device those calls created is already reported with them
        s.resync({device})
    else:  # nothing may have been created by the refused calls
        s.read_back([device], read)


def _claims(check: str, label: str, exchange: Exchange) -> list[Problem]:
    """A bad token is refused with 401 (documented); with a body that is also invalid, refusing
    it for the body first is a deviation (inferred: the service checks the token first); the
    errorCode IotHubUnauthorizedAccess is observed (CS ErrorCode.cs, JAVA tests)."""
    kind = check.removeprefix("auth-")
    if exchange.status == 401:
        if error_code(exchange) in {"IotHubUnauthorizedAccess", None}:
            return []
        return [Problem(check, f"401 with errorCode {error_code(exchange)}, expected "
                        f"IotHubUnauthorizedAccess", _OBSERVED)]
    refused = 400 <= exchange.status < 500 and label != "valid"
    return [Problem(check, f"{label} body with {kind} token: expected 401, got "
                    f"{exchange.status}", _INFERRED if refused else DOCUMENTED)]


def read_only_token(s: Session) -> str:
    """A token of the read-only connection string's policy (its key joins the secrets)."""
    parsed = sas.parse_connection_string(s.settings.read_connection_string or "")
    s.client.redactor.add(parsed.key)
    return s.client.signed(key=parsed.key, key_name=parsed.key_name,
                           resource=parsed.host_name)


def read_only(s: Session) -> None:
    """A read-only policy's token: a bulk write is refused (401/403), a read is not."""
    device = s.fresh_id("ro")
    token = ("read-only", read_only_token(s))
    body = f'[{{"id": "{device}", "importMode": "create"}}]'.encode()
    write = s.client.bulk(body, auth=token)
    s.shape(write, body.decode())
    read = s.client.get_device(device, auth=token)
    if write.status in _NO_VERDICT or read.status in _NO_VERDICT:
        s.coverage.miss("throttling or unavailability (429/503 after the client's retries)",
                        "auth:read-only")
        return
    problems = [] if write.status in {401, 403} else [
        f"a bulk create with a read-only policy's token: expected 401, got {write.status}"]
    if read.status in {401, 403}:
        problems.append(f"GET /devices/{{id}} with a read-only policy's token: expected 200 or "
                        f"404, got {read.status}")
    s.judge("auth-read-only", problems, payload=body.decode(), exchanges=[write, read])
    if write.status < 400:
        s.resync({device})  # the endpoint created it: the oracle must not inherit that
    s.coverage.cover("auth:read-only")
