"""Minimum coverage: what a run must have exercised before "nothing failed" may read "conforms".

A run's minimum is a set of items, each named ``<group>:<what>``, fixed by the suites it runs
(:func:`minimum`):

- ``auth``: the write permission the preflight proves, a missing, wrongly signed, expired,
  unknown-policy and other-resource token, and a read-only policy's writes (when the run has a
  read-only connection string; the built-in hub gives one);
- ``property`` (and the validator's differential view of the same calls): every rule of the rule
  table on both sides of its limit (``rule:<id>:reject``, ``rule:<id>:accept``), every member a
  write stores round-tripped (``member:<name>``), every importMode with every outcome it can
  have (``cell:<mode>:<outcome>``), the etag transitions (``etag:<what>``), id identity, what a
  write does beyond its members (``write:<what>``: nothing of a refused request applied, the
  last entries of a full call, twins deleted with devices, keys kept by twin updates, special
  ids, modules) and the api-version (``request:api-version``);
- ``jobs`` (with a blob container): an import job's lifecycle and importErrors.log, the
  one-active-job rule, cancel, export and its round trip (``jobs:<what>``);
- ``stateful`` or ``schemathesis`` selected without a planned suite: that they ran to the end.

:class:`Coverage` tracks what a run reached and, for what it did not, why (the time budget,
``--max-requests``, throttling, a suite that could not run, permissions). The verdict is PASS
only when nothing failed and every item was reached; nothing failed and items missing is
INCOMPLETE.
"""

from __future__ import annotations

from collections.abc import Iterable

import bulkreg_schema
from bulkreg_conformance.settings import EXPLORERS, PLANNED
from bulkreg_validator import RULES

__all__ = ["CELLS", "GROUPS", "IMPORT_ONLY_RULES", "MEMBERS", "Coverage", "minimum", "rule_items"]

_CONTRACT = bulkreg_schema.contract()
IMPORT_ONLY_RULES = frozenset({"import-blank-line"})  # a bulk body cannot carry them
BULK_RULES = tuple(r for r in RULES if r not in IMPORT_ONLY_RULES)

# What a create or an update stores (SWG ExportImportDevice; DOC-IR), written with an explicit
# valid value and read back: name -> where the read shows it.
MEMBERS = {
    "primaryKey": "authentication.symmetricKey.primaryKey",
    "secondaryKey": "authentication.symmetricKey.secondaryKey",
    "primaryThumbprint": "authentication.x509Thumbprint.primaryThumbprint (SHA-1 and SHA-256)",
    "secondaryThumbprint": "authentication.x509Thumbprint.secondaryThumbprint",
    "authentication.type": "authentication.type (sas, selfSigned, certificateAuthority, none)",
    "status": "status (disabled)",
    "statusReason": "statusReason",
    "capabilities.iotEdge": "capabilities.iotEdge",
    "deviceScope": "deviceScope (a leaf under an edge device)",
    "parentScopes": "parentScopes",
    "tags": "the twin's tags",
    "desired": "the twin's desired properties",
}
ETAGS = {
    "device-changes": "an update changes the device etag",
    "twin-changes": "a twin update changes the twin etag",
    "stale-update": "updateIfMatchETag with the etag from before the last write fails",
    "stale-delete": "deleteIfMatchETag with the etag from before the last write fails",
    "stale-twin": "updateTwinIfMatchETag with the twin etag from before the last write fails",
}
AUTH = {
    "write": "the connection string's policy may write (preflight: create and delete one device)",
    "missing": "a request without Authorization gets 401",
    "invalid": "a wrongly signed token gets 401",
    "expired": "an expired token gets 401",
    "wrong-policy": "a token naming an unknown policy gets 401",
    "wrong-resource": "a token signed with the right key for another hub, or for another path, "
                      "gets 401",
}
READ_ONLY = {"read-only": "a read-only policy's token may read but write neither devices nor "
                          "twins"}
WRITES = {  # what a write does beyond the members it stores
    "atomic": "a request refused as a whole applied none of its entries (read back)",
    "every-entry": "the last entries of a 100-entry call are applied, twins included (read back)",
    "delete-twin": "a deleted device's twin is gone with it",
    "keys-kept": "a twin update leaves the device's keys as they were",
    "update-changes": "an update changes capabilities and the authentication type",
    "special-ids": "ids with every allowed special character hold their tags, read back by "
                   "path, and a bulk delete removes them",
    "modules": "module ids that differ only in case are distinct, and a module's twin update "
               "leaves the device twin alone (observed: a maintainer's note)",
}
REQUEST = {"api-version": "a bulk call without api-version, or with an unknown one, is refused"}
JOBS = {
    "lifecycle": "an import job moves through the statuses JobProperties allows and ends "
                 "completed though lines failed",
    "import-log": "importErrors.log fails the predicted lines with the predicted codes, and the "
                  "applied devices read back as predicted",
    "one-active": "a second job is refused while one is active",
    "cancel": "a job cancelled while active ends cancelled",
    "export": "an export writes every device of the prefix, with its twin",
    "round-trip": "exported lines imported again read back as the originals",
}
GROUPS = {"auth": "auth", "rule": "rules on both sides of their limits",
          "member": "stored members round-tripped", "cell": "importMode x outcome",
          "etag": "etag transitions", "id": "id identity", "write": "what a write does",
          "request": "the request line", "jobs": "import and export jobs",
          "explore": "exploring suites"}


def _cells() -> list[tuple[str, str]]:
    modes = _CONTRACT.bulk_modes
    if_match = _CONTRACT.etag_modes | _CONTRACT.twin_etag_modes
    cells = [(m, "ok") for m in (*modes, _CONTRACT.default_mode)]
    cells += [(m, "DeviceNotFound") for m in modes if m != "create"]
    cells += [("create", "DeviceAlreadyExists")]
    cells += [(m, "PreconditionFailed") for m in modes if m in if_match]
    return cells


CELLS = tuple(_cells())


def rule_items() -> dict[str, str]:
    items = {}
    for rule in BULK_RULES:
        items[f"rule:{rule}:reject"] = f"{rule}: a payload that breaks it"
        items[f"rule:{rule}:accept"] = f"{rule}: a valid payload at its limit"
    return items


def minimum(suites: Iterable[str], *, read_only: bool, jobs: bool = False) -> dict[str, str]:
    """The items a run of ``suites`` must reach (item -> what it means); ``jobs``: the run has
    a blob container, so the jobs suite runs."""
    chosen = set(suites)
    items: dict[str, str] = {}
    if "jobs" in chosen and jobs:
        items |= {f"jobs:{k}": v for k, v in JOBS.items()}
    if "auth" in chosen:
        items |= {f"auth:{k}": v for k, v in AUTH.items()}
        if read_only:
            items |= {f"auth:{k}": v for k, v in READ_ONLY.items()}
    if "property" in chosen:
        items |= rule_items()
        items |= {f"member:{k}": v for k, v in MEMBERS.items()}
        items |= {f"cell:{m}:{o}": f"{m} x {o}" for m, o in CELLS}
        items |= {f"etag:{k}": v for k, v in ETAGS.items()}
        items["id:case-distinct"] = "ids that differ only in case are distinct devices"
        items |= {f"write:{k}": v for k, v in WRITES.items()}
        items |= {f"request:{k}": v for k, v in REQUEST.items()}
    if not chosen & set(PLANNED):
        items |= {f"explore:{s}": f"the {s} suite ran to its end" for s in EXPLORERS
                  if s in chosen}
    return items


class Coverage:
    """What a run must reach (``required``), what it reached, and why the rest was not."""

    def __init__(self, required: dict[str, str]) -> None:
        self.required = required
        self.covered: set[str] = set()
        self.reasons: dict[str, str] = {}  # item -> why it was not reached (first reason)
        self.stop: str | None = None  # why the run stopped early, if it did
        self.requests: int | None = None  # requests sent when the plan had reached it all

    def cover(self, *items: str) -> None:
        self.covered.update(items)

    def miss(self, reason: str, *items: str) -> None:
        for item in items:
            if item not in self.covered:
                self.reasons.setdefault(item, reason)

    def missing(self) -> list[str]:
        return [item for item in self.required if item not in self.covered]

    def reached(self) -> bool:
        return not self.missing()

    def why(self, item: str) -> str:
        return self.reasons.get(item) or self.stop or "not reached"

    def by_group(self) -> dict[str, tuple[int, int, list[str]]]:
        """group -> (reached, required, missing items) in the order of GROUPS."""
        out: dict[str, tuple[int, int, list[str]]] = {}
        for group in GROUPS:
            mine = [i for i in self.required if i.split(":", 1)[0] == group]
            if mine:
                missing = [i for i in mine if i not in self.covered]
                out[group] = (len(mine) - len(missing), len(mine), missing)
        return out
