"""Gateway accounting: model-call and handoff events, token counts when an upstream gives none,
and a background writer that appends events to the ledger off the event loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

import msgspec

from raas.core.events import Event, Handoff, ModelCall, RouteDecision, make_event
from raas.gateway.tiers import TierConfig
from raas.router import Decision, Policy

EVENT_SOURCE: Final = "raas-gateway"
ERROR_LIMIT: Final = 256  # the events' Text limit
REASON_LIMIT: Final = 1024
WRITER_BATCH_LIMIT: Final = 1000
WRITER_LINGER_SECONDS: Final = 0.1
# Appends are idempotent, so a batch the ledger refused for a passing reason (a locked file, a
# dropped database connection) is sent again as it was; only after these waits is it given up.
WRITER_RETRY_SECONDS: Final = (0.1, 0.5, 2.0, 5.0)

logger = logging.getLogger(__name__)

# A word, a number, or one punctuation mark: close to what BPE tokenizers count for English.
_TOKEN_PATTERN: Final = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def count_tokens(text: str) -> int:
    """An estimate of the tokens in `text` for upstreams that report no usage: words count one
    token per four characters (at least one), each punctuation mark one."""
    total = 0
    for piece in _TOKEN_PATTERN.findall(text):
        total += max(1, (len(piece) + 3) // 4)
    return total


def message_text(content: Any) -> str:
    """The text of a chat message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def count_input_tokens(messages: Iterable[Any]) -> int:
    """Estimated input tokens of a chat request: its messages' text plus four per message."""
    total = 0
    for message in messages:
        if isinstance(message, dict):
            total += 4 + count_tokens(message_text(message.get("content")))
    return total


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Where a request belongs: its tenant, customer, conversation and (optional) intent."""

    tenant: str
    customer: str
    conversation: str
    intent: str | None = None
    channel: str | None = None

    @property
    def episode(self) -> str:
        """The key the gateway remembers escalations by: one problem in one conversation."""
        return f"{self.tenant}\x1f{self.conversation}\x1f{self.intent or ''}"


def policy_text(policy: Policy) -> str:
    """The router's objective as the decision records it: `target 0.8` or `budget 0.01`."""
    if policy.target is not None:
        return f"target {policy.target:g}"
    return f"budget {policy.budget:g}"


def route_decision(decision: Decision, attempt: int, policy: str) -> RouteDecision:
    """The router's decision as the event's `decision`: floats become decimals of four places,
    since ledger entries hold no floats."""
    return RouteDecision(
        tier=decision.tier,
        rule=decision.rule,
        policy=policy,
        reason=decision.reason[:REASON_LIMIT],
        probabilities={name: _decimal(value) for name, value in decision.probabilities.items()},
        confidence=_decimal(decision.confidence),
        guardrail=decision.guardrail,
        excluded=decision.excluded,
        attempt=attempt,
    )


def _decimal(probability: float) -> Decimal:
    return Decimal(f"{probability:.4f}").normalize() if probability else Decimal(0)


def model_call_event(
    identity: Identity,
    tier: TierConfig,
    currency: str,
    decision: RouteDecision,
    *,
    input_tokens: int,
    output_tokens: int,
    latency_seconds: float,
    first_token_seconds: float | None,
    usage_counted: bool,
    error: str | None = None,
) -> Event:
    """The `ModelCall` event of one upstream call, with the cost from the tier's prices."""
    data = ModelCall(
        tier=tier.name,
        model=tier.model or tier.name,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=round(latency_seconds * 1000),
        cost=tier.call_cost(input_tokens, output_tokens, latency_seconds),
        currency=currency,
        time_to_first_token_ms=(
            round(first_token_seconds * 1000) if first_token_seconds is not None else None
        ),
        decision=decision,
        error=error[:ERROR_LIMIT] if error is not None else None,
        usage_counted=usage_counted,
    )
    return _event(data, identity)


def handoff_event(identity: Identity, decision: RouteDecision) -> Event:
    """The `Handoff` event of a transfer to a human tier, with the context passed on."""
    data = Handoff(context_passed=True, reason=decision.reason[:ERROR_LIMIT], decision=decision)
    return _event(data, identity)


# Event ids: a random prefix per process and a counter, unique without a system call per event.
_id_prefix: Final = os.urandom(8).hex()
_id_counter: Final = itertools.count(1)


def _event(data: ModelCall | Handoff, identity: Identity) -> Event:
    return make_event(
        data,
        id=f"{_id_prefix}{next(_id_counter):016x}",
        source=EVENT_SOURCE,
        time=datetime.now(UTC),
        tenant=identity.tenant,
        customer=identity.customer,
        conversation=identity.conversation,
        intent=identity.intent,
    )


class EventSink(Protocol):
    """Where accounted events go: `SqliteLedger` fits."""

    def append(self, events: list[Event]) -> object: ...


class LedgerWriter:
    """Collects events and appends them in batches on a worker thread, so that a request never
    waits for the ledger's fsync and the ledger's cost is shared by many events: the first event
    after a quiet spell starts a batch that gathers for `linger_seconds`. `flush` (and `stop`)
    return once everything put before them is appended."""

    def __init__(self, sink: EventSink, linger_seconds: float = WRITER_LINGER_SECONDS) -> None:
        self._sink = sink
        self._linger_seconds = linger_seconds
        self._pending: list[Event] = []
        self._flushes: list[asyncio.Future[None]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.appended = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, event: Event) -> None:
        self._pending.append(event)
        if not self._wakeup.is_set():
            self._wakeup.set()

    async def flush(self) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushes.append(done)
        self._wakeup.set()
        await done

    async def stop(self) -> None:
        if self._task is None:
            return
        await self.flush()
        while self._pending:  # put while the last batch was written
            await self.flush()
        self._task.cancel()
        self._task = None

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if not self._flushes:
                await asyncio.sleep(self._linger_seconds)
            self._wakeup.clear()
            events, self._pending = self._pending, []
            flushes, self._flushes = self._flushes, []
            for start in range(0, len(events), WRITER_BATCH_LIMIT):
                batch = events[start : start + WRITER_BATCH_LIMIT]
                await self._append(batch)
            for done in flushes:
                if not done.done():
                    done.set_result(None)

    async def _append(self, batch: list[Event]) -> None:
        for wait in (*WRITER_RETRY_SECONDS, None):
            try:
                await asyncio.to_thread(self._sink.append, batch)
            except Exception:  # a ledger failure must not stop the gateway
                if wait is None:
                    logger.exception(
                        "gave up appending %d gateway events (first id %s) after %d attempts",
                        len(batch),
                        batch[0].id,
                        len(WRITER_RETRY_SECONDS) + 1,
                    )
                    return
                logger.warning(
                    "appending %d gateway events failed; again in %s s", len(batch), wait
                )
                await asyncio.sleep(wait)
            else:
                self.appended += len(batch)
                return
