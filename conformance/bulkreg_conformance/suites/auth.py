"""Auth suite: a missing, wrongly signed, expired or unknown-policy SAS gets 401 before the body.

"Before the body is read" is tested by sending each bad token with a body that would otherwise be
rejected for its content (too many devices, broken JSON): an endpoint that parses first answers
413/400 instead of 401.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import bulkreg_schema
from bulkreg_conformance import sas
from bulkreg_conformance.checks import Problem, error_code

if TYPE_CHECKING:
    from bulkreg_conformance.client import Exchange
    from bulkreg_conformance.context import Context

__all__ = ["run"]

MAX_ENTRIES = bulkreg_schema.contract().max_entries


def _tokens(ctx: Context) -> dict[str, str | None]:
    client = ctx.client
    return {
        "auth-missing": None,
        "auth-invalid": client.signed(key=sas.new_key()),
        "auth-expired": client.signed(ttl=60, now=time.time() - 3600),
        "auth-wrong-policy": client.signed(key_name="bulkreg-no-such-policy"),
    }


def run(ctx: Context) -> None:
    device = ctx.fresh_id("auth")
    bodies = {
        "valid": f'[{{"id": "{device}", "importMode": "create"}}]'.encode(),
        "broken": f'[{{"id": "{device}", "importMode": '.encode(),
        "oversized": ("[" + ",".join(f'{{"id": "{device}-{n}", "importMode": "create"}}'
                                      for n in range(MAX_ENTRIES + 1)) + "]").encode(),
    }
    accepted: list[str] = []  # checks whose bad token got the valid body accepted
    for check, token in _tokens(ctx).items():
        auth = (check.removeprefix("auth-"), token) if token is not None else None
        for label, body in bodies.items():
            exchange = ctx.client.bulk(body, auth=auth, track=label == "valid")
            ctx.shape_checks(exchange, body.decode(), None)
            ctx.judge(check, _claims(check, label, exchange), payload=body.decode(),
                      exchanges=[exchange])
            if label == "valid" and 200 <= exchange.status < 300:
                accepted.append(check)
        read = ctx.client.get_device(device, auth=auth)
        ctx.judge(check, [] if read.status == 401 else
                  [f"GET /devices/{{id}} with {check.removeprefix('auth-')} token: expected 401, "
                   f"got {read.status}"], exchanges=[read])
    if accepted:  # the device those calls created is already reported with them
        ctx.resync({device})
    else:  # nothing may have been created by the refused calls
        ctx.read_back([device], None, read)


def _claims(check: str, label: str, exchange: Exchange) -> list[Problem]:
    """A bad token is refused with 401 (documented); with a body that is also invalid, refusing
    it for the body first is a deviation (inferred: the service checks the token first); the
    errorCode IotHubUnauthorizedAccess is observed (CS ErrorCode.cs, JAVA tests)."""
    kind = check.removeprefix("auth-")
    if exchange.status == 401:
        if error_code(exchange) in {"IotHubUnauthorizedAccess", None}:
            return []
        return [Problem(check, f"401 with errorCode {error_code(exchange)}, expected "
                        f"IotHubUnauthorizedAccess", "observed")]
    refused = 400 <= exchange.status < 500 and label != "valid"
    return [Problem(check, f"{label} body with {kind} token: expected 401, got "
                    f"{exchange.status}", "inferred" if refused else "documented")]
