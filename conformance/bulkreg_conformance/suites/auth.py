"""Auth suite: a missing, wrongly signed, expired, unknown-policy or other-resource SAS gets 401
before the body; a read-only policy may read but not write.

"Before the body is read" is tested by sending each bad token with a body that would otherwise be
rejected for its content (too many devices, broken JSON): an endpoint that parses first answers
413/400 instead of 401. Each bad token goes with a body of twin updates only too, since a
service may route those to another code path. A token for another resource is signed with the
right key for another hub, and for a path scope that does not cover ``/devices`` (DOC-SEC: the
resource URI is matched by segment). The read-only case needs a second connection string whose
policy may only read (``--read-connection-string``; the built-in hub supplies its registryRead
policy): its token must get 401 on a bulk write, device or twin (DOC-SEC: registryRead grants
read access only), and may read. All of it is part of the minimum-coverage plan
(``auth:<case>`` items).
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
        "auth-wrong-resource": client.signed(resource=OTHER_HUB),
    }


OTHER_HUB = "bulkreg-other-hub.azure-devices.net"  # a token signed for it is not this hub's


def run(s: Session) -> None:
    """Everything the suite claims is in the plan (:func:`planned`)."""


def planned(s: Session) -> None:
    twin = bad_tokens(s)
    if s.settings.read_connection_string:
        read_only(s, twin)


# the tokens also sent with a body of 101 entries (an endpoint that counts first answers 413)
_OVERSIZED = frozenset({"auth-missing", "auth-invalid"})


def bad_tokens(s: Session) -> str:
    """Every bad token with every body; returns the id of the device whose twin the bodies
    update (it exists)."""
    device, twin = s.fresh_id("auth"), s.fresh_id("auth.twin")
    # twin updates of a device that exists: only the token can refuse them
    s.bulk_step([{"id": twin, "importMode": "create"}], readback=False)
    bodies = {
        "valid": f'[{{"id": "{device}", "importMode": "create"}}]'.encode(),
        "broken": f'[{{"id": "{device}", "importMode": '.encode(),
        "twin": f'[{{"id": "{twin}", "importMode": "updateTwin", "tags": {{"a": 1}}}}]'.encode(),
        "oversized": ("[" + ",".join(f'{{"id": "{device}-{n}", "importMode": "create"}}'
                                      for n in range(MAX_ENTRIES + 1)) + "]").encode(),
    }
    accepted: list[str] = []  # bodies a bad token got accepted
    read: Exchange | None = None
    for check, token in _tokens(s).items():
        auth = (check.removeprefix("auth-"), token) if token is not None else None
        judged = True
        for label, body in bodies.items():
            if label == "oversized" and check not in _OVERSIZED:
                continue
            exchange = s.client.bulk(body, auth=auth, track=label == "valid")
            s.shape(exchange, body.decode())
            if exchange.status in _NO_VERDICT:  # throttled or unavailable: cannot tell
                judged = False
                continue
            s.judge(check, _claims(check, label, exchange), payload=body.decode(),
                    exchanges=[exchange])
            if label in {"valid", "twin"} and 200 <= exchange.status < 300:
                accepted.append(label)
        read = s.client.get_device(device, auth=auth)
        if read.status in _NO_VERDICT:
            judged = False
        else:
            s.judge(check, [] if read.status == 401 else
                    [f"GET /devices/{{id}} with {check.removeprefix('auth-')} token: expected "
                     f"401, got {read.status}"], exchanges=[read])
        if check == "auth-wrong-resource":
            judged &= _path_scope(s, device, bodies["valid"])
        item = f"auth:{check.removeprefix('auth-')}"
        if judged:
            s.coverage.cover(item)
        else:
            s.coverage.miss("throttling or unavailability (429/503 after the client's "
                            "retries)", item)
    if "valid" in accepted:  # the device those calls created is already reported with them
        s.resync({device})
    else:  # nothing may have been created by the refused calls
        s.read_back([device], read)
    if "twin" in accepted:
        s.resync({twin})
    return twin


def _path_scope(s: Session, device: str, body: bytes) -> bool:
    """A token whose resource is a path of this hub that does not hold ``/devices`` (DOC-SEC:
    matched by segment); False when the answer was no verdict (429/503)."""
    token = s.client.signed(resource=f"{s.client.host_name}/twins/{device}")
    exchange = s.client.bulk(body, auth=("wrong-resource", token), track=True)
    s.shape(exchange, body.decode())
    if exchange.status in _NO_VERDICT:
        return False
    s.judge("auth-wrong-resource", _claims("auth-wrong-resource", "valid", exchange),
            payload=body.decode(), exchanges=[exchange])
    if 200 <= exchange.status < 300:
        s.resync({device})
    return True


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


def read_only(s: Session, twin: str) -> None:
    """A read-only policy's token: a bulk write is refused (401/403), a twin-only one too (of
    ``twin``, a device that exists, so only the token can refuse it), a read is not."""
    device = s.fresh_id("ro")
    token = ("read-only", read_only_token(s))
    bodies = {"create": f'[{{"id": "{device}", "importMode": "create"}}]'.encode(),
              "updateTwin": f'[{{"id": "{twin}", "importMode": "updateTwin", '
                            f'"tags": {{"ro": 1}}}}]'.encode()}
    writes = {mode: s.client.bulk(body, auth=token) for mode, body in bodies.items()}
    for mode, write in writes.items():
        s.shape(write, bodies[mode].decode())
    read = s.client.get_device(device, auth=token)
    if any(e.status in _NO_VERDICT for e in (*writes.values(), read)):
        s.coverage.miss("throttling or unavailability (429/503 after the client's retries)",
                        "auth:read-only")
        return
    problems = [f"a bulk {mode} with a read-only policy's token: expected 401, got "
                f"{write.status}" for mode, write in writes.items()
                if write.status not in {401, 403}]
    if read.status in {401, 403}:
        problems.append(f"GET /devices/{{id}} with a read-only policy's token: expected 200 or "
                        f"404, got {read.status}")
    s.judge("auth-read-only", problems, payload=b"\n".join(bodies.values()).decode(),
            exchanges=[*writes.values(), read])
    if writes["create"].status < 400:
        s.resync({device})  # the endpoint created it: the oracle must not inherit that
    if writes["updateTwin"].status < 400:
        s.resync({twin})
    s.coverage.cover("auth:read-only")
