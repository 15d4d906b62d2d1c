"""The reference hub, the conformance client and the suites built on them.

Layers (each imports only those before it; ``tests/test_layers.py`` holds the list):
``evidence`` and ``settings``; ``oracle`` (the pure registry model), ``decisions`` and
``client`` (every request a run sends); ``answers`` (reading an endpoint's answers);
``expectation`` (what one bulk call must get); ``service_view``; ``checks`` (registered check
functions); ``coverage`` (the minimum a PASS needs); ``session`` (ledger and step);
``differential`` and ``replay``; ``suites`` (the plan first, then the explorers); ``hub``
(``bulkreg serve``: the oracle behind HTTP); ``runner`` (preflight, plan, suites, cleanup,
verdict); ``report``; ``cli``. Nothing here is imported by ``bulkreg lint``.
"""

__all__: list[str] = []
