"""The benchmark (``bench/``) is a folder of the repository, run as ``python -m bench`` from its
root, not an installed package: its tests import it from the root, as ``python -m`` would."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.append(ROOT)
