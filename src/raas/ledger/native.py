"""The ledger's optional C speed-ups (`raas.ledger._native`), or None where raas runs without them.

`setup.py` builds them where a C compiler and the headers of OpenSSL and SQLite are at hand;
without them, or with `RAAS_PURE_PYTHON=1` in the environment, every caller takes its
pure-Python way, which makes the same bytes (the tests hold the two to each other).
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["speedups"]


def _loaded() -> ModuleType | None:
    if os.environ.get("RAAS_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from raas.ledger import _native
    except ImportError:
        return None
    return _native


speedups: ModuleType | None = _loaded()
