"""The ledger's optional C speed-ups (`raas.ledger._native`), or None where raas runs without them.

`setup.py` builds them where a C compiler and the headers of OpenSSL and SQLite are at hand;
without them, or with `RAAS_PURE_PYTHON=1` in the environment, every caller takes its
pure-Python way, which makes the same bytes (the tests hold the two to each other).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from types import ModuleType

__all__ = ["speedups"]

# Every argument of raas_rows, as an empty batch: the probe that SQLite knows the function.
_PROBE = "SELECT count(*) FROM raas_rows(x'', 0, x'', x'', x'', x'', x'')"


def _loaded() -> ModuleType | None:
    if os.environ.get("RAAS_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from raas.ledger import _native
    except ImportError:
        return None
    # raas_rows is registered with the SQLite library the module was linked against; Python's
    # sqlite3 must be using that same library, or its connections do not know the function.
    with closing(sqlite3.connect(":memory:")) as connection:
        try:
            connection.execute(_PROBE).fetchone()
        except sqlite3.OperationalError:
            return None
    return _native


speedups: ModuleType | None = _loaded()
