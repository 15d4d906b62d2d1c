"""The rule checks JSON Schema cannot express: small functions, each wired to its rules in the
rule table (``_rules.RULES``), like jsonschema's keyword functions.

A check gets one entry (already known to be an object) and a context, and calls ``emit(rule,
path, message)`` for each problem, ``path`` relative to the entry. Checks never raise on odd
input: a field of the wrong type is the schema's finding, so a check skips it.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from ._limits import LIMITS

__all__ = ["Applies", "Check", "Context", "api_at_least"]

Path = tuple[str | int, ...]
Emit = Callable[[str, Path, str], None]


class Context(NamedTuple):
    mode: str  # "bulk" | "import"
    api_version: str
    # False when the text is too short for any twin size or byte-length limit to be exceeded
    # (see _findings.short_text): the twin walk is then skipped when nothing else needs it.
    exhaustive: bool = True
    # validate the schema part with jsonschema-rs (servers: worth its import time; lint: not)
    accelerate: bool = False
    # True when every number has its literal's type (the exact scanner, or a value the caller
    # parsed); False for orjson's values, which turn integer literals beyond 64 bits into floats
    literal_numbers: bool = True


Check = Callable[[dict[str, Any], Context, Emit], None]
Applies = Callable[[Context], bool]


def always(ctx: Context) -> bool:
    return True


def bulk_only(ctx: Context) -> bool:
    return ctx.mode == "bulk"


def api_at_least(api_version: str, since: str) -> bool:
    # api-versions are ISO dates with an optional -preview suffix: compare the date part.
    return api_version[:10] >= since


def _show(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


_UNSUPPORTED_ID_CHARS = "+#;"


def unsupported_id_chars(entry: dict[str, Any], ctx: Context, emit: Emit) -> None:
    for field in ("id", "moduleId"):
        value = entry.get(field)
        if type(value) is str and ("+" in value or "#" in value or ";" in value):
            bad = sorted({c for c in value if c in _UNSUPPORTED_ID_CHARS})
            if bad:
                emit("id-unsupported-char", (field,),
                     f"{field} {_show(value)} uses {' '.join(bad)}: accepted by the service "
                     "definition, but current docs say devices cannot use it")


_ETAG_MODES = {"updateifmatchetag", "deleteifmatchetag"}
_TWIN_ETAG_MODES = {"updatetwinifmatchetag"}
_DELETE_MODES = {"delete", "deleteifmatchetag"}
_TWIN_MODES = {"updatetwin", "updatetwinifmatchetag"}
_TWIN_FIELDS = ("tags", "properties")
_DEVICE_FIELDS = ("status", "statusReason", "authentication", "capabilities", "deviceScope",
                  "parentScopes")
_ETAG_USERS = _ETAG_MODES | {"createorupdateifmatchetag"}


def _mode(entry: dict[str, Any]) -> str | None:
    mode = entry.get("importMode")
    return mode.lower() if type(mode) is str else None


def _present(entry: dict[str, Any], field: str) -> bool:
    return entry.get(field) not in (None, "", {}, [])


def import_mode_missing(entry: dict[str, Any], ctx: Context, emit: Emit) -> None:
    if ctx.mode == "bulk" and "importMode" not in entry:
        emit("import-mode-missing", (), "entry has no importMode; say create, update, delete, "
             "… explicitly (import files default to createOrUpdate, the bulk call is undocumented)")


def etags_required(entry: dict[str, Any], ctx: Context, emit: Emit) -> None:
    mode = _mode(entry)
    if mode in _ETAG_MODES and not _present(entry, "eTag"):
        emit("etag-required", ("eTag",) if "eTag" in entry else (),
             f"importMode {entry['importMode']} needs the device's eTag; without it the entry "
             "fails with PreconditionFailed")
    if mode in _TWIN_ETAG_MODES and not _present(entry, "twinETag"):
        emit("twin-etag-required", ("twinETag",) if "twinETag" in entry else (),
             f"importMode {entry['importMode']} needs the twin's twinETag; without it the entry "
             "fails with PreconditionFailed")


def mode_ignored_fields(entry: dict[str, Any], ctx: Context, emit: Emit) -> None:
    mode = _mode(entry)
    if mode is None or (mode not in _DELETE_MODES and mode not in _TWIN_MODES
                        and "eTag" not in entry and "twinETag" not in entry):
        return
    ignored: list[str] = []
    if mode not in _ETAG_USERS and _present(entry, "eTag"):
        ignored.append("eTag")
    if mode not in _TWIN_ETAG_MODES and _present(entry, "twinETag"):
        ignored.append("twinETag")
    if mode in _DELETE_MODES:
        ignored += [f for f in (*_DEVICE_FIELDS, *_TWIN_FIELDS) if _present(entry, f)]
    elif mode in _TWIN_MODES:
        ignored += [f for f in _DEVICE_FIELDS if _present(entry, f)]
    for field in ignored:
        emit("mode-ignored-field", (field,),
             f"importMode {entry['importMode']} does not use {field}; the service ignores it")


# --- authentication ----------------------------------------------------------------------------


def _strings(obj: Any, first: str, second: str) -> dict[str, str]:
    """The non-empty string members ``first``/``second`` of ``obj`` (empty or null: absent)."""
    if type(obj) is not dict:
        return {}
    found = {}
    a, b = obj.get(first), obj.get(second)
    if type(a) is str and a:
        found[first] = a
    if type(b) is str and b:
        found[second] = b
    return found


def authentication(entry: dict[str, Any], ctx: Context, emit: Emit) -> None:
    auth = entry.get("authentication")
    if type(auth) is not dict:
        return
    sym = auth.get("symmetricKey")
    if (type(sym) is dict and auth.get("x509Thumbprint") is None and auth.get("type") == "sas"
            and sym.get("primaryKey") and sym.get("secondaryKey")):
        return  # the usual shape, consistent by construction: both keys, no thumbprint
    keys = _strings(auth.get("symmetricKey"), "primaryKey", "secondaryKey")
    prints = _strings(auth.get("x509Thumbprint"), "primaryThumbprint", "secondaryThumbprint")
    kind = auth.get("type")
    kind = kind if type(kind) is str else None
    lowered = kind.lower() if kind else None
    if keys and prints:
        emit("auth-keys-and-thumbprints", ("authentication",),
             "authentication has both symmetricKey and x509Thumbprint; a device uses one of them")
    elif lowered == "sas" and prints:
        emit("auth-type-mismatch", ("authentication", "x509Thumbprint"),
             "type sas authenticates with symmetric keys, but x509Thumbprint is set")
    elif lowered == "selfsigned" and keys:
        emit("auth-type-mismatch", ("authentication", "symmetricKey"),
             "type selfSigned authenticates with x509Thumbprint, but symmetricKey is set")
    elif lowered == "selfsigned" and not prints:
        emit("auth-type-mismatch", ("authentication", "type"),
             "type selfSigned needs an x509Thumbprint (primary, secondary or both)")
    elif lowered in ("certificateauthority", "none") and (keys or prints):
        emit("auth-type-mismatch", ("authentication", "type"),
             f"type {kind} carries no key material, but "
             f"{'symmetricKey' if keys else 'x509Thumbprint'} is set")
    if len(keys) == 1:
        (given,) = keys
        missing = "secondaryKey" if given == "primaryKey" else "primaryKey"
        emit("auth-keys-pair", ("authentication", "symmetricKey", missing),
             f"symmetricKey has {given} but no {missing}; give both, or neither to have the "
             "service generate them")
    if len(prints) == 2:
        primary, secondary = prints["primaryThumbprint"], prints["secondaryThumbprint"]
        lengths = {len(primary), len(secondary)}
        if lengths == {40, 64}:  # other lengths are the schema's auth-thumbprint-format
            emit("auth-thumbprint-lengths", ("authentication", "x509Thumbprint"),
                 f"primaryThumbprint has {len(primary)} hex digits and secondaryThumbprint "
                 f"{len(secondary)}; both must be SHA-1 (40) or both SHA-256 (64)")


def key_problem(key: str) -> str:
    """Why ``key`` fails the schema's key pattern, for the finding's message."""
    try:
        raw = binascii.a2b_base64(key.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return "is not valid base64"
    return f"decodes to {len(raw)} bytes"


# --- twins -------------------------------------------------------------------------------------

_SECTIONS = (("tags", ("tags",), "tags_bytes"),
             ("desired", ("properties", "desired"), "desired_bytes"),
             ("reported", ("properties", "reported"), "reported_bytes"))
_METADATA = ("$metadata", "$version")


def _section(entry: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    section: Any = entry
    for step in path:
        section = section.get(step) if type(section) is dict else None
    return section if type(section) is dict else None


def twin_metadata(entry: dict[str, Any], ctx: Context, emit: Emit) -> None:
    properties = entry.get("properties")
    if type(properties) is not dict:
        return
    for name in ("desired", "reported"):
        section = properties.get(name)
        if type(section) is dict and ("$metadata" in section or "$version" in section):
            for key in _METADATA:
                if key in section:
                    emit("twin-metadata-ignored", ("properties", name, key),
                         f"{key} in {name} is maintained by the service; a bulk call ignores it")


def exhaustive(ctx: Context) -> bool:
    """Byte lengths and sizes can be exceeded only in texts that are not short."""
    return ctx.exhaustive


def before_arrays(ctx: Context) -> bool:
    return not api_at_least(ctx.api_version, LIMITS["arrays_since"])


def twin_sections(entry: dict[str, Any], ctx: Context, emit: Emit) -> None:
    arrays_ok = api_at_least(ctx.api_version, LIMITS["arrays_since"])
    for name, path, limit_name in _SECTIONS:
        section = _section(entry, path)
        if section is None:
            continue
        size = 0
        for key, value in section.items():
            if key in _METADATA and name != "tags":
                continue
            size += _member(key, value, (*path, key), arrays_ok, emit, 1)
        limit = LIMITS[limit_name]
        if size > limit:  # measured with len(): now exactly, without control characters
            size -= _controls(section)
        if size > limit:
            emit("twin-section-size", path,
                 f"{name} is {size} bytes by the docs' size algorithm, over the {limit} byte limit")


def twin_sections_quiet(entry: dict[str, Any], ctx: Context) -> bool:
    """True only when ``twin_sections`` cannot emit for ``entry``: a cheap bound for the import
    fast path, without the walk. Arrays are allowed at ``ctx``'s api-version; each section's size
    is within its limit by either bound on the size algorithm's count from the section's JSON
    text: 4 per byte (a number "1," counts 8), or a character per byte plus 8 per value that may
    be a number or boolean (each follows a ':', '[' or ','); and no run of the text between
    quotes is longer than a key may be, escaped quotes aside (a key or string is never shorter
    in the text than in UTF-8)."""
    if not api_at_least(ctx.api_version, LIMITS["arrays_since"]):
        return False
    for _name, path, limit_name in _SECTIONS:
        section = _section(entry, path)
        if section is None:
            continue
        try:
            text = orjson.dumps(section)
        except TypeError:  # deeper than orjson writes: the walk decides
            return False
        limit = LIMITS[limit_name]
        if 4 * len(text) > limit and len(text) + 8 * (
                text.count(b":") + text.count(b",") + text.count(b"[")) > limit:
            return False
        if b"\\" in text and b'\\"' in text:
            return False
        if len(text) > _KEY_MAX and max(map(len, text.split(b'"'))) > _KEY_MAX:
            return False
    return True


_KEY_MAX, _STR_MAX = LIMITS["twin_key_bytes"], LIMITS["twin_string_bytes"]
_MAX_DEPTH = 11  # one past the schema's twin depth, so that walks stay shallow


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _controls(node: Any, depth: int = 0) -> int:
    """C0/C1 control characters in the keys and strings of ``node`` (the docs' size algorithm
    counts characters "excluding C0/C1"), bar the service-maintained $metadata/$version."""
    if type(node) is str:
        return len(_CONTROL.findall(node))
    if depth > _MAX_DEPTH:
        return 0
    if type(node) is dict:
        return sum(_controls(k) + _controls(v, depth + 1) for k, v in node.items()
                   if k not in _METADATA)
    if type(node) is list:
        return sum(_controls(v, depth + 1) for v in node)
    return 0


def _member(key: str, value: Any, path: Path, arrays_ok: bool, emit: Emit, depth: int) -> int:
    """Size of one twin member (key + value), emitting problems of the key and the value."""
    # A character is at most 4 UTF-8 bytes: only long strings need encoding to be measured.
    if len(key) > _KEY_MAX // 4:
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > _KEY_MAX:
            emit("twin-key-length", path, f"key is {size} bytes in UTF-8, over {_KEY_MAX}")
    return len(key) + _value(value, path, arrays_ok, emit, depth)


def _string(value: str, path: Path, emit: Emit) -> None:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > _STR_MAX:
        emit("twin-string-length", path, f"string value is {size} bytes in UTF-8, over {_STR_MAX}")


def _value(value: Any, path: Path, arrays_ok: bool, emit: Emit, depth: int) -> int:
    """Size of one twin value by the docs' algorithm: strings by characters, numbers 8 bytes,
    booleans 4, null 0, containers the sum of their contents. Scalars inside a container are
    measured inline (most twin values are scalars: one call per container, not per value)."""
    kind = type(value)
    if kind is str:
        if len(value) > _STR_MAX // 4:
            _string(value, path, emit)
        return len(value)
    if kind is dict or kind is list:
        if depth > _MAX_DEPTH:
            return 0  # deeper than twins go: the schema's twin-depth finding says so
        if kind is list and not arrays_ok:
            emit("twin-array-api-version", path,
                 f"arrays in twins need api-version {LIMITS['arrays_since']} or later")
        total = 0
        pairs = value.items() if kind is dict else enumerate(value)
        for k, v in pairs:
            if kind is dict:
                if type(k) is not str:
                    continue
                total += len(k)
                if len(k) > _KEY_MAX // 4:
                    _member(k, None, (*path, k), arrays_ok, emit, depth)
            t = type(v)
            if t is str:
                total += len(v)
                if len(v) > _STR_MAX // 4:
                    _string(v, (*path, k), emit)
            elif t is int or t is float:
                total += 8
            elif t is bool:
                total += 4
            elif v is not None:
                total += _value(v, (*path, k), arrays_ok, emit, depth + 1)
        return total
    if kind is int or kind is float:
        return 8
    if kind is bool:
        return 4
    return 0


def before_parent_scopes(ctx: Context) -> bool:
    return not api_at_least(ctx.api_version, LIMITS["parent_scopes_since"])


def parent_scopes_version(entry: dict[str, Any], ctx: Context, emit: Emit) -> None:
    if "parentScopes" in entry and not api_at_least(ctx.api_version,
                                                    LIMITS["parent_scopes_since"]):
        emit("parent-scopes-api-version", ("parentScopes",),
             f"api-version {ctx.api_version} has no parentScopes; the service ignores it")
