"""The reference hub, the conformance client and the suites built on them.

Subpackages: ``hub`` (``bulkreg serve``, the in-process reference hub and its registry model);
``sas`` is shared by the hub and the client. Nothing here is imported by ``bulkreg lint``.
"""

__all__: list[str] = []
