"""Makes the cross-service test support (``tests.support``) importable from the tax service's tests
(pytest runs with importlib mode)."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[3])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
