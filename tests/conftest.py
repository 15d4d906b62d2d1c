"""Shared test settings: deterministic hypothesis runs that leave no state in the checkout, and a
longer timeout for the slow suites."""

from __future__ import annotations

import atexit
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis keeps caches (constants, unicode data) under .hypothesis/ in the working directory
# even without an example database: keep them in a temporary folder instead.
_HOME = tempfile.mkdtemp(prefix="bulkreg-hypothesis-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
set_hypothesis_home_dir(_HOME)

# The same examples locally and in CI (hypothesis would otherwise switch to its "ci" profile when
# it sees a CI variable), no example database written into the working tree.
settings.register_profile(
    "bulkreg",
    database=None,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("bulkreg")


# A slow test (-m slow) installs into fresh venvs or sweeps seeds, one subprocess of up to 900 s
# after another; pyproject's `timeout` is sized for the default run. A test's own
# @pytest.mark.timeout wins.
SLOW_TIMEOUT = 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))
