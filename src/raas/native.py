"""The optional C speed-ups of the append path (`raas._native`), or None where raas runs without
them: entries' commitments, leaf and key hashes, Merkle nodes, and the rows of a SQLite batch.

`setup.py` builds them where a C compiler and the headers of OpenSSL and SQLite are at hand;
without them, or with `RAAS_PURE_PYTHON=1` in the environment, every caller takes its
pure-Python way, which makes the same bytes (the tests hold the two to each other).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["speedups"]


def _loaded() -> ModuleType | None:
    if os.environ.get("RAAS_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module("raas._native")
    except ImportError:
        return None


speedups: ModuleType | None = _loaded()
