"""Delivery: how a client sends the simulated events, in batches, with some events held back
several batches (late) and some sent twice (an identical copy in a later batch)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import datetime

from raas.core.events import Event
from raas.sim.config import SimConfig


class Delivery:
    """Cuts the time-ordered stream into batches, holding some events back and repeating others.

    It draws from its own random stream, so the content of a month does not depend on the
    delivery rates.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(f"raas.sim.delivery:{config.seed}")
        self.late: dict[int, list[Event]] = {}  # batch number -> events sent at its start
        self.copies: dict[int, list[Event]] = {}
        self.latest: datetime | None = None  # the latest time sent in order so far
        self.events = 0
        self.deliveries = 0
        self.batch_count = 0
        self.duplicates_sent = 0
        self.late_deliveries_sent = 0
        self.first_event_at: datetime | None = None
        self.last_event_at: datetime | None = None

    def batches(self, stream: Iterator[Event]) -> Iterator[list[Event]]:
        config = self.config
        size = config.batch_events
        random_ = self.rng.random
        held_back_rate = self._held_back_rate
        late_share = config.late_rate / held_back_rate if held_back_rate else 0.0
        late_min = config.late_batches_min
        late_spread = config.late_batches_max - late_min + 1
        late, copies = self.late, self.copies
        batch: list[Event] = []
        number = 0  # of the batch being filled
        # Counting down to the next held-back event instead of drawing for every event gives
        # the same distribution at a fraction of the cost.
        until_held_back = self._gap()
        event: Event | None = None
        for event in stream:
            if self.first_event_at is None:
                self.first_event_at = event.time
            until_held_back -= 1
            if until_held_back == 0:
                until_held_back = self._gap()
                if random_() < late_share:
                    due = number + late_min + int(random_() * late_spread)
                    late.setdefault(due, []).append(event)
                    continue
                copies.setdefault(number + 1 + int(random_() * 3), []).append(event)
            batch.append(event)
            while len(batch) >= size:
                self.latest = event.time
                yield self._sent(batch[:size] if len(batch) > size else batch)
                batch = batch[size:]
                number += 1
                self._add_due(batch, number)
        self.latest = event.time if event is not None else None
        self.last_event_at = self.latest
        if batch:
            yield self._sent(batch)
            batch = []
        # What is still held back goes out after the stream, in the order it was due.
        for due in sorted(late.keys() | copies.keys()):
            self._add_due(batch, due)
            while len(batch) >= size:
                yield self._sent(batch[:size])
                batch = batch[size:]
        if batch:
            yield self._sent(batch)
        self.events = self.deliveries - self.duplicates_sent

    @property
    def _held_back_rate(self) -> float:
        return self.config.late_rate + self.config.duplicate_rate

    def _gap(self) -> int:
        """Events up to and including the next held-back one: geometric, as if each event were
        drawn on its own; 0 means never."""
        rate = self._held_back_rate
        if rate <= 0:
            return 0
        if rate >= 1:
            return 1
        return 1 + int(math.log(1.0 - self.rng.random()) / math.log(1.0 - rate))

    def _add_due(self, batch: list[Event], number: int) -> None:
        latest = self.latest
        for event in self.late.pop(number, ()):
            # Counted as late only if something later was really sent before it.
            if latest is not None and event.time < latest:
                self.late_deliveries_sent += 1
            batch.append(event)
        duplicates = self.copies.pop(number, ())
        self.duplicates_sent += len(duplicates)
        batch.extend(duplicates)

    def _sent(self, batch: list[Event]) -> list[Event]:
        self.batch_count += 1
        self.deliveries += len(batch)
        return batch
