"""Shared test settings: deterministic hypothesis runs that leave no state in the checkout."""

from __future__ import annotations

import atexit
import shutil
import tempfile

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
