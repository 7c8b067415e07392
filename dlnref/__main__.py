"""``python -m dlnref``: the same as the ``dlnref`` command."""

import sys

from .cli import main

sys.exit(main())
