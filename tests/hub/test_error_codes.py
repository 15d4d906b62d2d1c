"""Every errorCode the reference hub can answer is a name of the service definition's enum."""

from __future__ import annotations

import re
from pathlib import Path

import bulkreg_schema

PACKAGE = Path(__file__).resolve().parents[2] / "conformance" / "bulkreg_conformance"
HUB = [PACKAGE / "hub", PACKAGE / "oracle"]  # the HTTP layer and the model behind it
ENUM = set(bulkreg_schema.load("DeviceRegistryOperationError")["properties"]["errorCode"]["enum"])
# error(<status>, "<Name>", ...) and the per-entry codes of the model
USES = re.compile(r'error\(\s*\d{3},\s*"([A-Za-z]+)"|_entry_error\([^)]*"([A-Za-z]+)"'
                  r'|"(InvalidProtocolVersion|ThrottlingException|[A-Za-z]+(?:NotFound|'
                  r'AlreadyExists|Failed))"')


def test_hub_error_codes_are_in_the_enum() -> None:
    names = {name for folder in HUB for path in folder.glob("*.py")
             for match in USES.finditer(path.read_text(encoding="utf-8"))
             for name in match.groups() if name}
    assert {"DeviceNotFound", "DeviceAlreadyExists", "PreconditionFailed"} <= names
    assert names <= ENUM, names - ENUM
