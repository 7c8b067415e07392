"""The oracle kit under its first name: everything of :mod:`dlnref.oracle`, for code that imports ``dlnref.testing``.

Needs ``hypothesis`` (``pip install "dlnref[test]"``).
"""

from .oracle import *  # noqa: F403  (this module is the same face under another name)
from .oracle import __all__  # noqa: F401
