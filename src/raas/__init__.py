"""raas: results as a service. Record what AI agents do, judge outcomes by contract, bill them
with evidence anyone can verify.

This module is the public API; everything else is private to the package and may move.
"""

from raas.core.contract import Contract, load_contract, parse_contract
from raas.core.episodes import Entry, Episode, derive_episodes
from raas.core.events import Event, event_entry, make_event
from raas.core.invoice import Invoice, InvoiceLine, invoice_json
from raas.core.judge import Outcome, judge, judge_episode
from raas.core.periods import Period, month_period
from raas.core.settle import Settlement, SettlementReport, settle
from raas.errors import (
    BatchRejected,
    ConflictError,
    ContractError,
    EventError,
    RaasError,
    SettlementError,
    StoreError,
)
from raas.sdk import AsyncClient, Client, Conversation
from raas.sim import SimConfig, Simulation

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "BatchRejected",
    "Client",
    "ConflictError",
    "Contract",
    "ContractError",
    "Conversation",
    "Entry",
    "Episode",
    "Event",
    "EventError",
    "Invoice",
    "InvoiceLine",
    "Outcome",
    "Period",
    "RaasError",
    "Settlement",
    "SettlementError",
    "SettlementReport",
    "SimConfig",
    "Simulation",
    "StoreError",
    "derive_episodes",
    "event_entry",
    "invoice_json",
    "judge",
    "judge_episode",
    "load_contract",
    "make_event",
    "month_period",
    "parse_contract",
    "settle",
]
