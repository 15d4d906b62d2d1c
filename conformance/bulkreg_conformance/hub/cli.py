"""``bulkreg serve``: run the reference hub on a real threaded HTTP server (127.0.0.1 by default).

Owns argument parsing, the hub's identity (host name and shared access policies, a fresh key per
run unless a connection string is given or ``--db`` keeps them: ``identity.py``), the server's
life cycle (ready lines on stdout, serve
until SIGINT/SIGTERM, clean shutdown) and ``start_background`` for tests and the conformance kit.
Nothing here prints a key except the connection-string lines the user asked the server for.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import sqlite3
import ssl
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from bulkreg_conformance.sas import (
    ALL_PERMISSIONS,
    BUILTIN_PERMISSIONS,
    Policy,
    make_connection_string,
    new_key,
    parse_connection_string,
)

from .app import Faults, Hub
from .identity import Identity
from .server import AccessLog, Limits, Server, make_server
from .store import StoreInUse, open_store
from .tls import local_certificates, server_context

__all__ = ["BackgroundHub", "build_hub", "main", "start_background"]

OWNER = "iothubowner"
# gc.freeze() every this many registry writes in `bulkreg serve` (see Hub.freeze_gc_every); a
# cyclic garbage object alive at a freeze is never collected, and the hub's request path makes
# none (only connection-level objects could be), so the cost is bounded and small.
FREEZE_GC_EVERY = 64
SWITCH_INTERVAL = 0.001  # seconds; see main


def make_policies(connection_string: str | None,
                  hub_name: str | None) -> tuple[str, dict[str, Policy]]:
    """The hub's host name and policies: the given (or a fresh iothubowner) key, plus the other
    built-in policies with fresh keys. Without a connection string or a hub name the host name
    is empty: ``dialable`` fills it in once the port is known."""
    if connection_string is not None:
        parsed = parse_connection_string(connection_string)
        host, name, key = parsed.host_name, parsed.key_name, parsed.key
    else:
        host = f"{hub_name}.azure-devices.net" if hub_name else ""
        name, key = OWNER, new_key()
    policies = {n: Policy(n, new_key(), perms) for n, perms in BUILTIN_PERMISSIONS.items()}
    policies[name] = Policy(name, key, BUILTIN_PERMISSIONS.get(name, ALL_PERMISSIONS))
    return host, policies


def dialable(host: str, port: int) -> str:
    """The HostName an SDK can dial for this listening address: the SDKs build
    ``https://<HostName>``, and Node's always goes to port 443 (no port in the name)."""
    name = f"[{host}]" if ":" in host else host
    return name if port == 443 else f"{name}:{port}"


def build_hub(*, connection_string: str | None = None, hub_name: str | None = "bulkreg",
              db: str | Path | None = None, faults: Faults | None = None) -> Hub:
    """A hub (not served yet); ``hub_name=None`` leaves its host name to ``serve``."""
    host, policies = make_policies(connection_string, hub_name)
    return Hub(host_name=host, policies=policies, store=open_store(db), faults=faults)


class BackgroundHub:
    """A hub served on a thread; ``stop()`` (or leaving the ``with`` block) shuts it down."""

    def __init__(self, hub: Hub, server: Server, owner: str) -> None:
        self.hub = hub
        self.server = server
        self.url = _url(server)
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
            self.hub.jobs.close()  # an active job ends failed, saying which lines it applied
            self.hub.store.close()

    def __enter__(self) -> BackgroundHub:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"BackgroundHub(url={self.url!r}, host={self.hub.host_name!r})"


def _url(server: Server) -> str:
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"{'https' if server.tls is not None else 'http'}://{host}:{server.port}"


def serve(hub: Hub, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False,
          tls: ssl.SSLContext | None = None, limits: Limits | None = None) -> Server:
    """Bind the hub's server; a hub without a host name gets the dialable one."""
    app = AccessLog(hub, sys.stderr) if access_log else hub
    server = make_server(app, host, port, limits=limits, tls=tls, error_body=hub.error_body)
    if not hub.host_name:
        hub.host_name = dialable(server.host, server.port)
    return server


def start_background(*, host: str = "127.0.0.1", port: int = 0, db: str | Path | None = None,
                     connection_string: str | None = None, hub_name: str | None = None,
                     faults: Faults | None = None, tls: ssl.SSLContext | None = None,
                     limits: Limits | None = None) -> BackgroundHub:
    """Start a hub on a thread; returns its url, connection string and ``stop()``."""
    hub = build_hub(connection_string=connection_string, hub_name=hub_name, db=db,
                    faults=faults)
    owner = parse_connection_string(connection_string).key_name if connection_string else OWNER
    try:
        server = serve(hub, host, port, tls=tls, limits=limits)
    except BaseException:
        hub.store.close()
        raise
    return BackgroundHub(hub, server, owner)


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
    p.add_argument("--port", type=_port,
                   help="port (default: with --db the port this hub used before, else 0: any "
                        "free port)")
    p.add_argument("--db", metavar="FILE",
                   help="keep the registry in this SQLite file, and the hub's keys and port in "
                        "FILE.identity (mode 0600), so a restarted hub accepts its tokens")
    p.add_argument("--rotate-key", action="store_true",
                   help="with --db: new keys for every policy (tokens signed with the old ones "
                        "are refused from now on)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--connection-string", metavar="CS",
                     help="serve the hub of this connection string (its key signs tokens)")
    who.add_argument("--hub-name",
                     help="serve a fresh hub named NAME.azure-devices.net (default: a HostName "
                          "the SDKs can dial, 127.0.0.1:PORT, or 127.0.0.1 on port 443)")
    p.add_argument("--all-policies", action="store_true",
                   help="also print connection strings of registryRead, registryReadWrite, "
                        "service and device")
    p.add_argument("--throttle", type=float, default=0.0, metavar="N",
                   help="answer 429 beyond N requests per second (default off)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="add latency to each request")
    p.add_argument("--error-rate", type=float, default=0.0, metavar="P",
                   help="answer this fraction of requests with 500 ServerError")
    p.add_argument("--access-log", action="store_true", help="log each request on stderr")
    tls = p.add_argument_group(
        "TLS", "The official SDKs speak https only. --tls makes a local CA and a certificate "
               "for localhost, 127.0.0.1 and ::1 (or reuses them from --tls-dir) and prints "
               "BULKREG_CA_CERT=PATH for the client to trust. Node's SDK always dials port "
               "443: add --port 443 (root, or CAP_NET_BIND_SERVICE).")
    tls.add_argument("--tls", action="store_true", help="serve https")
    tls.add_argument("--tls-dir", metavar="DIR",
                     help="keep the local CA and certificate here (default: "
                          "$XDG_DATA_HOME/bulkreg/tls or ~/.local/share/bulkreg/tls)")
    tls.add_argument("--tls-cert", metavar="PEM", help="your own certificate (chain) instead")
    tls.add_argument("--tls-key", metavar="PEM", help="the key of --tls-cert")
    bounds = p.add_argument_group("bounds")
    bounds.add_argument("--threads", type=_positive, default=8,
                        help="worker threads running requests (default 8)")
    bounds.add_argument("--connection-limit", type=_positive, default=Limits().connection_limit,
                        help="open connections; at the limit a new one closes the connection "
                             "that has waited longest for a whole request (default "
                             f"{Limits().connection_limit})")
    bounds.add_argument("--request-timeout", type=_positive, default=30, metavar="S",
                        help="a request not fully received S seconds after its first byte "
                             "closes its connection (default 30)")
    bounds.add_argument("--idle-timeout", type=_positive, default=120, metavar="S",
                        help="close a kept-alive connection idle for S seconds (default 120)")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _tls_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "bulkreg" / "tls"


def _tls(args: argparse.Namespace) -> tuple[ssl.SSLContext | None, Path | None]:
    """The server's TLS context and the CA file to announce (None for the user's own pair)."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_cert is not None:
        return server_context(args.tls_cert, args.tls_key), None
    if not args.tls and args.tls_dir is None:
        return None, None
    found = local_certificates(args.tls_dir or _tls_dir())
    return server_context(found.cert, found.key), found.ca


def _faults(args: argparse.Namespace) -> Faults:
    faults = Faults()
    faults.update({"throttle_rps": args.throttle, "latency_ms": args.latency_ms,
                   "error_rate": args.error_rate})
    return faults


def _announce(hub: Hub, url: str, owner: str, all_policies: bool, ca: Path | None) -> None:
    lines = [f"BULKREG_URL={url}"]
    owner_policy = hub.policies[owner]
    lines.append("BULKREG_CONNECTION_STRING=" + make_connection_string(
        hub.host_name, owner_policy.name, owner_policy.key))
    if all_policies:
        for policy in hub.policies.values():
            if policy.name != owner:
                lines.append(f"BULKREG_CONNECTION_STRING_{policy.name.upper()}="
                             + make_connection_string(hub.host_name, policy.name, policy.key))
    if ca is not None:
        lines.append(f"BULKREG_CA_CERT={ca}")
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    limits = Limits(threads=args.threads, connection_limit=args.connection_limit,
                    request_timeout=args.request_timeout, idle_timeout=args.idle_timeout)
    hub = None
    try:
        faults = _faults(args)
        context, ca = _tls(args)
        kept = _identity(args)
        if kept is not None and args.port is None and kept.port is not None:
            args.port, args.port_kept = kept.port, kept.path  # its tokens' HostName
        hub = build_hub(connection_string=args.connection_string, hub_name=args.hub_name,
                        db=args.db, faults=faults)
        if kept is not None:
            hub.policies = kept.policies(hub.policies)
        server = serve(hub, args.host, args.port or 0, access_log=args.access_log,
                       tls=context, limits=limits)
        if kept is not None:
            kept.port = server.port
            if kept.save():
                print(f"bulkreg serve: the hub's keys are kept in {kept.path} (mode 0600); "
                      "--rotate-key replaces them", file=sys.stderr, flush=True)
        hub.freeze_gc_every = FREEZE_GC_EVERY  # this process is the hub's alone
        # so is its GIL: the event loop that takes in requests waits at most 1 ms (not 5) for
        # a worker that is computing an answer
        sys.setswitchinterval(SWITCH_INTERVAL)
        _room_for(limits.connection_limit)
    except (ValueError, OSError, sqlite3.Error, StoreInUse) as exc:
        # bad connection string or certificate, unusable or locked db, cannot listen
        if hub is not None:
            hub.store.close()
        print(f"bulkreg serve: {_reason(exc, args)}", file=sys.stderr)
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
    _announce(hub, _url(server), owner, args.all_policies, ca)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        hub.jobs.close()  # an active job ends failed, saying which lines it applied
        hub.store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("bulkreg serve: stopped", file=sys.stderr, flush=True)
    return 0


def _identity(args: argparse.Namespace) -> Identity | None:
    """The identity kept beside ``--db`` (None without --db, or with a connection string)."""
    if args.rotate_key and args.db is None:
        raise ValueError("--rotate-key needs --db (without it every run has new keys)")
    if args.rotate_key and args.connection_string is not None:
        raise ValueError("--rotate-key and --connection-string exclude each other (the "
                         "connection string is the key)")
    if args.db is None or args.connection_string is not None:
        return None
    return Identity.of(args.db, rotate=args.rotate_key)


def _room_for(connections: int) -> None:
    """Raise this process's open-file limit (often 1024 soft) toward the connection limit.
    Below it the server still holds: out of descriptors, a new connection closes the stalest."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 64  # the listener, the db, the worker pool's and Python's own files
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        print(f"bulkreg serve: at most {target} open files (ulimit -n): beyond about "
              f"{target - 64} connections a new one closes the stalest", file=sys.stderr)


def _reason(exc: BaseException, args: argparse.Namespace) -> str:
    if isinstance(exc, sqlite3.Error):
        return f"{exc} ({args.db})"
    if isinstance(exc, ssl.SSLError):
        return f"unusable TLS certificate or key: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
        reason = f"cannot listen on {args.host}:{args.port or 0}: {exc.strerror}"
        if getattr(args, "port_kept", None):
            reason += (f" (the port this hub's tokens were signed for, kept in "
                       f"{args.port_kept}: free it, or pass --port, and the old tokens are "
                       "refused)")
        return reason
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
