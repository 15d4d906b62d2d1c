"""Auth suite: a missing, wrongly signed, expired or unknown-policy SAS gets 401 before the body.

"Before the body is read" is tested by sending each bad token with a body that would otherwise be
rejected for its content (too many devices, broken JSON): an endpoint that parses first answers
413/400 instead of 401.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bulkreg_conformance import sas
from bulkreg_conformance.checks import error_code

if TYPE_CHECKING:
    from bulkreg_conformance.context import Context

__all__ = ["run"]


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
                                      for n in range(101)) + "]").encode(),
    }
    for check, token in _tokens(ctx).items():
        auth = (check.removeprefix("auth-"), token) if token is not None else None
        for label, body in bodies.items():
            exchange = ctx.client.bulk(body, auth=auth, track=label == "valid")
            ctx.shape_checks(exchange, body.decode(), None)
            problems = []
            if exchange.status != 401:
                problems.append(f"{label} body with {check.removeprefix('auth-')} token: "
                                f"expected 401, got {exchange.status}")
            elif error_code(exchange) not in {"IotHubUnauthorizedAccess", "401002"}:
                problems.append(f"401 without errorCode IotHubUnauthorizedAccess "
                                f"(got {error_code(exchange)})")
            ctx.judge(check, problems, payload=body.decode(), exchanges=[exchange])
        read = ctx.client.get_device(device, auth=auth)
        ctx.judge(check, [] if read.status == 401 else
                  [f"GET /devices/{{id}} with {check.removeprefix('auth-')} token: expected 401, "
                   f"got {read.status}"], exchanges=[read])
    # nothing may have been created by the refused calls
    ctx.read_back([device], None, read)
