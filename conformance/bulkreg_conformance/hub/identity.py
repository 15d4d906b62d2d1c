"""What ``bulkreg serve --db FILE`` keeps across restarts so that its tokens stay valid.

A SAS token is signed with a policy's key for a HostName (``127.0.0.1:PORT``, or
``NAME.azure-devices.net`` with ``--hub-name``). A hub restarted on the same database with a
new key, or on a new port, refuses every token it issued. So ``FILE.identity``, beside the
database, keeps every policy's key and the port the hub listened on: a restart without
``--port`` comes back on that port (``--port`` given replaces it; ``--hub-name``, a flag the user
gives every time like ``--db``, is not kept).

The file is JSON, mode 0600 (tightened if found looser), written whole to a temporary file and
renamed, only while this process holds the database's lock. Keys are never printed or logged.
``--rotate-key`` replaces every key (the tokens signed with the old ones are refused from then
on); with ``--connection-string`` the hub's identity is that string, and the file is neither
read nor written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bulkreg_conformance.sas import Policy

__all__ = ["Identity"]


@dataclass
class Identity:
    """The kept identity of the hub whose database is ``db`` (empty until first saved)."""

    path: Path
    keys: dict[str, str] = field(default_factory=dict)  # policy name -> key (base64)
    port: int | None = None

    @classmethod
    def of(cls, db: str | Path, *, rotate: bool = False) -> Identity:
        """The identity kept beside ``db``; ``rotate`` keeps its port, not its keys."""
        path = Path(f"{db}.identity")
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        _tighten(path)
        try:
            kept = _parse(path, text)
        except ValueError:
            if not rotate:
                raise
            return cls(path)  # unreadable: rotating writes a new one
        if rotate:
            kept.keys = {}
        return kept

    def policies(self, fresh: dict[str, Policy]) -> dict[str, Policy]:
        """``fresh`` (the policies a new hub would have) with the kept keys; new policies keep
        their fresh key, which is kept from now on."""
        kept = {name: Policy(name, self.keys[name], policy.permissions)
                if name in self.keys else policy for name, policy in fresh.items()}
        self.keys = {name: policy.key for name, policy in kept.items()}
        return kept

    def save(self) -> bool:
        """Write the file (0600, atomically); True if it is new or its keys changed."""
        before = self.path.read_bytes() if self.path.exists() else b""
        body = orjson.dumps({"port": self.port, "keys": self.keys},
                            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        if body == before:
            return False
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        return not before or orjson.loads(before).get("keys") != self.keys


def _tighten(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        print(f"bulkreg serve: {path} was readable by others (mode {mode:o}); now 0600",
              file=sys.stderr)


def _parse(path: Path, text: bytes) -> Identity:
    def bad(what: str) -> ValueError:
        return ValueError(f"{path} is not a bulkreg identity file ({what}); remove it, or "
                          "start with --rotate-key to write a new one")

    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise bad("not JSON") from None
    if type(data) is not dict or type(data.get("keys")) is not dict:
        raise bad("no keys")
    for name, key in data["keys"].items():
        try:
            if type(key) is not str or not base64.b64decode(key, validate=True):
                raise bad(f"the key of {name} is not base64")
        except binascii.Error:
            raise bad(f"the key of {name} is not base64") from None
    port = data.get("port")
    if port is not None and (type(port) is not int or not 0 < port <= 65535):
        raise bad("port is not a port number")
    return Identity(path, dict(data["keys"]), port)
