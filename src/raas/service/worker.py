"""The settlement worker: a thread of the server process that runs queued settlement runs, one at
a time, so that `POST /v1/settlements` answers at once (202) and the run is read back later.

Runs are rows of the service store, claimed atomically: several server processes on one database
each run a worker, and each run is claimed by one. A worker looks for queued runs when woken (a
run was queued here) and every `poll_seconds` (runs queued by another process, or before a
restart).
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from raas.ledger.store import LedgerStore
from raas.service.store import ServiceStore, SettlementRun
from raas.service.tenancy import run_settlement

__all__ = ["SettlementWorker"]

POLL_SECONDS: Final = 1.0
_log = logging.getLogger(__name__)


class SettlementWorker:
    """Claims queued runs and settles them until stopped; `stop` waits for the run in hand."""

    def __init__(
        self, ledger: LedgerStore, store: ServiceStore, *, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="raas-settlement-worker", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """A run was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def run_queued(self) -> list[SettlementRun]:
        """Claim and run queued runs until none is left (or the worker is stopping)."""
        done: list[SettlementRun] = []
        while not self._stopping.is_set():
            run = self._store.claim_settlement_run()
            if run is None:
                break
            done.append(run_settlement(self._ledger, self._store, run))
        return done

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.run_queued()
            except Exception:  # the store failing: keep the worker, try again at the next poll
                _log.exception("the settlement worker could not claim or record a run")
            self._wake.wait(self._poll_seconds)
