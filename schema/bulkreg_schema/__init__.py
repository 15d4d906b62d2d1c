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
    "DRAFT",
    "SCHEMA_NAMES",
    "Contract",
    "bundle",
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
DRAFT = "https://json-schema.org/draft/2020-12/schema"
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


def bundle(*roots: str, documents: dict[str, dict[str, Any]] | None = None,
           defs: str = "#/$defs/") -> dict[str, Any]:
    """Schemas ``roots`` and every schema they reference as one document that needs neither
    network nor sibling files: each under ``"$defs"`` by name, without ``$id``/``$schema``, every
    ``$ref`` rewritten to the local pointer ``defs + Name + fragment``.

    The files' relative ``$ref``s resolve against their ``$id`` (https://bulkreg.dev/...), which
    some tools try to fetch. With one root the document is that schema: it carries the root's
    title, description and a ``$ref`` to it (``bulkreg schema-bundle``, editors). OpenAPI's
    ``components.schemas`` is the ``"$defs"`` of every schema with
    ``defs="#/components/schemas/"``. ``documents`` (schemas by name) defaults to the shipped
    files; ``KeyError`` names an unknown schema.
    """
    docs = documents if documents is not None else {n: load(n) for n in _needed(roots)}
    bundled: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop(0)
        if name in bundled:
            continue
        if name not in docs:
            raise KeyError(f"no schema named {name!r}; known: {', '.join(sorted(docs))}")
        bundled[name] = _local_refs(docs[name], name, defs)
        pending.extend(_references(docs[name]))
    if len(roots) != 1:
        return {"$defs": bundled}
    root = docs[roots[0]]
    return {"$schema": root.get("$schema", DRAFT),
            "title": root.get("title", roots[0]),
            "description": f"{root.get('description', '')} (bundled from {root['$id']})".strip(),
            "$ref": f"{defs}{roots[0]}",
            "$defs": bundled}


def _needed(roots: tuple[str, ...]) -> list[str]:
    """Every shipped schema ``roots`` reach (an unknown root raises KeyError)."""
    seen: list[str] = []
    pending = list(roots)
    while pending:
        name = pending.pop(0)
        if name not in seen:
            path(name)  # KeyError for an unknown name
            seen.append(name)
            pending.extend(_references(load(name)))
    return seen


def _references(node: Any) -> list[str]:
    """The names of the schema files ``node`` refers to."""
    if isinstance(node, list):
        return [name for item in node for name in _references(item)]
    if not isinstance(node, dict):
        return []
    ref = node.get("$ref")
    own = [ref.partition("#")[0].removesuffix(".json")] if isinstance(ref, str) and \
        not ref.startswith("#") else []
    return own + [name for value in node.values() for name in _references(value)]


def _local_refs(node: Any, owner: str, defs: str) -> Any:
    """``node`` without ``$id``/``$schema`` and with every ``$ref`` made local."""
    if isinstance(node, list):
        return [_local_refs(item, owner, defs) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _local_refs(value, owner, defs) for key, value in node.items()
           if key not in ("$id", "$schema")}
    ref = node.get("$ref")
    if isinstance(ref, str):
        file, _, fragment = ref.partition("#")
        out["$ref"] = f"{defs}{file.removesuffix('.json') or owner}{fragment}"
    return out


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
    api_versions: tuple[str, ...]  # the current version first, then older ones SDKs used
    etag_modes: frozenset[str]  # importModes that need the device's eTag
    twin_etag_modes: frozenset[str]  # importModes that need the twin's twinETag
    delete_modes: frozenset[str]
    twin_only_modes: frozenset[str]  # importModes that write only the twin
    thumbprint_lengths: tuple[int, ...]  # hex digits of an accepted X.509 thumbprint
    default_mode: str  # the importMode of an entry or line that names none

    def canonical_mode(self, value: object) -> str | None:
        """An importMode as the contract spells it: absent (None) is :attr:`default_mode`; a
        string matches an import-file mode whatever its case; anything else is None."""
        if value is None:
            return self.default_mode
        if isinstance(value, str):
            return _MODE_NAMES.get(value.lower())
        return None


_CONTRACT: list[Contract] = []
_MODE_NAMES: dict[str, str] = {}  # lower-cased importMode -> the contract's spelling


def contract() -> Contract:
    """The contract's limits as values (loaded once)."""
    if not _CONTRACT:
        device = load("ExportImportDevice")["properties"]
        twin = load("TwinCollection")["$defs"]
        depth = sum(1 for name in twin if name.startswith("level")) - 1
        leaf = twin[f"level{depth + 1}"]
        low, high = load("SymmetricKey")["properties"]["primaryKey"]["x-bulkreg-decoded-bytes"]
        id_ = device["id"]
        semantics = load("ImportLine")["properties"]["importMode"]["x-bulkreg-mode-semantics"]
        thumbprint = load("X509Thumbprint")["properties"]["primaryThumbprint"]["pattern"]
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
            api_versions=tuple(load("BulkRequest")["x-bulkreg-api-versions"]),
            etag_modes=frozenset(semantics["etag"]),
            twin_etag_modes=frozenset(semantics["twinEtag"]),
            delete_modes=frozenset(semantics["delete"]),
            twin_only_modes=frozenset(semantics["twinOnly"]),
            thumbprint_lengths=tuple(int(n) for n in re.findall(r"\{(\d+)\}", thumbprint)),
            default_mode=load("ImportLine")["properties"]["importMode"]["default"],
        ))
        _MODE_NAMES.update({m.lower(): m for m in _CONTRACT[0].import_modes})
    return _CONTRACT[0]
