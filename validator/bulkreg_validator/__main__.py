"""``python -m bulkreg_validator``: the ``bulkreg`` command line."""

import sys

from .cli import main

sys.exit(main())
