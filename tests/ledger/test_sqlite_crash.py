"""A process killed at any moment loses no acknowledged batch and leaves no half batch behind.

What would break: acknowledging before the commit is durable (an acknowledged batch missing after
the kill), a torn batch (some of its events stored, some not), an event stored twice when the
sender retries after the crash, or a hole or repeat in a tenant's log_index after recovery.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from raas.ledger import SqliteLedger

RUNS = 20
KILL_AFTER_SECONDS_MAX = 0.08

# The batches a sender delivers: batch n holds its own events spread over three tenants; every
# third batch also retries a few events of the batch before (already stored: the ledger must take
# them exactly once). Batches without retries take the ledger's fast path, the others the staged.
BATCHES = """
from datetime import UTC, datetime, timedelta
from raas.core.events import Csat, make_event

BATCH_EVENTS = 150
RETRIED_EVENTS = 5
TENANTS = ("acme", "globex", "initech")


def own_events(number):
    return [
        make_event(
            Csat(score=1 + index % 5), id=f"batch-{number}-{index}", source="urn:crash",
            time=datetime(2026, 11, 2, tzinfo=UTC) + timedelta(milliseconds=number * 1000 + index),
            tenant=TENANTS[(number + index) % 3], customer=f"customer-{index % 7}",
            conversation=f"conversation-{number}",
        )
        for index in range(BATCH_EVENTS)
    ]


def batch(number):
    retried = own_events(number - 1)[:RETRIED_EVENTS] if number % 3 == 1 else []
    return own_events(number) + retried
"""

SENDER = (
    BATCHES
    + """
import sys
from raas.ledger.sqlite import SqliteLedger

path, number = sys.argv[1], int(sys.argv[2])
with SqliteLedger(path) as ledger:
    print("ready", flush=True)
    while True:
        ledger.append(batch(number))
        print(number, flush=True)  # acknowledged: append returned, the batch is on disk
        number += 1
"""
)


def batches_module() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(BATCHES, namespace)
    return namespace


def test_batches_acknowledged_before_a_kill_are_all_there_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    own_events = batches_module()["own_events"]
    keys_of: dict[int, list[tuple[str, str, str]]] = {}
    chance = random.Random(20261102)
    next_batch = 0
    acknowledged_total = 0
    for _ in range(RUNS):
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(path), str(next_batch)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sender.stdout is not None
        assert sender.stdout.readline() == "ready\n"
        time.sleep(chance.uniform(0, KILL_AFTER_SECONDS_MAX))
        sender.send_signal(signal.SIGKILL)
        sender.wait()
        output = sender.stdout.read()
        sender.stdout.close()
        # A line cut by the kill is not an acknowledgement.
        lines = output.splitlines(keepends=True)
        acknowledged = [int(line) for line in lines if line.endswith("\n")]
        acknowledged_total += len(acknowledged)

        with SqliteLedger(path) as ledger:  # reopening recovers from the WAL
            for tenant in ledger.tenants():
                log = [row.log_index for row in ledger.iter_events(tenant)]
                assert log == list(range(len(log)))
                assert ledger.head(tenant) == ledger.count(tenant) == len(log)
        # Read the keys straight from the file, apart from the ledger's own code.
        with closing(sqlite3.connect(path)) as connection:
            stored = Counter(connection.execute("SELECT tenant, source, id FROM events"))
        assert all(times == 1 for times in stored.values())

        present = []
        for number in range(next_batch + len(acknowledged) + 2):
            if number not in keys_of:
                keys_of[number] = [(e.tenant, e.source, e.id) for e in own_events(number)]
            keys = keys_of[number]
            found = sum(1 for key in keys if key in stored)
            assert found in (0, len(keys)), f"batch {number} is torn: {found}/{len(keys)}"
            if found:
                present.append(number)
        assert set(acknowledged) <= set(present)
        assert present == list(range(len(present))), "a batch was lost below a stored one"
        assert sum(stored.values()) == sum(len(keys_of[number]) for number in present)
        next_batch = len(present)

    # The kills must have landed while the sender was working, not only before its first batch.
    assert acknowledged_total > RUNS, acknowledged_total
