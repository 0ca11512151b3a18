"""Gateway accounting: model-call and handoff events, token counts when an upstream gives none,
and a background writer that appends events to the ledger off the event loop."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import msgspec

from raas.core.events import Event, Handoff, ModelCall, make_event
from raas.gateway.tiers import TierConfig
from raas.router import Decision

EVENT_SOURCE: Final = "raas-gateway"
SUBJECT_LIMIT: Final = 256
WRITER_BATCH_LIMIT: Final = 1000

logger = logging.getLogger(__name__)

# A word, a number, or one punctuation mark: close to what BPE tokenizers count for English.
_TOKEN_PATTERN: Final = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_encoder: Final = msgspec.json.Encoder()


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


def decision_subject(decision: Decision, attempt: int, **extra: str) -> str:
    """The router's decision as compact JSON for the event's `subject` (at most 256 characters):
    rule, per-tier P(resolved), confidence, attempt; probabilities are dropped if too long."""
    record: dict[str, Any] = {
        "rule": decision.rule,
        "probabilities": {name: round(value, 4) for name, value in decision.probabilities.items()},
        "confidence": round(decision.confidence, 4),
        "attempt": attempt,
        **extra,
    }
    if decision.excluded:
        record["excluded"] = list(decision.excluded)
    text = _encoder.encode(record).decode()
    if len(text) > SUBJECT_LIMIT:
        record.pop("probabilities")
        text = _encoder.encode(record).decode()[:SUBJECT_LIMIT]
    return text


def model_call_event(
    identity: Identity,
    tier: TierConfig,
    currency: str,
    decision: Decision,
    attempt: int,
    *,
    input_tokens: int,
    output_tokens: int,
    latency_seconds: float,
    first_token_seconds: float | None,
    usage_counted: bool,
    error: str | None = None,
) -> Event:
    """The `ModelCall` event of one upstream call, with the cost from the tier's prices."""
    extra: dict[str, str] = {}
    if usage_counted:
        extra["usage"] = "counted"
    if error is not None:
        extra["error"] = error[:60]
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
    )
    return _event(data, identity, decision_subject(decision, attempt, **extra))


def handoff_event(identity: Identity, decision: Decision, attempt: int) -> Event:
    """The `Handoff` event of a transfer to a human tier, with the context passed on."""
    data = Handoff(context_passed=True, reason=decision.reason[:SUBJECT_LIMIT])
    return _event(data, identity, decision_subject(decision, attempt))


def _event(data: ModelCall | Handoff, identity: Identity, subject: str) -> Event:
    return make_event(
        data,
        id=uuid.uuid4().hex,
        source=EVENT_SOURCE,
        time=datetime.now(UTC),
        tenant=identity.tenant,
        customer=identity.customer,
        conversation=identity.conversation,
        intent=identity.intent,
        subject=subject,
    )


class EventSink(Protocol):
    """Where accounted events go: `SqliteLedger` fits."""

    def append(self, events: list[Event]) -> object: ...


class LedgerWriter:
    """Queues events and appends them in batches on a worker thread, so a request never waits
    for the ledger's fsync. `flush` waits until everything queued so far is durable."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self._queue: asyncio.Queue[Event | asyncio.Future[None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.appended = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, event: Event) -> None:
        self._queue.put_nowait(event)

    async def flush(self) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(done)
        await done

    async def stop(self) -> None:
        if self._task is None:
            return
        await self.flush()
        self._task.cancel()
        self._task = None

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            while len(items) < WRITER_BATCH_LIMIT and not self._queue.empty():
                items.append(self._queue.get_nowait())
            events = [item for item in items if isinstance(item, Event)]
            if events:
                try:
                    await asyncio.to_thread(self._sink.append, events)
                    self.appended += len(events)
                except Exception:  # a ledger failure must not stop the gateway; it is logged
                    logger.exception("could not append %d gateway events", len(events))
            for item in items:
                if isinstance(item, asyncio.Future) and not item.done():
                    item.set_result(None)
