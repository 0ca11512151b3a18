"""On either store, a sender killed at any moment loses no acknowledged batch, leaves no half
batch behind, and its retries after the crash are stored once.

The sender and its batches are those of test_sqlite_crash (which kills a SQLite sender many more
times), opened here with `open_ledger` on a SQLite file and on a PostgreSQL database. On
PostgreSQL the kill drops the connection mid-transaction, and the server must roll it back.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter

from test_sqlite_crash import BATCHES, batches_module

from raas.ledger import open_ledger
from raas.ledger.keys import SignerKey

RUNS = 4
# Each kill comes after 0 to 3 acknowledgements, then a random moment into the next batch: on
# a loaded machine a sleep alone may end before the sender has stored anything.
ACKNOWLEDGED_BEFORE_KILL_MAX = 3
KILL_AFTER_SECONDS_MAX = 0.1

SENDER = (
    BATCHES
    + """
import sys
from raas.ledger import open_ledger
from raas.ledger.keys import SignerKey

location, first = sys.argv[1], int(sys.argv[2])
signer = SignerKey("crash-test", SIGNER_SEED)
with open_ledger(location) as ledger:
    print("ready", flush=True)
    number = first
    while True:
        ledger.append(batch(number))
        print(number, flush=True)  # acknowledged: the receipt came, the batch is committed
        if number % 4 == 3:
            ledger.sign_checkpoint(TENANTS[number % 3], signer)
        number += 1
"""
)


def test_batches_acknowledged_before_a_kill_are_all_there_exactly_once(
    ledger_location: str,
) -> None:
    namespace = batches_module()
    own_events = namespace["own_events"]
    verifier = SignerKey("crash-test", namespace["SIGNER_SEED"]).verifier()
    chance = random.Random(20261125)
    next_batch = acknowledged_total = 0
    for _ in range(RUNS):
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, ledger_location, str(next_batch)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sender.stdout is not None
        assert sender.stdout.readline() == "ready\n"
        lines = [
            sender.stdout.readline() for _ in range(chance.randint(0, ACKNOWLEDGED_BEFORE_KILL_MAX))
        ]
        time.sleep(chance.uniform(0, KILL_AFTER_SECONDS_MAX))
        sender.send_signal(signal.SIGKILL)
        sender.wait()
        lines += sender.stdout.read().splitlines(keepends=True)
        sender.stdout.close()
        acknowledged = [int(line) for line in lines if line.endswith("\n")]
        acknowledged_total += len(acknowledged)

        with open_ledger(ledger_location) as ledger:
            check = ledger.check([verifier])
            assert check.problem is None, str(check.problem)
            stored = Counter(
                (row.tenant, row.event.source, row.event.id)
                for tenant in ledger.tenants()
                for row in ledger.iter_events(tenant)
            )
        assert set(stored.values()) <= {1}
        present = []
        for number in range(next_batch + len(acknowledged) + 2):
            keys = [(e.tenant, e.source, e.id) for e in own_events(number)]
            found = sum(1 for key in keys if key in stored)
            assert found in (0, len(keys)), f"batch {number} is torn: {found}/{len(keys)}"
            if found:
                present.append(number)
        assert set(acknowledged) <= set(present)
        assert present == list(range(len(present))), "a batch was lost below a stored one"
        next_batch = len(present)
    assert acknowledged_total > 0
