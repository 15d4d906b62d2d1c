"""``bulkreg serve``: run the reference hub on a real threaded HTTP server (127.0.0.1 by default).

Owns argument parsing, the hub's identity (host name and shared access policies, a fresh key per
run unless a connection string is given), the server's life cycle (ready lines on stdout, serve
until SIGINT/SIGTERM, clean shutdown) and ``start_background`` for tests and the conformance kit.
Nothing here prints a key except the connection-string lines the user asked the server for.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from bulkreg_conformance.sas import (
    ALL_PERMISSIONS,
    BUILTIN_PERMISSIONS,
    Policy,
    make_connection_string,
    new_key,
    parse_connection_string,
)

from .app import Faults, Hub
from .server import KeepAliveHandler, QuietKeepAliveHandler
from .store import open_store

__all__ = ["BackgroundHub", "build_hub", "main", "start_background"]

OWNER = "iothubowner"
# gc.freeze() every this many registry writes in `bulkreg serve` (see Hub.freeze_gc_every); a
# cyclic garbage object alive at a freeze is never collected, and the hub's request path makes
# none (only connection-level objects could be), so the cost is bounded and small.
FREEZE_GC_EVERY = 64


def make_policies(connection_string: str | None, hub_name: str) -> tuple[str, dict[str, Policy]]:
    """The hub's host name and policies: the given (or a fresh iothubowner) key, plus the other
    built-in policies with fresh keys."""
    if connection_string is not None:
        parsed = parse_connection_string(connection_string)
        host, name, key = parsed.host_name, parsed.key_name, parsed.key
    else:
        host, name, key = f"{hub_name}.azure-devices.net", OWNER, new_key()
    policies = {n: Policy(n, new_key(), perms) for n, perms in BUILTIN_PERMISSIONS.items()}
    policies[name] = Policy(name, key, BUILTIN_PERMISSIONS.get(name, ALL_PERMISSIONS))
    return host, policies


def build_hub(*, connection_string: str | None = None, hub_name: str = "bulkreg",
              db: str | Path | None = None, faults: Faults | None = None) -> Hub:
    host, policies = make_policies(connection_string, hub_name)
    return Hub(host_name=host, policies=policies, store=open_store(db), faults=faults)


class BackgroundHub:
    """A hub served on a thread; ``stop()`` (or leaving the ``with`` block) shuts it down."""

    def __init__(self, hub: Hub, server: BaseWSGIServer, owner: str) -> None:
        self.hub = hub
        self.server = server
        self.url = f"http://{server.host}:{server.port}"
        self.owner = owner
        self._thread = threading.Thread(target=server.serve_forever, name="bulkreg-hub",
                                        daemon=True)
        self._thread.start()

    @property
    def connection_string(self) -> str:
        return self.connection_string_for(self.owner)

    def connection_string_for(self, policy: str) -> str:
        found = self.hub.policies[policy]
        return make_connection_string(self.hub.host_name, found.name, found.key)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
            self.server.server_close()
            self.hub.store.close()

    def __enter__(self) -> BackgroundHub:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"BackgroundHub(url={self.url!r}, host={self.hub.host_name!r})"


def serve(hub: Hub, host: str = "127.0.0.1", port: int = 0, *,
          access_log: bool = False) -> BaseWSGIServer:
    handler = KeepAliveHandler if access_log else QuietKeepAliveHandler
    return make_server(host, port, hub, threaded=True, request_handler=handler)


def start_background(*, host: str = "127.0.0.1", port: int = 0, db: str | Path | None = None,
                     connection_string: str | None = None, hub_name: str = "bulkreg",
                     faults: Faults | None = None) -> BackgroundHub:
    """Start a hub on a thread; returns its url, connection string and ``stop()``."""
    hub = build_hub(connection_string=connection_string, hub_name=hub_name, db=db,
                    faults=faults)
    owner = parse_connection_string(connection_string).key_name if connection_string else OWNER
    return BackgroundHub(hub, serve(hub, host, port), owner)


# --- the command -------------------------------------------------------------------------------


def _port(text: str) -> int:
    """A TCP port number: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0..65535")
    return port


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bulkreg serve",
        description="Run the reference IoT Hub registry (POST /devices and the read/verify "
                    "endpoints) on a local HTTP server.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="port (default 0: any free port)")
    p.add_argument("--db", metavar="FILE", help="keep the registry in this SQLite file")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--connection-string", metavar="CS",
                     help="serve the hub of this connection string (its key signs tokens)")
    who.add_argument("--hub-name", default="bulkreg",
                     help="host name prefix of a fresh hub (default bulkreg)")
    p.add_argument("--all-policies", action="store_true",
                   help="also print connection strings of registryRead, registryReadWrite, "
                        "service and device")
    p.add_argument("--throttle", type=float, default=0.0, metavar="N",
                   help="answer 429 beyond N requests per second (default off)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="add latency to each request")
    p.add_argument("--error-rate", type=float, default=0.0, metavar="P",
                   help="answer this fraction of requests with 500 ServerError")
    p.add_argument("--access-log", action="store_true", help="log each request on stderr")
    return p


def _faults(args: argparse.Namespace) -> Faults:
    faults = Faults()
    faults.update({"throttle_rps": args.throttle, "latency_ms": args.latency_ms,
                   "error_rate": args.error_rate})
    return faults


def _announce(hub: Hub, url: str, owner: str, all_policies: bool) -> None:
    lines = [f"BULKREG_URL={url}"]
    owner_policy = hub.policies[owner]
    lines.append("BULKREG_CONNECTION_STRING=" + make_connection_string(
        hub.host_name, owner_policy.name, owner_policy.key))
    if all_policies:
        for policy in hub.policies.values():
            if policy.name != owner:
                lines.append(f"BULKREG_CONNECTION_STRING_{policy.name.upper()}="
                             + make_connection_string(hub.host_name, policy.name, policy.key))
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        faults = _faults(args)
        hub = build_hub(connection_string=args.connection_string, hub_name=args.hub_name,
                        db=args.db, faults=faults)
        server = serve(hub, args.host, args.port, access_log=args.access_log)
        hub.freeze_gc_every = FREEZE_GC_EVERY  # this process is the hub's alone
    except (ValueError, OSError, sqlite3.Error) as exc:  # bad connection string, unusable db
        print(f"bulkreg serve: {exc}" + (f" ({args.db})" if isinstance(exc, sqlite3.Error)
                                          else ""), file=sys.stderr)
        return 2
    except SystemExit:  # werkzeug has printed why it cannot bind (address in use, unknown host)
        print(f"bulkreg serve: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 2
    owner = (parse_connection_string(args.connection_string).key_name
             if args.connection_string else OWNER)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {sig: signal.signal(sig, on_signal)
                                for sig in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, name="bulkreg-hub", daemon=True)
    thread.start()
    _announce(hub, f"http://{server.host}:{server.port}", owner, args.all_policies)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        hub.store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("bulkreg serve: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
