"""Episodes: the unit that is judged, one customer problem (intent) followed across conversations.

`derive_episodes` is pure: it takes one customer's events and returns that customer's episodes
with the features contracts judge on. Order of arrival does not matter; events are sorted first.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec


class Episode(msgspec.Struct, frozen=True, kw_only=True):
    id: str                                   # "<first conversation>#<intent>", stable across runs
    tenant: str
    customer: str
    intent: str
    conversations: tuple[str, ...]            # in order of their first event
    channels: tuple[str, ...]
    started_at: datetime
    last_activity_at: datetime
    ai_answered: bool                         # the AI answered at least once
    resolution_at: datetime | None            # the AI's last answer or claim: the window opens here
    handed_off: bool
    handoff_at: datetime | None
    context_passed: bool | None               # None when not handed off
    confirmed: bool | None                    # the customer's answer; None when none was given
    csat: int | None                          # the last CSAT answer
    recontact_at: datetime | None             # first return about this intent after resolution_at
    recontact_delay_seconds: int | None
    time_to_resolution_seconds: int | None
    tiers: tuple[str, ...]
    models: tuple[str, ...]
    model_calls: int
    model_cost: Decimal
    input_tokens: int
    output_tokens: int
    latency_ms_total: int
    latency_ms_max: int
    review_passed: bool | None
    event_hashes: tuple[str, ...]             # hex leaf hashes of the ledger entries behind it
