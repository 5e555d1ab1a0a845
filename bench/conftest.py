"""bench/ is run from the repository root (`python -m bench`), not installed: let its tests
import it the same way."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
