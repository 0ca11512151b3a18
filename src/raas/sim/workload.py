"""The seeded workload simulator: a month of AI customer-service traffic as raas events, streamed
in delivery batches with the duplicates and late arrivals that a real client produces.

Memory stays bounded however many conversations are asked for: conversations are written in
order of their start; a written conversation waits in a merge heap only until every event of it
is earlier than the next start (nothing earlier can appear any more), and planned recontacts wait
in a heap bounded by the recontact horizon (three windows after the AI's last answer).
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec

from raas.core.events import Channel, Event
from raas.sim.catalog import COST_UNIT_DECIMALS, HOUR, Catalog, Intent, load_catalog
from raas.sim.config import SimConfig
from raas.sim.conversation import CHANNEL_NAMES, ConversationWriter, PlannedRecontact, Tally, Thread
from raas.sim.delivery import Delivery

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# A share of conversations comes from a small set of regular customers (1 in 50 of the pool).
_REGULAR_CUSTOMER_SHARE: Final = 0.15
_REGULAR_CUSTOMER_DIVISOR: Final = 50
_THIRD_PROBLEM_SHARE: Final = 0.3  # of multi-problem conversations
# Relative traffic by local hour of day (0..23) and weekday (Monday first).
_HOUR_WEIGHTS: Final = (
    0.15, 0.1, 0.07, 0.06, 0.06, 0.1, 0.25, 0.5, 0.9, 1.2, 1.3, 1.3,
    1.2, 1.25, 1.3, 1.25, 1.15, 1.0, 0.9, 0.85, 0.8, 0.65, 0.45, 0.25,
)  # fmt: skip
_WEEKDAY_WEIGHTS: Final = (1.15, 1.05, 1.0, 1.0, 0.95, 0.7, 0.6)
# Config fields that change how events are sent, not what they are.
_DELIVERY_FIELDS: Final = frozenset(
    {"batch_events", "duplicate_rate", "late_rate", "late_batches_min", "late_batches_max"}
)
_MASK_64: Final = (1 << 64) - 1


class SimSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What a simulation generated and sent; outcome counts are the planned ones.

    `episodes` and the outcome counts cover the problems raised in first contacts; a recontact
    conversation continues one of those episodes and is counted in `recontact_conversations`.
    """

    seed: int
    conversations: int
    first_contact_conversations: int
    recontact_conversations: int
    multi_problem_conversations: int
    conversations_by_channel: dict[str, int]
    customers: int
    control_customers: int
    episodes: int
    episodes_by_intent: dict[str, int]
    ai_resolutions: int
    ai_resolutions_confirmed: int
    handoffs: int
    handoffs_with_context: int
    not_resolved: int
    human_only_episodes: int
    recontacts_inside_window: int
    recontacts_outside_window: int
    recontact_window_hours: int
    csat_answers: int
    review_verdicts: int
    orders: int
    order_amount: Decimal
    refunds: int
    refund_amount: Decimal
    order_currency: str
    model_calls: int
    model_cost: Decimal
    tool_calls: int
    events: int  # distinct events
    deliveries: int  # events sent, duplicates included
    batches: int
    duplicates_sent: int
    late_deliveries_sent: int  # sent after an event with a later time had been sent
    first_event_at: datetime | None
    last_event_at: datetime | None


class Simulation:
    """One run of the simulator: iterate `batches()` (or `ndjson_batches()`) once, then read
    `summary`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._summary: SimSummary | None = None
        self._started = False
        # How far the simulated clock has got in what has been sent: for progress bars.
        self.simulated_until: datetime = config.start_utc

    def batches(self) -> Iterator[list[Event]]:
        """Delivery batches of at most `config.batch_events` events, in delivery order."""
        if self._started:
            raise RuntimeError("a Simulation runs once; make a new one to run it again")
        self._started = True
        workload = _Workload(self.config, load_catalog())
        delivery = Delivery(self.config)
        for batch in delivery.batches(workload.events()):
            if batch:
                self.simulated_until = max(self.simulated_until, batch[-1].time)
            yield batch
        self._summary = workload.summary(delivery)

    def ndjson_batches(self) -> Iterator[bytes]:
        """Each batch as newline-delimited JSON: the bytes a real client would send."""
        encoder = msgspec.json.Encoder()
        for batch in self.batches():
            yield encoder.encode_lines(batch)

    @property
    def summary(self) -> SimSummary:
        if self._summary is None:
            raise RuntimeError("the summary is ready once every batch has been consumed")
        return self._summary


def generate(config: SimConfig) -> Iterator[list[Event]]:
    """Stream the simulated month as delivery batches of events."""
    return Simulation(config).batches()


def generate_ndjson(config: SimConfig) -> Iterator[bytes]:
    """Stream the simulated month as NDJSON batches, one bytes object per batch."""
    return Simulation(config).ndjson_batches()


class _Workload:
    """Writes conversations in order of their start and releases their events in time order."""

    def __init__(self, config: SimConfig, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog
        self.rng = random.Random(config.seed)
        self.random = self.rng.random
        self.getrandbits = self.rng.getrandbits
        self.tally = Tally()
        self.sequence = itertools.count()
        # Written conversations whose events are not all released yet, as merge cursors:
        # [time of the next event, sequence, position of the next event, thread].
        self.pending: list[list[Any]] = []
        # Recontact conversations to write later, as (start_ms, sequence, recontact).
        self.scheduled: list[tuple[int, int, PlannedRecontact]] = []
        self.writer = ConversationWriter(config, catalog, self.rng, self.tally, _id_prefix(config))
        self.start_ms = _to_ms(config.start_utc)
        self.end_ms = _to_ms(config.end_utc)
        self.customer_pool = config.customer_pool
        self.regular_customers = max(1, self.customer_pool // _REGULAR_CUSTOMER_DIVISOR)
        self.customers_seen = bytearray((self.customer_pool + 7) // 8)
        self.holdout_salt = self.getrandbits(64)
        self.holdout_threshold = int(config.holdout_rate * (1 << 64))
        self.intent_weights = list(
            itertools.accumulate(intent.weight for intent in catalog.intents)
        )
        self.channel_weights = list(itertools.accumulate(config.channel_shares))

    # ---- the time-ordered stream

    def events(self) -> Iterator[Event]:
        scheduled = self.scheduled
        for start_ms in self._arrivals():
            while scheduled and scheduled[0][0] <= start_ms:
                recontact_ms, _, recontact = heapq.heappop(scheduled)
                yield from self._release_before(recontact_ms)
                self._recontact_conversation(recontact_ms, recontact)
            yield from self._release_before(start_ms)
            self._first_contact(start_ms)
        while scheduled:
            recontact_ms, _, recontact = heapq.heappop(scheduled)
            yield from self._release_before(recontact_ms)
            self._recontact_conversation(recontact_ms, recontact)
        yield from self._release_before(None)

    def _release_before(self, time_ms: int | None) -> Iterator[Event]:
        """Events earlier than `time_ms` (all if None), in time order: every conversation still
        to be written starts at or after `time_ms`, so nothing earlier can appear any more."""
        pending = self.pending
        while pending and (time_ms is None or pending[0][0] < time_ms):
            cursor = pending[0]
            position = cursor[2]
            thread: Thread = cursor[3]
            event = thread.events[position]
            # Drop the reference: a conversation's tail (reviews, late CSAT answers) can wait
            # days, and the events already sent must not wait with it.
            thread.events[position] = None
            assert event is not None
            yield event
            position += 1
            if position == len(thread.times):
                heapq.heappop(pending)
            else:
                cursor[0] = thread.times[position]
                cursor[2] = position
                heapq.heapreplace(pending, cursor)

    def _arrivals(self) -> Iterator[int]:
        """First-contact start times in ascending order, following a daily and weekly rhythm.

        Sorted uniform order statistics are drawn one at a time (each is the minimum of the
        remaining ones), so the whole month is never held in memory.
        """
        bucket_starts, cumulative = self._traffic_profile()
        total = cumulative[-1]
        random_ = self.random
        position = 0.0
        for remaining in range(self.config.conversations, 0, -1):
            position += (1.0 - position) * (1.0 - random_() ** (1.0 / remaining))
            target = position * total
            bucket = min(bisect.bisect_right(cumulative, target), len(cumulative) - 1)
            before = cumulative[bucket - 1] if bucket else 0.0
            bucket_end = bucket_starts[bucket + 1]
            weight = cumulative[bucket] - before
            fraction = (target - before) / weight if weight > 0 else 0.0
            offset = int(fraction * (bucket_end - bucket_starts[bucket]))
            yield min(bucket_starts[bucket] + offset, bucket_end - 1)

    def _traffic_profile(self) -> tuple[list[int], list[float]]:
        zone = ZoneInfo(self.config.time_zone)
        bucket_starts = [*range(self.start_ms, self.end_ms, HOUR), self.end_ms]
        cumulative: list[float] = []
        running = 0.0
        for begin, end in itertools.pairwise(bucket_starts):
            local = (_EPOCH + timedelta(milliseconds=begin)).astimezone(zone)
            weight = _HOUR_WEIGHTS[local.hour] * _WEEKDAY_WEIGHTS[local.weekday()]
            running += weight * (end - begin) / HOUR
            cumulative.append(running)
        return bucket_starts, cumulative

    # ---- conversations

    def _first_contact(self, start_ms: int) -> None:
        random_ = self.random
        if random_() < _REGULAR_CUSTOMER_SHARE:
            customer_index = int(random_() * self.regular_customers)
        else:
            customer_index = int(random_() * self.customer_pool)
        intents = [self._pick_intent()]
        if random_() < self.config.multi_problem_rate:
            wanted = 3 if random_() < _THIRD_PROBLEM_SHARE else 2
            # A bounded number of draws: with few intents a conversation may hold fewer.
            for _ in range(8):
                intent = self._pick_intent()
                if intent not in intents:
                    intents.append(intent)
                if len(intents) == wanted:
                    break
        channel = CHANNEL_NAMES[
            bisect.bisect_right(self.channel_weights, random_() * self.channel_weights[-1])
        ]
        tally = self.tally
        tally.first_contact_conversations += 1
        if len(intents) > 1:
            tally.multi_problem_conversations += 1
        tally.episodes += len(intents)
        for intent in intents:
            tally.episodes_by_intent[intent.name] = tally.episodes_by_intent.get(intent.name, 0) + 1
        self._write(start_ms, customer_index, channel, intents, None)

    def _recontact_conversation(self, start_ms: int, recontact: PlannedRecontact) -> None:
        self.tally.recontact_conversations += 1
        intents = [recontact.intent]
        self._write(start_ms, recontact.customer_index, recontact.channel, intents, recontact)

    def _write(
        self,
        start_ms: int,
        customer_index: int,
        channel: Channel,
        intents: list[Intent],
        recontact: PlannedRecontact | None,
    ) -> None:
        control = self._is_control(customer_index)
        first_seen = self._first_seen(customer_index)
        if first_seen:
            self.tally.customers += 1
            self.tally.control_customers += control
        thread, recontacts = self.writer.write(
            start_ms,
            customer_index,
            channel,
            intents,
            recontact,
            control=control,
            first_seen=first_seen,
        )
        heapq.heappush(self.pending, [thread.times[0], next(self.sequence), 0, thread])
        for recontact_ms, planned in recontacts:
            heapq.heappush(self.scheduled, (recontact_ms, next(self.sequence), planned))

    def _pick_intent(self) -> Intent:
        weights = self.intent_weights
        return self.catalog.intents[bisect.bisect_right(weights, self.random() * weights[-1])]

    # ---- customers

    def _first_seen(self, customer_index: int) -> bool:
        byte, bit = divmod(customer_index, 8)
        mask = 1 << bit
        if self.customers_seen[byte] & mask:
            return False
        self.customers_seen[byte] |= mask
        return True

    def _is_control(self, customer_index: int) -> bool:
        # A fixed hash of the customer, so every conversation of a customer agrees.
        mixed = (customer_index * 0x9E3779B97F4A7C15 + self.holdout_salt) & _MASK_64
        mixed ^= mixed >> 29
        mixed = (mixed * 0xBF58476D1CE4E5B9) & _MASK_64
        mixed ^= mixed >> 32
        return mixed < self.holdout_threshold

    # ---- events

    def summary(self, delivery: Delivery) -> SimSummary:
        tally = self.tally
        config = self.config
        return SimSummary(
            seed=config.seed,
            conversations=tally.first_contact_conversations + tally.recontact_conversations,
            first_contact_conversations=tally.first_contact_conversations,
            recontact_conversations=tally.recontact_conversations,
            multi_problem_conversations=tally.multi_problem_conversations,
            conversations_by_channel=dict(tally.conversations_by_channel),
            customers=tally.customers,
            control_customers=tally.control_customers,
            episodes=tally.episodes,
            episodes_by_intent=dict(sorted(tally.episodes_by_intent.items())),
            ai_resolutions=tally.ai_resolutions,
            ai_resolutions_confirmed=tally.ai_resolutions_confirmed,
            handoffs=tally.handoffs,
            handoffs_with_context=tally.handoffs_with_context,
            not_resolved=tally.not_resolved,
            human_only_episodes=tally.human_only_episodes,
            recontacts_inside_window=tally.recontacts_inside_window,
            recontacts_outside_window=tally.recontacts_outside_window,
            recontact_window_hours=config.recontact_window_hours,
            csat_answers=tally.csat_answers,
            review_verdicts=tally.review_verdicts,
            orders=tally.orders,
            order_amount=tally.order_amount,
            refunds=tally.refunds,
            refund_amount=tally.refund_amount,
            order_currency=config.order_currency,
            model_calls=tally.model_calls,
            model_cost=Decimal(tally.model_cost_units).scaleb(-COST_UNIT_DECIMALS),
            tool_calls=tally.tool_calls,
            events=delivery.events,
            deliveries=delivery.deliveries,
            batches=delivery.batch_count,
            duplicates_sent=delivery.duplicates_sent,
            late_deliveries_sent=delivery.late_deliveries_sent,
            first_event_at=delivery.first_event_at,
            last_event_at=delivery.last_event_at,
        )


def _id_prefix(config: SimConfig) -> str:
    """The first 20 of 32 hex digits of every event id: UUID version 4 layout, random bits drawn
    from the config that decides the content. The same month gets the same ids (sending it again
    is a no-op for the ledger); a different month gets different ones."""
    content = {
        name: getattr(config, name)
        for name in config.__dataclass_fields__
        if name not in _DELIVERY_FIELDS
    }
    if content["tiering"] is None:
        del content["tiering"]  # months simulated before tiering existed keep their ids
    digest = hashlib.sha256(repr(sorted(content.items())).encode()).hexdigest()
    variant = "89ab"[int(digest[15], 16) % 4]
    return f"{digest[:8]}-{digest[8:12]}-4{digest[12:15]}-{variant}{digest[16:19]}-"


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)
