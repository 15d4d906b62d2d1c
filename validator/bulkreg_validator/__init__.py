"""Offline validation of Azure IoT Hub bulk registry payloads and import files.

``validate(payload)`` checks a bulk payload (the body of ``POST /devices``); ``validate_import``
checks a newline-delimited import file in constant memory. Both return a ``Report`` of
``Finding`` records and never raise for bad input.
"""

from ._bulk import validate, validate_parsed
from ._checks import api_at_least
from ._findings import Finding, Report
from ._import import iter_import, validate_import
from ._rules import EVIDENCE_LEVELS, LIMITS, RULES, Rule

__all__ = [
    "EVIDENCE_LEVELS",
    "LIMITS",
    "RULES",
    "Finding",
    "Report",
    "Rule",
    "api_at_least",
    "iter_import",
    "validate",
    "validate_import",
    "validate_parsed",
]
