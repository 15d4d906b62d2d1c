"""An independent, faithful implementation of Bulk Registry - Update Registry, written from the
published definition and facts.md alone, to test the conformance kit against an endpoint this
project did not otherwise write. ``Options`` switches every legitimate alternative."""

from .registry import Options
from .server import IndependentHub

__all__ = ["IndependentHub", "Options"]
