"""The contract as data: JSON Schema 2020-12 documents, openapi.json and the shared examples.

Everything here is package data read with plain file access relative to this module, so it works
from a wheel, an sdist or a checkout alike (``importlib.resources`` would cost the lint path an
import it does not need).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from ._regex import ecma_regex

__all__ = [
    "API_VERSION",
    "BASE_URI",
    "SCHEMA_NAMES",
    "Contract",
    "contract",
    "ecma_regex",
    "examples",
    "load",
    "openapi",
    "openapi_path",
    "path",
    "registry",
]

API_VERSION = "2021-04-12"
BASE_URI = f"https://bulkreg.dev/schema/{API_VERSION}/"
_HERE = Path(__file__).resolve().parent
SCHEMA_NAMES = tuple(sorted(p.stem for p in (_HERE / "schemas").glob("*.json")))


def path(name: str) -> Path:
    """The file of schema ``name`` (e.g. ``"BulkRequest"``), for editors and other tools."""
    if name not in SCHEMA_NAMES:
        raise KeyError(f"no schema named {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return _HERE / "schemas" / f"{name}.json"


def load(name: str) -> dict[str, Any]:
    """Schema ``name`` as a fresh dict."""
    result: dict[str, Any] = json.loads(path(name).read_text(encoding="utf-8"))
    return result


def registry() -> dict[str, dict[str, Any]]:
    """Every schema keyed by its ``$id`` (what a ``$ref`` resolves to, without network)."""
    docs = (load(name) for name in SCHEMA_NAMES)
    return {doc["$id"]: doc for doc in docs}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of POST /devices and the read/verify endpoints."""
    result: dict[str, Any] = json.loads((_HERE / "openapi.json").read_text(encoding="utf-8"))
    return result


def openapi_path() -> Path:
    return _HERE / "openapi.json"


def examples() -> list[dict[str, Any]]:
    """The shared example corpus: every file of ``examples/`` as a list of cases, in file order.

    A case is ``{"name", "description", "mode": "bulk"|"import", "payload" | "text",
    "valid": bool, "expect": [{"rule", "code", "pointer"}...], "api_version"?}``.
    """
    cases: list[dict[str, Any]] = []
    for file in sorted((_HERE / "examples").glob("*.json")):
        for case in json.loads(file.read_text(encoding="utf-8")):
            case.setdefault("source", file.name)
            cases.append(case)
    return cases


class Contract(NamedTuple):
    """The limits other code needs as values, read from the schema files (never restated)."""

    id_pattern: re.Pattern[str]  # a whole device or module id
    id_max_length: int
    status_reason_max_length: int
    bulk_modes: tuple[str, ...]  # importMode values of the bulk call
    import_modes: tuple[str, ...]  # importMode values of an import file line
    max_entries: int  # entries per bulk call
    key_decoded_bytes: tuple[int, int]  # a symmetric key's decoded length range
    twin_max_depth: int
    twin_integer_range: tuple[int, int]


_CONTRACT: list[Contract] = []


def contract() -> Contract:
    """The contract's limits as values (loaded once)."""
    if not _CONTRACT:
        device = load("ExportImportDevice")["properties"]
        twin = load("TwinCollection")["$defs"]
        depth = sum(1 for name in twin if name.startswith("level")) - 1
        leaf = twin[f"level{depth + 1}"]
        low, high = load("SymmetricKey")["properties"]["primaryKey"]["x-bulkreg-decoded-bytes"]
        id_ = device["id"]
        _CONTRACT.append(Contract(
            id_pattern=ecma_regex(
                f"{id_['pattern'].removesuffix('+$')}{{{id_['minLength']},{id_['maxLength']}}}$"),
            id_max_length=id_["maxLength"],
            status_reason_max_length=device["statusReason"]["maxLength"],
            bulk_modes=tuple(device["importMode"]["enum"]),
            import_modes=tuple(load("ImportLine")["properties"]["importMode"]["enum"]),
            max_entries=load("BulkRequest")["maxItems"],
            key_decoded_bytes=(low, high),
            twin_max_depth=depth,
            twin_integer_range=(leaf["minimum"], leaf["maximum"]),
        ))
    return _CONTRACT[0]
