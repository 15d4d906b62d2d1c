"""``bulkreg sas-token``: print a SharedAccessSignature for curl, like
``az iot hub generate-sas-token``.

    SAS=$(bulkreg sas-token)            # from $BULKREG_CONNECTION_STRING, valid one hour
    curl -H "Authorization: $SAS" "$BULKREG_URL/devices/d1?api-version=2021-04-12"

The connection string comes from ``--connection-string`` or ``$BULKREG_CONNECTION_STRING``;
``--policy P`` picks ``$BULKREG_CONNECTION_STRING_<P>`` (what ``serve --all-policies`` prints)
instead. Only the token is printed; no message ever shows the key.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .sas import generate_token, parse_connection_string

__all__ = ["main"]

ENV = "BULKREG_CONNECTION_STRING"


class _Usage(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bulkreg sas-token",
        description="Print a SharedAccessSignature token for a hub's shared access policy "
                    "(for curl's Authorization header).")
    p.add_argument("--connection-string", metavar="CS",
                   help=f"service connection string (default: ${ENV}, or ${ENV}_<POLICY> with "
                        "--policy)")
    p.add_argument("--resource", metavar="R",
                   help="what the token is for: the HostName (default) or HostName/path, "
                        "e.g. myhub.azure-devices.net/devices")
    p.add_argument("--policy", metavar="P",
                   help="the shared access policy (default: the connection string's "
                        "SharedAccessKeyName)")
    p.add_argument("--ttl", type=_seconds, default=3600, metavar="S",
                   help="seconds the token stays valid (default 3600)")
    return p


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"ttl {value} is below 1 second")
    return value


def _connection_string(args: argparse.Namespace) -> str:
    if args.connection_string is not None:
        return str(args.connection_string)
    if args.policy:
        named = os.environ.get(f"{ENV}_{args.policy.upper()}")
        if named:
            return named
    found = os.environ.get(ENV)
    if not found:
        raise _Usage(f"no connection string: pass --connection-string or set {ENV} (`bulkreg "
                     "serve` prints it)")
    return found


def token(args: argparse.Namespace) -> str:
    try:
        cs = parse_connection_string(_connection_string(args))
    except ValueError as exc:
        raise _Usage(f"invalid connection string: {exc}") from None
    if args.policy and args.policy != cs.key_name:
        raise _Usage(f"the connection string holds the key of policy {cs.key_name}, not "
                     f"{args.policy}")
    try:
        return generate_token(args.resource or cs.host_name, cs.key_name, cs.key, ttl=args.ttl)
    except ValueError as exc:  # the key is not base64: the message says so, without the key
        raise _Usage(f"invalid connection string: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        print(token(args))
    except _Usage as exc:
        print(f"bulkreg sas-token: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
