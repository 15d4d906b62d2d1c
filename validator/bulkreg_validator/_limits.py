"""The limits JSON Schema cannot express, as values (UTF-8 byte lengths, sizes, api-versions).

Schema-expressible limits (id pattern, statusReason 128, depth 10, key characters, thumbprint hex,
100 entries) live only in the schema files; nothing here restates them. Sources are keys of
docs/evidence.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LIMITS"]

LIMITS: dict[str, Any] = {
    "twin_key_bytes": 1024,  # SWG PropertyContainer "up-to 1KB"; DOC-TW
    "twin_string_bytes": 4096,  # DOC-TW; EDGE TwinPropertyValueMaxLength (UTF-8 bytes)
    "tags_bytes": 8 * 1024,  # DOC-TW, DOC-QT
    "desired_bytes": 32 * 1024,
    "reported_bytes": 32 * 1024,
    "json_max_depth": 1024,  # the parser's nesting limit (also orjson's)
    "arrays_since": "2019-10-01",  # azure-iot-explorer#305
    "parent_scopes_since": "2020-09-30",  # PY223 (2020-05-31-preview) lacks parentScopes
}
