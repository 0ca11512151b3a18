"""Writing one conversation: the customer's messages, the AI's model and tool calls and answers,
handoffs to humans, resolutions and confirmations, and what follows the close (CSAT, reviews,
orders). Every time inside a conversation is strictly later than the one before.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal, TypeVar

import msgspec

from raas.core.events import (
    TYPE_OF,
    BusinessEvent,
    Channel,
    ConversationClosed,
    ConversationStarted,
    Csat,
    CustomerConfirmation,
    Event,
    Handoff,
    HoldoutAssignment,
    Message,
    ModelCall,
    Recontact,
    ResolutionClaimed,
    ReviewVerdict,
    ToolCall,
)
from raas.router import Policy, Router, RouteRequest, Tier
from raas.sim.catalog import (
    CHANNELS,
    COST_UNIT_DECIMALS,
    ESCALATION_SHARE,
    GENERIC_TOOLS,
    HANDOFF_ANNOUNCEMENTS,
    HANDOFF_REASONS,
    HOLDOUT_EXPERIMENT,
    HOUR,
    HUMAN_ANSWERS,
    HUMAN_GREETINGS_WITH_CONTEXT,
    HUMAN_GREETINGS_WITHOUT_CONTEXT,
    LARGE_MODEL,
    LARGE_TIER_SHARE,
    NOT_RESOLVED_REPLIES,
    ORDER_AFTER_MS,
    RECONTACT_OPENERS,
    REVIEW_AFTER_MS,
    REVIEW_FAILURE_NOTES,
    REVIEWERS,
    SMALL_MODEL,
    SYSTEM_PROMPT_TOKENS,
    TOOL_CALL_SHARE,
    TOOL_FAILURE_SHARE,
    TOOL_LATENCY_MS,
    TOOL_RESULT_TOKENS,
    Catalog,
    ChannelProfile,
    Intent,
    ModelTier,
)
from raas.sim.config import DIFFICULTIES, Difficulty, SimConfig

T = TypeVar("T")
Outcome = Literal["ai_resolved", "handoff", "not_resolved", "human_only"]

CHANNEL_NAMES: Final[tuple[Channel, ...]] = ("chat", "email", "voice")
_RECONTACT_SAME_CHANNEL_SHARE: Final = 0.6
_CONFIRMED_RECONTACT_FACTOR: Final = 0.3  # a confirmed fix comes back less often
_HANDOFF_RECONTACT_RATE: Final = 0.05
# A customer coming back has already been let down once: a human is more often needed.
_RECONTACT_HANDOFF_FACTOR: Final = 1.6
_HUMAN_CLAIM_SHARE: Final = 0.9
_CONTROL_ORDER_FACTOR: Final = 0.8  # the lift the holdout experiment is there to measure
_UNRESOLVED_REFUND_SHARE: Final = 0.1
_REVIEW_PASS_SHARE: Final[dict[Outcome, float]] = {
    "ai_resolved": 0.92,
    "handoff": 0.85,
    "not_resolved": 0.45,
    "human_only": 0.9,
}
# Score weights for CSAT 1..5 by the worst thing that happened in the conversation.
_CSAT_WEIGHTS: Final[dict[str, tuple[int, ...]]] = {
    "confirmed": (1, 1, 3, 25, 70),
    "ai_resolved": (3, 4, 10, 38, 45),
    "handoff_with_context": (4, 8, 20, 38, 30),
    "handoff_without_context": (12, 18, 30, 25, 15),
    "not_resolved": (45, 30, 15, 7, 3),
    "human_only": (5, 8, 20, 37, 30),
}


class PlannedRecontact(msgspec.Struct, frozen=True):
    """A conversation to start later: the same customer back about the same intent."""

    customer_index: int
    intent: Intent
    channel: Channel
    previous_conversation: str


class _Segment:
    """One episode's segment in the conversation being written, kept until after its close."""

    __slots__ = (
        "confirmed",
        "context_passed",
        "human_claimed",
        "intent",
        "outcome",
        "resolution_ms",
    )

    def __init__(self, intent: Intent, outcome: Outcome) -> None:
        self.intent = intent
        self.outcome = outcome
        self.resolution_ms: int | None = None  # the AI's last answer or claim
        self.confirmed = False
        self.context_passed: bool | None = None
        self.human_claimed = False

    @property
    def settled(self) -> bool:
        """Whether the conversation could end here on an agreed resolution."""
        return self.confirmed or self.human_claimed


class Thread:
    """The conversation being written: who, where, and the clock that only moves forward."""

    __slots__ = (
        "channel",
        "context_tokens",
        "conversation",
        "customer",
        "events",
        "profile",
        "time_ms",
        "times",
    )

    def __init__(
        self, conversation: str, customer: str, profile: ChannelProfile, time_ms: int
    ) -> None:
        self.conversation = conversation
        self.customer = customer
        self.profile = profile
        self.channel = profile.name
        self.time_ms = time_ms
        self.context_tokens = 0
        # The conversation's events and their times (ms), strictly increasing.
        self.events: list[Event | None] = []
        self.times: list[int] = []


class Tally:
    """Running counts of what was written, for `SimSummary`."""

    __slots__ = (
        "ai_resolutions",
        "ai_resolutions_confirmed",
        "control_customers",
        "conversations_by_channel",
        "csat_answers",
        "customers",
        "episodes",
        "episodes_by_intent",
        "first_contact_conversations",
        "handoffs",
        "handoffs_with_context",
        "human_only_episodes",
        "model_calls",
        "model_cost_units",
        "multi_problem_conversations",
        "not_resolved",
        "order_amount",
        "orders",
        "recontact_conversations",
        "recontacts_inside_window",
        "recontacts_outside_window",
        "refund_amount",
        "refunds",
        "review_verdicts",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.first_contact_conversations = 0
        self.recontact_conversations = 0
        self.multi_problem_conversations = 0
        self.conversations_by_channel: dict[str, int] = dict.fromkeys(CHANNEL_NAMES, 0)
        self.customers = 0
        self.control_customers = 0
        self.episodes = 0
        self.episodes_by_intent: dict[str, int] = {}
        self.ai_resolutions = 0
        self.ai_resolutions_confirmed = 0
        self.handoffs = 0
        self.handoffs_with_context = 0
        self.not_resolved = 0
        self.human_only_episodes = 0
        self.recontacts_inside_window = 0
        self.recontacts_outside_window = 0
        self.csat_answers = 0
        self.review_verdicts = 0
        self.orders = 0
        self.order_amount = Decimal(0)
        self.refunds = 0
        self.refund_amount = Decimal(0)
        self.model_calls = 0
        self.model_cost_units = 0
        self.tool_calls = 0


class ConversationWriter:
    """Writes conversations from one random stream; the caller decides when and for whom."""

    def __init__(
        self, config: SimConfig, catalog: Catalog, rng: random.Random, tally: Tally, id_prefix: str
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.random = rng.random
        self.getrandbits = rng.getrandbits
        self.tally = tally
        self.id_prefix = id_prefix
        self.id_counter = 0
        self.csat_weights = {
            key: list(itertools.accumulate(weights)) for key, weights in _CSAT_WEIGHTS.items()
        }
        self.window_ms = config.recontact_window_hours * HOUR
        self.tiering = config.tiering
        self.routers: dict[Difficulty, Router] = {}
        if self.tiering is not None and self.tiering.serve == "router":
            self.routers = {
                difficulty: _tier_router(config, difficulty) for difficulty in DIFFICULTIES
            }

    def write(
        self,
        start_ms: int,
        customer_index: int,
        channel: Channel,
        intents: list[Intent],
        recontact: PlannedRecontact | None,
        *,
        control: bool,
        first_seen: bool,
    ) -> tuple[Thread, list[tuple[int, PlannedRecontact]]]:
        """One conversation and what follows it (CSAT, reviews, orders), in time order, and the
        recontacts it leads to as (start in ms, recontact). `recontact` is set when this
        conversation is itself the customer coming back; such a conversation leads to none."""
        random_ = self.random
        recontacts: list[tuple[int, PlannedRecontact]] = []
        tally = self.tally
        tally.conversations_by_channel[channel] += 1
        profile = CHANNELS[channel]
        thread = Thread(
            f"conv-{self.getrandbits(64):016x}",
            f"customer-{customer_index:06d}",
            profile,
            start_ms,
        )
        thread.context_tokens = _uniform(random_, SYSTEM_PROMPT_TOKENS)
        self._emit(thread, ConversationStarted(channel=channel), None)
        if first_seen:
            thread.time_ms += 1 + int(random_() * 50)
            group: Literal["treatment", "control"] = "control" if control else "treatment"
            self._emit(thread, HoldoutAssignment(group=group, experiment=HOLDOUT_EXPERIMENT), None)
        if recontact is not None:
            thread.time_ms += 1 + int(random_() * 500)
            self._emit(
                thread,
                Recontact(previous_conversation=recontact.previous_conversation),
                recontact.intent.name,
            )

        segments: list[_Segment] = []
        human_context: bool | None = None  # set once a human has taken the conversation over
        for position, intent in enumerate(intents):
            if control:
                segment = self._human_episode(thread, intent, position == 0, None)
            elif human_context is not None:
                segment = self._human_episode(thread, intent, position == 0, human_context)
            else:
                segment = self._ai_episode(thread, intent, position == 0, recontact)
                if segment.outcome == "handoff":
                    human_context = segment.context_passed
            segments.append(segment)
        last = segments[-1]
        if last.outcome == "ai_resolved" and last.confirmed:
            thread.time_ms += _log_uniform(random_, profile.ai_overhead_ms)
            goodbye = Message(role="ai", text=_pick(random_, self.catalog.ai_closings))
            self._emit(thread, goodbye, last.intent.name)
            last.resolution_ms = thread.time_ms
        if recontact is None:
            for segment in segments:
                self._count_outcome(segment)
                planned_recontact = self._maybe_plan_recontact(thread, customer_index, segment)
                if planned_recontact is not None:
                    recontacts.append(planned_recontact)

        thread.time_ms += _log_uniform(random_, profile.close_after_ms)
        closed_reason = "resolved" if segments[-1].settled else "customer_left"
        self._emit(thread, ConversationClosed(reason=closed_reason), None)
        self._after_close(thread, segments, control)
        return thread, recontacts

    def _ai_episode(
        self,
        thread: Thread,
        intent: Intent,
        opens_conversation: bool,
        recontact: PlannedRecontact | None,
    ) -> _Segment:
        random_ = self.random
        config = self.config
        profile = thread.profile
        difficulty = intent.difficulty
        handoff_rate = config.handoff_rates.of(difficulty)
        unresolved_rate = config.unresolved_rates.of(difficulty)
        if recontact is not None:
            handoff_rate = min(handoff_rate * _RECONTACT_HANDOFF_FACTOR, 1.0 - unresolved_rate)
        tiers: list[ModelTier] = []
        if self.tiering is None:
            draw = random_()
            outcome: Outcome = (
                "handoff"
                if draw < handoff_rate
                else "not_resolved"
                if draw < handoff_rate + unresolved_rate
                else "ai_resolved"
            )
        else:
            outcome, tiers = self._tiered_outcome(intent, handoff_rate, unresolved_rate)
        segment = _Segment(intent, outcome)
        low, high = profile.turns[difficulty]
        turns = low + int(random_() * (high - low + 1))
        if outcome == "handoff":
            turns = 1 + int(random_() * turns)  # the AI tries a while before it gives up
        turns = max(turns, len(tiers))  # an escalated problem has a turn on each tier
        name = intent.name
        for turn in range(turns):
            if turn == 0:
                text = _pick(random_, intent.openings)
                if recontact is not None:
                    text = f"{_pick(random_, RECONTACT_OPENERS)} {text}"
            else:
                text = _pick(random_, intent.follow_ups)
            gap = profile.first_message_ms if opens_conversation and turn == 0 else None
            tier = tiers[min(turn, len(tiers) - 1)] if tiers else None
            self._ai_turn(thread, intent, text, gap, tier)

        if outcome == "handoff":
            thread.time_ms += _log_uniform(random_, profile.ai_overhead_ms)
            self._emit(thread, Message(role="ai", text=_pick(random_, HANDOFF_ANNOUNCEMENTS)), name)
            segment.resolution_ms = thread.time_ms
            context_passed = random_() < config.context_passed_rate
            segment.context_passed = context_passed
            thread.time_ms += 1 + int(random_() * 200)
            self._emit(
                thread,
                Handoff(context_passed=context_passed, reason=_pick(random_, HANDOFF_REASONS)),
                name,
            )
            segment.human_claimed = self._human_answers(
                thread, intent, first_reply=True, context_passed=context_passed
            )
            return segment

        thread.time_ms += 1 + int(random_() * 1_500)
        self._emit(thread, ResolutionClaimed(by="ai"), name)
        segment.resolution_ms = thread.time_ms
        if outcome == "ai_resolved":
            if random_() < config.confirm_rate:
                segment.confirmed = True
                self._customer_says(thread, name, _pick(random_, self.catalog.customer_closings))
                thread.time_ms += 1 + int(random_() * 300)
                self._emit(thread, CustomerConfirmation(resolved=True), name)
        else:
            self._customer_says(thread, name, _pick(random_, NOT_RESOLVED_REPLIES))
            thread.time_ms += 1 + int(random_() * 300)
            self._emit(thread, CustomerConfirmation(resolved=False), name)
        return segment

    def _human_episode(
        self,
        thread: Thread,
        intent: Intent,
        opens_conversation: bool,
        handoff_context: bool | None,
    ) -> _Segment:
        """A problem only a human handles: the customer is in the control group, or a human
        already took the conversation over."""
        random_ = self.random
        name = intent.name
        gap = thread.profile.first_message_ms if opens_conversation else None
        self._customer_says(thread, name, _pick(random_, intent.openings), gap)
        if handoff_context is None:
            segment = _Segment(intent, "human_only")
        else:
            segment = _Segment(intent, "handoff")
            segment.context_passed = handoff_context
            thread.time_ms += 1 + int(random_() * 200)
            self._emit(
                thread,
                Handoff(context_passed=handoff_context, reason="conversation_with_human"),
                name,
            )
        segment.human_claimed = self._human_answers(
            thread, intent, first_reply=handoff_context is None, context_passed=True
        )
        return segment

    def _human_answers(
        self, thread: Thread, intent: Intent, *, first_reply: bool, context_passed: bool
    ) -> bool:
        """A human answers (after a wait if they are new to the conversation); returns whether
        they claimed the problem resolved."""
        random_ = self.random
        profile = thread.profile
        name = intent.name
        thread.time_ms += _log_uniform(
            random_, profile.human_wait_ms if first_reply else profile.human_reply_ms
        )
        if first_reply and not context_passed:
            # Without the context the customer has to explain the problem again.
            greeting = _pick(random_, HUMAN_GREETINGS_WITHOUT_CONTEXT)
            self._emit(thread, Message(role="human_agent", text=greeting), name)
            self._customer_says(thread, name, _pick(random_, intent.openings))
            thread.time_ms += _log_uniform(random_, profile.human_reply_ms)
        elif first_reply:
            greeting = _pick(random_, HUMAN_GREETINGS_WITH_CONTEXT)
            self._emit(thread, Message(role="human_agent", text=greeting), name)
            thread.time_ms += _log_uniform(random_, profile.human_reply_ms)
        self._emit(thread, Message(role="human_agent", text=_pick(random_, HUMAN_ANSWERS)), name)
        if random_() >= _HUMAN_CLAIM_SHARE:
            return False
        thread.time_ms += 1 + int(random_() * 2_000)
        self._emit(thread, ResolutionClaimed(by="human_agent"), name)
        return True

    def _tiered_outcome(
        self, intent: Intent, handoff_rate: float, unresolved_rate: float
    ) -> tuple[Outcome, list[ModelTier]]:
        """With a `Tiering`: the tiers that serve the problem (the router's pick, then the large
        tier if it failed there), and the outcome drawn from their rates."""
        tiering = self.tiering
        assert tiering is not None
        random_ = self.random
        difficulty = intent.difficulty
        router = self.routers.get(difficulty)
        request = RouteRequest(text="", intent=intent.name)
        name = router.decide(request).tier if router is not None else tiering.serve
        tiers = [MODEL_TIERS[name]]
        first = tiering.resolves(name, difficulty)
        resolved = random_() < first
        if not resolved and router is not None and name != LARGE_MODEL.tier:
            name = router.decide(request, failed_tiers=(name,)).tier
            tiers.append(MODEL_TIERS[name])
            # Among the problems the first tier could not resolve (see `Tiering`).
            then = max(tiering.resolves(name, difficulty) - first, 0.0) / (1.0 - first)
            resolved = random_() < then
        if resolved:
            return "ai_resolved", tiers
        failed = handoff_rate + unresolved_rate
        handoff = failed > 0 and random_() * failed < handoff_rate
        return ("handoff" if handoff else "not_resolved"), tiers

    def _ai_turn(
        self,
        thread: Thread,
        intent: Intent,
        text: str,
        gap_ms: tuple[int, int] | None,
        tier: ModelTier | None = None,
    ) -> None:
        """A customer message and the AI's answer: its model calls on `tier`, or on tiers drawn
        by the difficulty's large-tier share when no tiering is set."""
        random_ = self.random
        profile = thread.profile
        self._customer_says(thread, intent.name, text, gap_ms)
        if tier is not None:
            self._model_call(thread, intent, tier)
            if random_() < TOOL_CALL_SHARE[intent.difficulty]:
                self._tool_call(thread, intent)
                self._model_call(thread, intent, tier)
            thread.time_ms += _log_uniform(random_, profile.ai_overhead_ms)
            self._emit(thread, Message(role="ai", text=_pick(random_, intent.replies)), intent.name)
            return
        large_share = LARGE_TIER_SHARE[intent.difficulty] * profile.large_tier_factor
        if random_() < TOOL_CALL_SHARE[intent.difficulty]:
            self._model_call(
                thread, intent, LARGE_MODEL if random_() < large_share else SMALL_MODEL
            )
            self._tool_call(thread, intent)
            self._model_call(
                thread, intent, LARGE_MODEL if random_() < large_share else SMALL_MODEL
            )
        elif random_() < large_share:
            self._model_call(thread, intent, LARGE_MODEL)
        else:
            self._model_call(thread, intent, SMALL_MODEL)
            if random_() < ESCALATION_SHARE:
                # The router's small answer failed its check and the large tier tries again.
                self._model_call(thread, intent, LARGE_MODEL)
        thread.time_ms += _log_uniform(random_, profile.ai_overhead_ms)
        self._emit(thread, Message(role="ai", text=_pick(random_, intent.replies)), intent.name)

    def _tool_call(self, thread: Thread, intent: Intent) -> None:
        random_ = self.random
        tool = intent.tool if random_() < 0.8 else _pick(random_, GENERIC_TOOLS)
        latency_ms = _log_uniform(random_, TOOL_LATENCY_MS)
        thread.time_ms += latency_ms
        self._emit(
            thread,
            ToolCall(name=tool, ok=random_() >= TOOL_FAILURE_SHARE, latency_ms=latency_ms),
            intent.name,
        )
        self.tally.tool_calls += 1
        thread.context_tokens += _uniform(random_, TOOL_RESULT_TOKENS)

    def _model_call(self, thread: Thread, intent: Intent, tier: ModelTier) -> None:
        random_ = self.random
        input_tokens = thread.context_tokens
        output_tokens = _uniform(random_, thread.profile.output_tokens)
        first_token_ms = (
            _uniform(random_, tier.first_token_ms)
            + input_tokens * 1_000 // tier.prefill_tokens_per_second
        )
        decode_rate = _uniform(random_, tier.decode_tokens_per_second)
        latency_ms = first_token_ms + output_tokens * 1_000 // decode_rate
        # Integer cost units keep the arithmetic exact and cheap; scaleb fixes the exponent so
        # that every cost is written with the same number of decimals.
        cost_units = (
            tier.input_units_per_token * input_tokens + tier.output_units_per_token * output_tokens
        )
        cost = Decimal(cost_units).scaleb(-COST_UNIT_DECIMALS)
        thread.time_ms += latency_ms
        self._emit(
            thread,
            ModelCall(
                tier=tier.tier,
                model=tier.model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                latency_ms=latency_ms,
                cost=cost,
                time_to_first_token_ms=first_token_ms,
            ),
            intent.name,
        )
        thread.context_tokens += output_tokens
        tally = self.tally
        tally.model_calls += 1
        tally.model_cost_units += cost_units

    def _customer_says(
        self, thread: Thread, intent_name: str, text: str, gap_ms: tuple[int, int] | None = None
    ) -> None:
        thread.time_ms += _log_uniform(self.random, gap_ms or thread.profile.customer_gap_ms)
        self._emit(thread, Message(role="customer", text=text), intent_name)
        thread.context_tokens += len(text) // 4 + 8

    def _after_close(self, thread: Thread, segments: list[_Segment], control: bool) -> None:
        """CSAT answers, review verdicts and orders: facts that arrive after the conversation."""
        random_ = self.random
        config = self.config
        tally = self.tally
        closed_ms = thread.time_ms
        later: list[tuple[int, msgspec.Struct, str | None]] = []
        if random_() < config.csat_answer_rate:
            weights = self.csat_weights[_csat_key(segments)]
            score = 1 + bisect.bisect_right(weights, random_() * weights[-1])
            delay_ms = _log_uniform(random_, thread.profile.csat_after_ms)
            later.append((closed_ms + delay_ms, Csat(score=score), None))
            tally.csat_answers += 1
        for segment in segments:
            intent = segment.intent
            if not control and random_() < config.review_rate:
                passed = random_() < _REVIEW_PASS_SHARE[segment.outcome]
                verdict = ReviewVerdict(
                    passed=passed,
                    reviewer=_pick(random_, REVIEWERS),
                    note=None if passed else _pick(random_, REVIEW_FAILURE_NOTES),
                )
                later.append(
                    (closed_ms + _log_uniform(random_, REVIEW_AFTER_MS), verdict, intent.name)
                )
                tally.review_verdicts += 1
            business = self._business_event(segment, control)
            if business is not None:
                delay_ms = _log_uniform(random_, ORDER_AFTER_MS)
                later.append((closed_ms + delay_ms, business, intent.name))
        later.sort(key=_first)
        for time_ms, data, intent_name in later:
            # Keep the conversation's clock strictly increasing even when two draws coincide.
            thread.time_ms = max(time_ms, thread.time_ms + 1)
            self._emit(thread, data, intent_name)

    def _business_event(self, segment: _Segment, control: bool) -> BusinessEvent | None:
        """An order after a problem that was solved, now and then a refund after one that was
        not; only for intents that sell something."""
        order_cents = segment.intent.order_cents
        if order_cents is None:
            return None
        random_ = self.random
        tally = self.tally
        kind: Literal["order", "refund"]
        if segment.outcome == "not_resolved":
            if random_() >= _UNRESOLVED_REFUND_SHARE:
                return None
            kind = "refund"
        else:
            order_rate = self.config.order_rate * (_CONTROL_ORDER_FACTOR if control else 1.0)
            if random_() >= order_rate:
                return None
            kind = "order"
        amount = Decimal(_uniform(random_, order_cents)).scaleb(-2)
        if kind == "order":
            tally.orders += 1
            tally.order_amount += amount
        else:
            tally.refunds += 1
            tally.refund_amount += amount
        return BusinessEvent(
            kind=kind,
            amount=amount,
            currency=self.config.order_currency,
            reference=f"{kind}-{self.getrandbits(48):012x}",
        )

    # ---- outcomes and recontacts

    def _count_outcome(self, segment: _Segment) -> None:
        tally = self.tally
        outcome = segment.outcome
        if outcome == "ai_resolved":
            tally.ai_resolutions += 1
            tally.ai_resolutions_confirmed += segment.confirmed
        elif outcome == "handoff":
            tally.handoffs += 1
            tally.handoffs_with_context += bool(segment.context_passed)
        elif outcome == "not_resolved":
            tally.not_resolved += 1
        else:
            tally.human_only_episodes += 1

    def _maybe_plan_recontact(
        self, thread: Thread, customer_index: int, segment: _Segment
    ) -> tuple[int, PlannedRecontact] | None:
        if segment.resolution_ms is None:
            return None  # no AI answer, so no window to come back inside of
        config = self.config
        random_ = self.random
        if segment.outcome == "ai_resolved":
            rate = config.recontact_rate * (
                _CONFIRMED_RECONTACT_FACTOR if segment.confirmed else 1.0
            )
        elif segment.outcome == "not_resolved":
            rate = config.unresolved_recontact_rate
        else:
            rate = _HANDOFF_RECONTACT_RATE
        if random_() >= rate:
            return None
        # Keep an hour clear of the window's edge on both sides, so that "inside" and "outside"
        # never hinge on a millisecond.
        window_ms = self.window_ms
        if random_() < config.recontact_inside_window_share:
            delay_ms = _log_uniform(random_, (15 * 60 * 1_000, window_ms - HOUR))
            self.tally.recontacts_inside_window += 1
        else:
            delay_ms = _log_uniform(random_, (window_ms + HOUR, 3 * window_ms))
            self.tally.recontacts_outside_window += 1
        channel: Channel = (
            thread.channel
            if random_() < _RECONTACT_SAME_CHANNEL_SHARE
            else _pick(random_, CHANNEL_NAMES)
        )
        recontact = PlannedRecontact(customer_index, segment.intent, channel, thread.conversation)
        return segment.resolution_ms + delay_ms, recontact

    def _emit(self, thread: Thread, data: msgspec.Struct, intent: str | None) -> None:
        time_ms = thread.time_ms
        self.id_counter += 1
        thread.times.append(time_ms)
        thread.events.append(
            Event(
                specversion="1.0",
                id=f"{self.id_prefix}{self.id_counter:012x}",
                source=self.config.source,
                type=TYPE_OF[type(data)],  # type: ignore[index]
                time=_utc(time_ms),
                tenant=self.config.tenant,
                customer=thread.customer,
                conversation=thread.conversation,
                data=data,
                intent=intent,
            )
        )


MODEL_TIERS: Final = {SMALL_MODEL.tier: SMALL_MODEL, LARGE_MODEL.tier: LARGE_MODEL}
# The size of a typical call, which turns the tiers' token prices into a cost to compare.
_TYPICAL_INPUT_TOKENS: Final = 1_500
_TYPICAL_OUTPUT_TOKENS: Final = 150


def _tier_router(config: SimConfig, difficulty: Difficulty) -> Router:
    """The gateway's router as the simulation runs it: the tiers at their typical call cost,
    each with its P(resolved) for problems of this difficulty, and the tiering's target."""
    tiering = config.tiering
    assert tiering is not None
    tiers = tuple(
        Tier(
            name=tier.tier,
            cost=tier.input_units_per_token * _TYPICAL_INPUT_TOKENS
            + tier.output_units_per_token * _TYPICAL_OUTPUT_TOKENS,
            success=tiering.resolves(tier.tier, difficulty),
        )
        for tier in MODEL_TIERS.values()
    )
    return Router(None, Policy(tiers=tiers, target=tiering.target))


def _utc(time_ms: int) -> datetime:
    """The aware UTC datetime of a time in milliseconds; exact, because a float holds seconds of
    this century to well under half a microsecond, and fromtimestamp rounds to the nearest one.
    Faster than adding a timedelta, which matters at one call per event."""
    return datetime.fromtimestamp(time_ms / 1_000, UTC)


def _uniform(random_: Callable[[], float], bounds: tuple[int, int]) -> int:
    low, high = bounds
    return low + int(random_() * (high - low + 1))


def _log_uniform(random_: Callable[[], float], bounds: tuple[int, int]) -> int:
    """Durations spread over orders of magnitude (a reply in seconds or in hours); at least 1 ms
    so that a conversation's clock always moves forward."""
    low, high = bounds
    return max(1, int(low * (high / low) ** random_()))


def _pick(random_: Callable[[], float], options: Sequence[T]) -> T:
    return options[int(random_() * len(options))]


def _first(item: tuple[int, msgspec.Struct, str | None]) -> int:
    return item[0]


def _csat_key(segments: list[_Segment]) -> str:
    outcomes = {segment.outcome for segment in segments}
    if "not_resolved" in outcomes:
        return "not_resolved"
    if "handoff" in outcomes:
        passed = all(segment.context_passed for segment in segments if segment.outcome == "handoff")
        return "handoff_with_context" if passed else "handoff_without_context"
    if "human_only" in outcomes:
        return "human_only"
    return "confirmed" if all(segment.confirmed for segment in segments) else "ai_resolved"
