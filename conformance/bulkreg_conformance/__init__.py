"""The reference hub, the conformance client and the suites built on them.

Layers (each imports only those before it): ``oracle`` (the pure registry model), ``sas``,
``client`` (every request a run sends), ``checks`` (registered check functions), ``context``
(what one run shares), ``suites`` (one registry), ``runner`` (preflight, suites, cleanup,
verdict), ``report``, ``cli``. ``hub`` (``bulkreg serve``) is the oracle behind HTTP. Nothing
here is imported by ``bulkreg lint``.
"""

__all__: list[str] = []
