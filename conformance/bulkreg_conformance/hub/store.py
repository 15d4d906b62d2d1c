"""Where the hub keeps its registry: memory (default) or one SQLite file (``--db``).

A store only persists ``Changes`` planned by the model; the hub writes them, under its registry
lock, *before* it adopts them and answers, so an acknowledged response is always on disk. SQLite
runs in WAL mode with ``synchronous=FULL``: a commit has reached the disk when ``write`` returns,
and a killed process reopens with exactly the committed state.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import orjson

from bulkreg_conformance.oracle.model import Changes, Key, Record, Registry

__all__ = ["MemoryStore", "SqliteStore", "Store", "StoreInUse", "open_store"]


class Store(Protocol):
    def load(self) -> Registry: ...

    def write(self, changes: Changes, meta: Mapping[str, bytes] | None = None) -> None: ...

    def load_meta(self, prefix: str) -> dict[str, bytes]: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """Nothing to persist: the registry object is the state."""

    def __init__(self, seed: bytes | None = None) -> None:
        self._seed = seed

    def load(self) -> Registry:
        return Registry(seed=self._seed)

    def write(self, changes: Changes, meta: Mapping[str, bytes] | None = None) -> None:
        pass

    def load_meta(self, prefix: str) -> dict[str, bytes]:
        return {}

    def clear(self) -> None:
        pass

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    device_id TEXT NOT NULL,
    module_id TEXT NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (device_id, module_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class StoreInUse(Exception):
    """Another hub holds the file's lock (its pid in the message)."""


def _hold(path: Path) -> int:
    """An exclusive lock on ``FILE.lock`` for this process's lifetime, holding our pid.

    Two hubs on one file would each keep their own in-memory registry and overwrite each
    other's acknowledged writes; the second one must not start. flock is released by the kernel
    when the holder exits, killed or not, so a stale lock file never blocks a restart."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # the same words sqlite would use for the file itself
        raise sqlite3.OperationalError(f"unable to open database file: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StoreInUse(f"{path} is in use by another bulkreg serve (pid {holder}); "
                         "stop it or use another --db file") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class SqliteStore:
    """The registry in one SQLite file; one connection, used under the hub's lock."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()  # belt and braces: the hub already serialises writes
        self._held = _hold(self._path)
        try:
            self._db = sqlite3.connect(self._path, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except BaseException:
            os.close(self._held)
            raise

    def _meta(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def load(self) -> Registry:
        with self._lock:
            seed = self._meta("seed")
            if seed is None:
                # the seed keys the generated values; kept so a restart continues the sequence
                seed = os.urandom(32)
                self._db.execute("INSERT INTO meta VALUES ('seed', ?)", (seed,))
            counter = int(self._meta("counter") or b"0")
            records: dict[Key, Record] = {
                (device_id, module_id): orjson.loads(blob)
                for device_id, module_id, blob in self._db.execute(
                    "SELECT device_id, module_id, record FROM identities")
            }
        return Registry(seed=seed, records=records, counter=counter)

    def load_meta(self, prefix: str) -> dict[str, bytes]:
        """The meta rows whose name starts with ``prefix`` (the import/export job records)."""
        with self._lock:
            rows = self._db.execute("SELECT name, value FROM meta WHERE substr(name, 1, ?) = ?",
                                    (len(prefix), prefix)).fetchall()
        return {name: bytes(value) for name, value in rows}

    def write(self, changes: Changes, meta: Mapping[str, bytes] | None = None) -> None:
        """``changes`` and the ``meta`` rows in one transaction: an import job's progress is
        committed with the lines it applied, so a kill never leaves one without the other."""
        upserts = [(k[0], k[1], orjson.dumps(r)) for k, r in changes.records.items()
                   if r is not None]
        deletes = [k for k, r in changes.records.items() if r is None]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO identities VALUES (?, ?, ?)",
                                     upserts)
                self._db.executemany(
                    "DELETE FROM identities WHERE device_id = ? AND module_id = ?", deletes)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('counter', ?)",
                                 (str(changes.counter).encode(),))
                if meta:
                    self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                         list(meta.items()))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def clear(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM identities")
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
            with contextlib.suppress(OSError):
                os.close(self._held)  # the lock goes with it


def open_store(db: str | Path | None) -> Store:
    return MemoryStore() if db is None else SqliteStore(db)
