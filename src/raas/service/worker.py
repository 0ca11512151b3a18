"""The settlement worker: a thread of the server process that runs queued settlement runs, one at
a time, so that `POST /v1/settlements` answers at once (202) and the run is read back later.

Runs are rows of the service store, claimed atomically: several server processes on one database
each run a worker, and each run is claimed by one. A worker looks for queued runs when woken (a
run was queued here) and every `poll_seconds` (runs queued by another process, or before a
restart).

A claim is a lease: while the run works, a heartbeat thread renews it every third of its length.
A server killed mid-run stops renewing; once its lease lapses another worker claims the run
again, and after `attempts_max` claims the run is failed with the reason (see
`ServiceStore.claim_settlement_run`). Lease times are read from `now`, which tests move.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Final

from raas.ledger.store import LedgerStore
from raas.service.store import (
    RUN_ATTEMPTS_MAX,
    RUN_LEASE,
    ServiceStore,
    SettlementRun,
    utc_now,
)
from raas.service.tenancy import run_settlement

__all__ = ["Heartbeat", "SettlementWorker"]

POLL_SECONDS: Final = 1.0
_log = logging.getLogger(__name__)


class Heartbeat:
    """Renews one claim's lease every `interval_seconds` (real time) until the block ends or the
    claim is lost; `renewals` counts the renewals made."""

    def __init__(
        self,
        store: ServiceStore,
        run: SettlementRun,
        *,
        lease: timedelta,
        interval_seconds: float,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._run = run
        self._lease = lease
        self._interval_seconds = interval_seconds
        self._now = now
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"raas-settlement-lease-{run.id}", daemon=True
        )
        self.renewals = 0
        self.renewed = threading.Event()  # set at each renewal (tests wait on it)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._thread.join()

    def _beat(self) -> None:
        run = self._run
        while not self._stopping.wait(self._interval_seconds):
            try:
                held = self._store.renew_settlement_lease(
                    run.tenant, run.id, run.attempts, self._now() + self._lease
                )
            except Exception:  # the store failing for a moment: the lease has time left
                _log.exception("could not renew the lease of settlement run %s", run.id)
                continue
            if not held:
                # Finishing under this claim will change nothing; the newer claim records it.
                _log.warning(
                    "settlement run %s was claimed again after attempt %d's lease lapsed",
                    run.id,
                    run.attempts,
                )
                return
            self.renewals += 1
            self.renewed.set()


class SettlementWorker:
    """Claims queued runs and settles them until stopped; `stop` waits for the run in hand."""

    def __init__(
        self,
        ledger: LedgerStore,
        store: ServiceStore,
        *,
        poll_seconds: float = POLL_SECONDS,
        now: Callable[[], datetime] = utc_now,
        lease: timedelta = RUN_LEASE,
        attempts_max: int = RUN_ATTEMPTS_MAX,
    ) -> None:
        if lease <= timedelta(0) or attempts_max < 1:
            raise ValueError(
                f"a settlement lease must be positive and at least one attempt allowed, found "
                f"lease {lease} and attempts_max {attempts_max}"
            )
        self._ledger = ledger
        self._store = store
        self._poll_seconds = poll_seconds
        self._now = now
        self._lease = lease
        self._attempts_max = attempts_max
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

    def claim(self) -> SettlementRun | None:
        """Claim the next claimable run under this worker's lease (None: none is claimable)."""
        return self._store.claim_settlement_run(
            self._now(), lease=self._lease, attempts_max=self._attempts_max
        )

    def heartbeat(self, run: SettlementRun) -> Heartbeat:
        """The heartbeat that keeps this worker's claim of `run` while it works."""
        return Heartbeat(
            self._store,
            run,
            lease=self._lease,
            interval_seconds=self._lease.total_seconds() / 3,
            now=self._now,
        )

    def run_queued(self) -> list[SettlementRun]:
        """Claim and run queued runs until none is left (or the worker is stopping)."""
        done: list[SettlementRun] = []
        while not self._stopping.is_set():
            run = self.claim()
            if run is None:
                break
            with self.heartbeat(run):
                done.append(run_settlement(self._ledger, self._store, run, now=self._now))
        return done

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.run_queued()
            except Exception:  # the store failing: keep the worker, try again at the next poll
                _log.exception("the settlement worker could not claim or record a run")
            self._wake.wait(self._poll_seconds)
