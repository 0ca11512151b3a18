"""What both SDK clients share: their limits, how a batch is encoded, and when a failed send is
tried again (with the same bytes, so the same event ids: the service stores a retried event once).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, Literal, TypedDict

import httpx
import msgspec

from raas.core.events import Event
from raas.errors import RaasError
from raas.ingest.validate import BATCH_EVENTS_MAX, parse_event

EVENTS_PATH: Final = "/v1/events"
# Statuses that say "not now" rather than "never": the same batch is sent again after a pause.
RETRY_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
# A server's Retry-After is followed up to this long; past it, our own backoff applies.
RETRY_AFTER_SECONDS_MAX: Final = 60.0
# How many delivery failures a client keeps to report on flush; older ones are only counted.
FAILURES_KEPT_MAX: Final = 100

_encoder: Final = msgspec.json.Encoder()

WhenFull = Literal["block", "raise"]


class ClientError(RaasError):
    """Base of the SDK clients' own errors."""


class QueueFullError(ClientError):
    """The client's queue is full and it was told to raise rather than wait (or waited long
    enough): the service is slower than the events come, or unreachable."""


class ClientClosedError(ClientError):
    """An event was given to a client that is closed."""


class DeliveryError(ClientError):
    """Events that were not delivered: the service refused them, or every retry failed.

    `failures` holds (events in the batch, reason) for each failed batch the client kept.
    """

    def __init__(self, failed_events: int, failures: list[tuple[int, str]]):
        self.failed_events = failed_events
        self.failures = failures
        first = failures[0][1] if failures else "no reason kept"
        batches = len(failures)
        super().__init__(
            f"{failed_events:,} event{'s' if failed_events != 1 else ''} not delivered in "
            f"{batches} batch{'es' if batches != 1 else ''}; first reason: {first}"
        )


class LimitOptions(TypedDict, total=False):
    """The keyword arguments of both clients that set their `Limits` (see there)."""

    batch_events: int
    flush_interval_seconds: float
    queue_events_max: int
    when_full: WhenFull
    block_timeout_seconds: float | None
    retries_max: int
    backoff_initial_seconds: float
    backoff_max_seconds: float
    timeout_seconds: float


@dataclass(frozen=True, kw_only=True)
class Limits:
    """A client's bounds: batches (events and seconds), the queue, retries and timeouts."""

    batch_events: int = 500
    flush_interval_seconds: float = 1.0
    queue_events_max: int = 10_000
    when_full: WhenFull = "block"
    # With when_full="block": how long to wait for room before raising QueueFullError (None:
    # as long as it takes).
    block_timeout_seconds: float | None = None
    retries_max: int = 8
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 10.0
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_events <= BATCH_EVENTS_MAX:
            raise ValueError(
                f"batch_events must be 1 to {BATCH_EVENTS_MAX:,}, got {self.batch_events}"
            )
        if self.queue_events_max < 1:
            raise ValueError(f"queue_events_max must be at least 1, got {self.queue_events_max}")
        if self.when_full not in ("block", "raise"):
            raise ValueError(f"when_full must be 'block' or 'raise', got {self.when_full!r}")
        for name in ("flush_interval_seconds", "backoff_initial_seconds", "timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_initial_seconds")
        if self.retries_max < 0:
            raise ValueError(f"retries_max must be >= 0, got {self.retries_max}")


@dataclass
class ClientStats:
    """What a client has done so far, in events (retries in sends)."""

    queued: int = 0
    accepted: int = 0
    duplicates: int = 0
    failed: int = 0
    retries: int = 0
    batches: int = 0


class Tally:
    """A client's counts and the failed batches not yet reported by a flush (bounded)."""

    def __init__(self) -> None:
        self.stats = ClientStats()
        self.finished = 0  # events delivered or given up on
        self._failed_events = 0
        self._failures: list[tuple[int, str]] = []

    def record(self, events: int, retries: int, outcome: Delivered | Refused) -> None:
        stats = self.stats
        stats.batches += 1
        stats.retries += retries
        if isinstance(outcome, Delivered):
            stats.accepted += outcome.accepted
            stats.duplicates += outcome.duplicates
        else:
            stats.failed += events
            self._failed_events += events
            if len(self._failures) < FAILURES_KEPT_MAX:
                self._failures.append((events, outcome.reason))
        self.finished += events

    def take_failure(self) -> DeliveryError | None:
        """The failures since the last call, as one error; None if there were none."""
        if not self._failed_events:
            return None
        error = DeliveryError(self._failed_events, self._failures)
        self._failed_events, self._failures = 0, []
        return error


def checked(event: Event) -> Event:
    """The event as the service will read it; raises EventError (field and reason) at the call
    site if the service would refuse it, so that a bad event never waits in a queue."""
    return parse_event(_encoder.encode(event))


def encode_batch(events: list[Event]) -> bytes:
    return _encoder.encode(events)


def request_headers(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}", "content-type": "application/json"}


class _Accepted(msgspec.Struct):
    accepted: int = 0
    duplicates: int = 0


_accepted_decoder: Final = msgspec.json.Decoder(_Accepted)


@dataclass(frozen=True)
class Delivered:
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class Refused:
    reason: str


class Attempts:
    """The retry policy of one batch: after each answer (or transport error) it says how long to
    wait before sending the same bytes again, or that the batch is done (delivered or refused).

    Backoff is exponential with full jitter, capped; a Retry-After header is followed (bounded).
    """

    def __init__(self, limits: Limits, rng: random.Random | None = None) -> None:
        self.limits = limits
        self.retries = 0
        self._rng = rng or random.Random()

    def answered(self, response: httpx.Response) -> Delivered | Refused | float:
        status = response.status_code
        if 200 <= status < 300:
            try:
                body = _accepted_decoder.decode(response.content)
            except msgspec.DecodeError:
                return Refused(f"HTTP {status} with a body that is not a receipt")
            return Delivered(body.accepted, body.duplicates)
        reason = f"HTTP {status}: {_problem_text(response)}"
        if status in RETRY_STATUSES or status >= 500:
            return self._again(reason, _retry_after_seconds(response))
        return Refused(reason)

    def failed(self, error: httpx.TransportError) -> Refused | float:
        return self._again(f"{type(error).__name__}: {error}", None)

    def _again(self, reason: str, retry_after: float | None) -> Refused | float:
        if self.retries >= self.limits.retries_max:
            return Refused(f"gave up after {self.retries} retries; last: {reason}")
        ceiling = min(
            self.limits.backoff_max_seconds,
            self.limits.backoff_initial_seconds * 2**self.retries,
        )
        self.retries += 1
        delay = self._rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_SECONDS_MAX))
        return delay


def _problem_text(response: httpx.Response) -> str:
    """The problem+json `detail` (or `title`) of an error answer, else the start of its body."""
    try:
        problem = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return response.text[:200] or response.reason_phrase
    if isinstance(problem, dict):
        for key in ("detail", "title"):
            if isinstance(problem.get(key), str):
                return str(problem[key])[:500]
    return response.text[:200]


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def post_batch(http: httpx.Client, body: bytes, limits: Limits) -> tuple[Delivered | Refused, int]:
    """Send one batch until it is delivered or refused; (the outcome, the retries it took)."""
    attempts = Attempts(limits)
    while True:
        try:
            outcome = attempts.answered(http.post(EVENTS_PATH, content=body))
        except httpx.TransportError as error:
            outcome = attempts.failed(error)
        if not isinstance(outcome, float):
            return outcome, attempts.retries
        time.sleep(outcome)


async def post_batch_async(
    http: httpx.AsyncClient, body: bytes, limits: Limits
) -> tuple[Delivered | Refused, int]:
    """`post_batch` for asyncio: the same attempts, awaited."""
    attempts = Attempts(limits)
    while True:
        try:
            outcome = attempts.answered(await http.post(EVENTS_PATH, content=body))
        except httpx.TransportError as error:
            outcome = attempts.failed(error)
        if not isinstance(outcome, float):
            return outcome, attempts.retries
        await asyncio.sleep(outcome)
