"""A process killed at any moment loses no acknowledged batch and leaves no half batch behind.

What would break: acknowledging before the commit is durable (an acknowledged batch missing after
the kill), a torn batch (some of its events stored, some not), an event stored twice when the
sender retries after the crash, a hole or repeat in a tenant's log_index after recovery, or a
Merkle frontier, leaf block, customer row or checkpoint that did not move in the same
transaction as the events (`SqliteLedger.check`, behind `raas ledger check`, finds those).
Senders alternate between `append` and `append_batches` (whose commits run on another thread).

`run_crashes` is also what bench/crash.py runs 100 times and more.
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
# them exactly once). Batches without retries take the ledger's fast path, the others the one
# that looks keys up. Every fourth batch is followed by a signed checkpoint of one tenant's log.
BATCHES = """
from datetime import UTC, datetime, timedelta
from raas.core.events import Csat, Message, make_event

BATCH_EVENTS = 150
RETRIED_EVENTS = 5
TENANTS = ("acme", "globex", "initech")
SIGNER_SEED = bytes(range(32))


def own_events(number):
    return [
        make_event(
            Message(role="customer", text=f"text {number}-{index}") if index % 4 == 0
            else Csat(score=1 + index % 5),
            id=f"batch-{number}-{index}", source="urn:crash",
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
from raas.ledger.keys import SignerKey
from raas.ledger.sqlite import SqliteLedger

path, first, streamed = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "stream"
signer = SignerKey("crash-test", SIGNER_SEED)


def numbered():
    number = first
    while True:
        yield batch(number)
        number += 1


with SqliteLedger(path) as ledger:
    print("ready", flush=True)
    if streamed:
        receipts = ledger.append_batches(numbered())
    else:
        receipts = (ledger.append(events) for events in numbered())
    for number, _ in enumerate(receipts, start=first):
        print(number, flush=True)  # acknowledged: the receipt came, the batch is on disk
        if number % 4 == 3:
            ledger.sign_checkpoint(TENANTS[number % 3], signer)
"""
)


def batches_module() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(BATCHES, namespace)
    return namespace


def run_crashes(path: Path, runs: int, seed: int, kill_after_seconds_max: float) -> dict[str, int]:
    """Start a sender on the ledger at `path` and SIGKILL it `runs` times at random moments.

    After each kill: reopen, check the ledger in full, and compare what is stored with what was
    acknowledged. Raises AssertionError at the first difference; returns counts.
    """
    namespace = batches_module()
    own_events = namespace["own_events"]
    signer = namespace["SIGNER_SEED"]
    keys_of: dict[int, list[tuple[str, str, str]]] = {}
    chance = random.Random(seed)
    next_batch = 0
    acknowledged_total = 0
    checkpoints_total = 0
    for run in range(runs):
        # Half the runs append batch by batch, half as a stream that commits while it prepares.
        mode = "stream" if run % 2 else "append"
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(path), str(next_batch), mode],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sender.stdout is not None
        assert sender.stdout.readline() == "ready\n"
        # Kill after a random number of acknowledgements, then a random moment more, so that the
        # kills land mid-stream however slow a loaded machine makes the sender.
        early = [sender.stdout.readline() for _ in range(chance.randrange(6))]
        time.sleep(chance.uniform(0, kill_after_seconds_max))
        sender.send_signal(signal.SIGKILL)
        sender.wait()
        output = "".join(early) + sender.stdout.read()
        sender.stdout.close()
        # A line cut by the kill is not an acknowledgement.
        lines = output.splitlines(keepends=True)
        acknowledged = [int(line) for line in lines if line.endswith("\n")]
        acknowledged_total += len(acknowledged)

        with SqliteLedger(path) as ledger:  # reopening recovers from the WAL
            from raas.ledger.keys import SignerKey

            check = ledger.check([SignerKey("crash-test", signer).verifier()])
            assert check.problem is None, str(check.problem)
            checkpoints_total = check.checkpoints
            for tenant in ledger.tenants():
                log = [row.log_index for row in ledger.iter_events(tenant)]
                assert log == list(range(len(log)))
                assert ledger.head(tenant) == ledger.count(tenant) == len(log)
        # Read the keys straight from the file, apart from the ledger's own code.
        with closing(sqlite3.connect(path)) as connection:
            stored = Counter(
                connection.execute(
                    "SELECT json_extract(CAST(entry AS TEXT), '$.tenant'),"
                    " json_extract(CAST(entry AS TEXT), '$.source'),"
                    " json_extract(CAST(entry AS TEXT), '$.id') FROM events"
                )
            )
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
    return {
        "runs": runs,
        "acknowledged_batches": acknowledged_total,
        "stored_batches": next_batch,
        "checkpoints": checkpoints_total,
    }


def test_batches_acknowledged_before_a_kill_are_all_there_exactly_once(tmp_path: Path) -> None:
    counts = run_crashes(tmp_path / "ledger.db", RUNS, 20261102, KILL_AFTER_SECONDS_MAX)
    # The kills must have landed while the sender was working, not only before its first batch.
    assert counts["acknowledged_batches"] > RUNS, counts
    assert counts["checkpoints"] > 0, counts
