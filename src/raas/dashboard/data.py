"""What the dashboard reads, behind one class: the ledger, the contracts, the episode tables.

Pages never load a tenant's episodes whole: figures come from SQL over the DuckDB episode table
(`raas.engine.episode_table`), brought up to the ledger's head incrementally before it is read,
and single episodes from the entries of their one customer. Issued invoices never change, so
they are decoded once and kept. The shapes returned are plain structs for `raas.dashboard.views`.
"""

from __future__ import annotations

import gc
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NamedTuple

import duckdb
import msgspec

from raas.audit.proofs import ProofError, verify_inclusion
from raas.core import periods
from raas.core.contract import Contract, parse_contract
from raas.core.episodes import Entry, Episode, derive_episodes
from raas.core.events import DISPUTE_CUSTOMER, Event
from raas.core.invoice import Invoice, invoice_from_json
from raas.core.judge import Judge, Outcome
from raas.core.plan import plan_of
from raas.dashboard.disputes import Dispute, fold_disputes
from raas.dashboard.figures import (
    FailedReview,
    FigureKeeper,
    FigureWatch,
    KeptTotals,
)
from raas.dashboard.subtrees import KeptSubtrees
from raas.engine.duckdb_engine import PlanSql, compile_plan
from raas.engine.episode_table import build_episode_table
from raas.engine.on_ledger import tenant_file_name
from raas.errors import RaasError
from raas.ledger.checkpoint import CheckpointError, open_checkpoint
from raas.ledger.keys import VerifierKey
from raas.ledger.store import LedgerStore, StoredEvent

# Bounds: decoded invoices kept, and how often a table is brought up to the ledger's head.
INVOICES_CACHED_MAX: Final = 64
TABLE_REFRESH_SECONDS_MIN: Final = 10.0
FIGURES_CACHED_MAX: Final = 64
EPISODES_PER_PAGE: Final = 100
_log = logging.getLogger(__name__)


class DashboardError(RaasError):
    """A page asked for something that is not there (or not the signed-in tenant's)."""


class ContractText(msgspec.Struct, frozen=True):
    """A contract version as parsed, and the text it was parsed from (evidence bundles hold it)."""

    contract: Contract
    text: str

    @classmethod
    def parse(cls, text: str, file: str = "<string>") -> ContractText:
        return cls(contract=parse_contract(text, file), text=text)


class VerdictCount(msgspec.Struct, frozen=True):
    day: str  # ISO date in the contract's zone
    outcome: str
    episodes: int


class TierFigures(msgspec.Struct, frozen=True):
    tier: str
    episodes: int
    successes: int  # billed, and no human took over


class ContractFigures(msgspec.Struct, frozen=True, kw_only=True):
    """What the vendor's overview reads from one contract's episode table."""

    contract: str
    version: int
    buyer: str
    currency: str
    time_zone: str
    outcomes: tuple[str, ...]  # contract order, then `unmatched`, `excluded`
    by_day: tuple[VerdictCount, ...]
    episodes: int
    measured: int  # not excluded
    billed: int
    resolved_by_ai: int  # billed, and no human took over
    csat_mean: Decimal | None
    csat_answers: int
    latency_p95_ms: int | None
    model_cost: Decimal
    tiers: tuple[TierFigures, ...]
    size: int  # the ledger size the table was at
    # The model cost of the episodes that started on each day (ISO date in the contract's
    # zone), days in order: what an invoice's period cost sums when its period is whole days.
    cost_by_day: tuple[tuple[str, Decimal], ...] = ()
    # The newest failed reviews of the table (at most REVIEW_QUEUE_MAX), newest first.
    failed_reviews: tuple[FailedReview, ...] = ()


class FigureGroup(NamedTuple):
    """Episodes of one (day, verdict, handed off, tiers): how many, their CSAT sum and count,
    and their model cost."""

    day: str
    verdict: int  # an index into the plan's verdicts
    handed_off: bool
    tiers: str  # comma-separated, as the table holds them
    episodes: int
    csat_total: int
    csat_answers: int
    model_cost: Decimal


def fold_figures(
    contract: Contract,
    names: Sequence[str],
    billable: Sequence[bool],
    groups: Sequence[FigureGroup],
    latency_p95_ms: int | None,
    size: int,
    failed_reviews: Sequence[FailedReview] = (),
) -> ContractFigures:
    """The contract's figures from its grouped episodes. Pure. Verdict 0 is `excluded` (as
    `compile_plan` numbers them): excluded episodes count as episodes, not as measured."""
    by_day: dict[tuple[str, str], int] = {}
    cost_by_day: dict[str, Decimal] = {}
    tiers: dict[str, list[int]] = {}
    episodes = measured = billed = resolved = csat_total = csat_answers = 0
    model_cost = Decimal(0)
    for group in groups:
        name = names[group.verdict]
        by_day[group.day, name] = by_day.get((group.day, name), 0) + group.episodes
        success = billable[group.verdict] and not group.handed_off
        episodes += group.episodes
        measured += group.episodes if group.verdict != 0 else 0
        billed += group.episodes if billable[group.verdict] else 0
        resolved += group.episodes if success else 0
        csat_total += group.csat_total
        csat_answers += group.csat_answers
        model_cost += group.model_cost
        cost_by_day[group.day] = cost_by_day.get(group.day, Decimal(0)) + group.model_cost
        for tier in filter(None, group.tiers.split(",")):
            counts = tiers.setdefault(tier, [0, 0])
            counts[0] += group.episodes
            counts[1] += group.episodes if success else 0
    return ContractFigures(
        contract=contract.contract,
        version=contract.version,
        buyer=contract.buyer,
        currency=contract.currency,
        time_zone=contract.time_zone,
        outcomes=tuple(_outcome_order(names)),
        by_day=tuple(
            VerdictCount(day, name, count) for (day, name), count in sorted(by_day.items())
        ),
        episodes=episodes,
        measured=measured,
        billed=billed,
        resolved_by_ai=resolved,
        csat_mean=Decimal(csat_total) / csat_answers if csat_answers else None,
        csat_answers=csat_answers,
        latency_p95_ms=latency_p95_ms,
        model_cost=model_cost,
        tiers=tuple(
            TierFigures(tier, counts[0], counts[1])
            for tier, counts in sorted(tiers.items(), key=lambda item: (-item[1][0], item[0]))
        ),
        size=size,
        cost_by_day=tuple(sorted(cost_by_day.items())),
        failed_reviews=tuple(failed_reviews),
    )


def period_model_cost(figures: ContractFigures, start: datetime, end: datetime) -> Decimal | None:
    """The model cost of the episodes that started in [start, end), summed from the figures'
    days when both ends are the first instant of a day in the contract's zone (an invoice's
    month is); None otherwise (the caller sums the table). Pure. Exact as long as no clock is
    turned back across midnight, as a month's bounds take too (`raas.core.periods`)."""
    zone = figures.time_zone
    local = periods.zone(zone)
    first, last = start.astimezone(local).date(), end.astimezone(local).date()
    if start != periods.start_of_day(first, zone) or end != periods.start_of_day(last, zone):
        return None
    low, high = first.isoformat(), last.isoformat()
    return sum((cost for day, cost in figures.cost_by_day if low <= day < high), Decimal(0))


def fold_kept(contract: Contract, plan: PlanSql, totals: KeptTotals) -> ContractFigures:
    """The contract's figures from its kept totals (`FigureKeeper.update`). Pure."""
    return fold_figures(
        contract,
        [verdict.name for verdict in plan.verdicts],
        [verdict.billable for verdict in plan.verdicts],
        [FigureGroup(*group, *sums) for group, sums in totals.groups.items()],
        totals.latency_p95_ms,
        totals.size,
        totals.reviews,
    )


class PeriodCost(msgspec.Struct, frozen=True):
    invoice_id: str
    period: str
    revenue: Decimal
    model_cost: Decimal


class ReviewItem(msgspec.Struct, frozen=True):
    episode: str
    intent: str
    started_at: datetime
    why: str


class EpisodeRow(msgspec.Struct, frozen=True):
    id: str
    intent: str
    channel: str | None
    started_at: datetime
    handed_off: bool
    confirmed: bool | None
    csat: int | None
    model_cost: Decimal


class ProofStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Whether an episode's entries are proven in the latest signed checkpoint of its log."""

    checkpoint_size: int | None
    signature: str  # "verified with <key>", "not checked: ...", "failed: ..."
    proven: int
    after_checkpoint: int
    failures: tuple[str, ...]


class EpisodeDetail(msgspec.Struct, frozen=True, kw_only=True):
    episode: Episode
    events: tuple[StoredEvent, ...]  # in ledger order
    revealed: tuple[Any, ...]  # the events with personal fields in cleartext, beside `events`
    outcome: Outcome
    rule: str  # the `when` of the rule that named the outcome ("" for unmatched)
    contract: str
    proof: ProofStatus


class Checkpoints(msgspec.Struct, frozen=True):
    tenant: str
    notes: tuple[tuple[int, str], ...]  # (size, note), smallest first


class DashboardData:
    """The shell's reads for the dashboard: one ledger, its contracts, a folder of tables.

    `contracts` is the contract versions known, or a function that lists them as they are now
    (the service's store, where contracts are added while it runs)."""

    def __init__(
        self,
        ledger: LedgerStore,
        contracts: Sequence[ContractText] | Callable[[], Sequence[ContractText]],
        tables: Path,
        verifier_keys: Sequence[VerifierKey] = (),
    ) -> None:
        self.ledger = ledger
        if callable(contracts):
            self._contracts: Callable[[], Sequence[ContractText]] = contracts
        else:
            fixed = tuple(contracts)
            self._contracts = lambda: fixed
        self.tables = tables
        self.verifier_keys = tuple(verifier_keys)
        tables.mkdir(parents=True, exist_ok=True)
        self._invoices: OrderedDict[tuple[str, str], Invoice] = OrderedDict()
        self._lock = threading.Lock()
        # The episode tables, attached read-only to one in-memory database, by file.
        self._duck = duckdb.connect()
        self._attached: dict[Path, str] = {}
        self._aliases = itertools.count()  # an alias is never reused
        self._refreshed: dict[Path, float] = {}
        # By (buyer, contract, version): a vendor names its buyers' contracts alike, and each
        # buyer's may say other things under the same name and version.
        self._plans: dict[tuple[str, str, int], PlanSql] = {}
        self._figures: dict[tuple[str, str, int, int, str], ContractFigures] = {}
        self._keepers: dict[tuple[str, str, int], FigureKeeper] = {}
        self._warming: threading.Thread | None = None
        self._closing = threading.Event()
        # Apart from _lock: hashing new blocks must not hold up the other pages.
        self._subtrees_lock = threading.Lock()
        self._subtrees: dict[str, KeptSubtrees] = {}

    # -- contracts and invoices -------------------------------------------------------------

    @property
    def contracts(self) -> tuple[ContractText, ...]:
        return tuple(self._contracts())

    def contracts_of(self, tenant: str) -> list[ContractText]:
        """The contracts a tenant is a party to, vendor or buyer."""
        return [
            item for item in self.contracts if tenant in (item.contract.vendor, item.contract.buyer)
        ]

    def contract(
        self, name: str, version: int | None = None, *, buyer: str | None = None
    ) -> ContractText:
        """The contract of this name (and version, and buyer: names repeat across buyers)."""
        found = [
            item
            for item in self.contracts
            if item.contract.contract == name
            and (version is None or item.contract.version == version)
            and (buyer is None or item.contract.buyer == buyer)
        ]
        if not found:
            raise DashboardError(
                f"no contract {name!r}"
                + (f" v{version}" if version else "")
                + (f" with buyer {buyer!r}" if buyer else "")
            )
        return max(found, key=lambda item: item.contract.version)

    def invoice_ids(self, tenant: str) -> list[str]:
        return self.ledger.list_invoices(tenant)

    def invoice(self, tenant: str, invoice_id: str) -> Invoice:
        """The invoice issued to the buyer `tenant` under this id (ids repeat across buyers)."""
        key = (tenant, invoice_id)
        with self._lock:
            cached = self._invoices.get(key)
            if cached is not None:
                self._invoices.move_to_end(key)
                return cached
        body = self.ledger.get_invoice(tenant, invoice_id)
        if body is None:
            raise DashboardError(f"no invoice {invoice_id!r} of tenant {tenant!r}")
        invoice = invoice_from_json(body)
        with self._lock:
            self._invoices[key] = invoice
            while len(self._invoices) > INVOICES_CACHED_MAX:
                self._invoices.popitem(last=False)
        return invoice

    # -- the episode table --------------------------------------------------------------------

    @contextmanager
    def table(self, item: ContractText) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the buyer's episode table (linked with the contract's window), first
        brought up to the ledger's head when it was last refreshed a while ago."""
        path = self._table_path(item.contract)
        with self._lock:
            alias = self._attached.get(path)
            stale = time.monotonic() - self._refreshed.get(path, -1e9) > TABLE_REFRESH_SECONDS_MIN
            if alias is None or stale:
                alias = self._bring_up(path, item.contract)
            cursor = self._duck.cursor()
        try:
            cursor.execute(f"USE {alias}")
            yield cursor
        finally:
            cursor.close()

    def _bring_up(self, path: Path, contract: Contract) -> str:
        """Bring the table at `path` up to the buyer's head, attached read-write to the one
        in-memory database (once: attaching a large file costs more than a page), and the
        figures kept over it along (the caller holds the lock); its alias."""
        alias = self._attached.get(path)
        start = None if alias is None else self._state(alias)
        if alias is not None and start is None:
            # No table there any more (a full build that failed after detaching it).
            self._duck.execute(f"DETACH DATABASE IF EXISTS {alias}")
            del self._attached[path]
            alias = None
        if alias is not None and start is not None and self._current(start, contract.buyer):
            # Built or checked here before: of this format, horizon and tenant.
            self._refreshed[path] = time.monotonic()
            return alias
        if alias is None and path.exists():
            try:
                alias = self._attach(path)
            except duckdb.Error:
                alias = None  # not a database: built again
            start = None if alias is None else self._state(alias)
        watches: list[tuple[FigureKeeper, FigureWatch]] = []
        if start is not None:
            for keeper in self._keepers_of(path):
                watch = keeper.watch(*start)
                if watch is not None:
                    watches.append((keeper, watch))
        built = build_episode_table(
            self.ledger,
            contract.buyer,
            None,
            path,
            link_horizon=contract.window,
            attach_to=self._duck,
            attached_as=alias,
            watchers=[watch for _, watch in watches],
        )
        if start is not None and not built.full and built.updated_from == start[0]:
            for keeper, watch in watches:
                keeper.advance(watch, built.state.size, built.state.last_leaf)
        if alias is None or built.full:
            # A new file, or a full build replaced it (detached first).
            self._attached.pop(path, None)
            alias = self._attach(path)
        self._refreshed[path] = time.monotonic()
        return alias

    def _attach(self, path: Path) -> str:
        alias = f"table_{next(self._aliases)}"
        literal = "'" + str(path).replace("'", "''") + "'"
        self._duck.execute(f"ATTACH {literal} AS {alias}")
        self._attached[path] = alias
        return alias

    def _state(self, alias: str) -> tuple[int, str] | None:
        """The (size, last leaf) of the table attached as `alias`; None when it is not one."""
        try:
            row = self._duck.execute(
                f"SELECT size, last_leaf FROM {alias}.episode_table"
            ).fetchone()
        except duckdb.Error:
            return None
        return None if row is None else (int(row[0]), str(row[1]))

    def _current(self, state: tuple[int, str], tenant: str) -> bool:
        """Whether a table at `state` is of the tenant's log as it is now."""
        head = self.ledger.head(tenant)
        if state[0] != head:
            return False
        return state[1] == (
            self.ledger.leaf_hashes(tenant, head - 1, head)[0].hex() if head else ""
        )

    def _keepers_of(self, path: Path) -> list[FigureKeeper]:
        """The figure keepers of every contract whose table is at `path`."""
        return [
            self._keeper(item.contract)
            for item in self.contracts
            if self._table_path(item.contract) == path
        ]

    def _keeper(self, contract: Contract) -> FigureKeeper:
        which = (contract.buyer, contract.contract, contract.version)
        keeper = self._keepers.get(which)
        if keeper is None:
            keeper = self._keepers[which] = FigureKeeper(
                self._figures_path(contract), self._plan(contract).verdict, contract.time_zone
            )
        return keeper

    def _table_path(self, contract: Contract) -> Path:
        horizon = int(contract.window.total_seconds())
        return self.tables / f"{tenant_file_name(contract.buyer)}-{horizon}.duckdb"

    def _figures_path(self, contract: Contract) -> Path:
        # A contract's name has no dot, so the file names one buyer's contract whatever the
        # buyer is called ("acme-eu" + "support" and "acme" + "eu-support" stay apart).
        return self.tables / (
            f"{tenant_file_name(contract.buyer)}.{contract.contract}.v{contract.version}"
            ".figures.json"
        )

    def _plan(self, contract: Contract) -> PlanSql:
        key = (contract.buyer, contract.contract, contract.version)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = compile_plan(plan_of(contract))
        return plan

    def contract_figures(self, item: ContractText) -> ContractFigures:
        """The vendor's figures for one contract, over every episode of its buyer's table:
        each episode classified once and grouped by (day, verdict, handed off, tiers), folded
        by `fold_figures`, with the latency percentile. The groups are kept (`FigureKeeper`)
        and follow each update of the table; figures are kept per table state."""
        contract = item.contract
        plan = self._plan(contract)
        which = (contract.buyer, contract.contract, contract.version)
        with self.table(item) as cursor:
            state = cursor.execute("SELECT size, last_leaf FROM episode_table").fetchone()
            assert state is not None
            with self._lock:
                cached = self._figures.get((*which, int(state[0]), str(state[1])))
                if cached is not None:
                    return cached
                totals = self._keeper(contract).totals(cursor)
        figures = fold_kept(contract, plan, totals)
        with self._lock:
            if len(self._figures) >= FIGURES_CACHED_MAX:
                self._figures.clear()
            self._figures[(*which, totals.size, totals.last_leaf)] = figures
        return figures

    def warm(self) -> None:
        """Bring every contract's episode table and kept figures up to its buyer's head, as
        the first vendor overview would: at a server's start (`start_warming`), so that no
        page pays for a table built or figures grouped in full. The next page still checks
        the table against the log's head (cheap), as warming is not a page's refresh.

        Then what the process holds so far (modules, the app, tables attached, figures) is
        frozen out of the cyclic garbage collector's sight (`gc.freeze`): it lives as long as
        the server, and a full collection that walked it again fell inside a page, one page
        in two or three after the log grew by returning customers (60-180 ms at a million
        episodes). Garbage made later is collected as before."""
        for item in self.contracts:
            if self._closing.is_set():
                return
            self.contract_figures(item)
            with self._lock:
                self._refreshed[self._table_path(item.contract)] = -1e9
        gc.collect()
        gc.freeze()

    def start_warming(self) -> None:
        """`warm` in a thread of its own (a page asked for meanwhile waits for the table it
        reads, as it would have built it itself); `close` waits for it."""

        def run() -> None:
            try:
                self.warm()
            except Exception:  # a page meets the same error and shows it; warming is a cache
                _log.exception("warming the dashboard's tables and figures failed")

        self._warming = threading.Thread(target=run, name="dashboard-warm", daemon=True)
        self._warming.start()

    def period_costs(self, item: ContractText) -> list[PeriodCost]:
        """Per issued invoice of the contract: its total and the model cost of the episodes
        that started in its period (what the vendor spent to earn it)."""
        contract = item.contract
        invoices = [
            self.invoice(contract.buyer, invoice_id)
            for invoice_id in self.invoice_ids(contract.buyer)
        ]
        mine = [
            invoice
            for invoice in invoices
            if invoice.contract == contract.contract and invoice.vendor == contract.vendor
        ]
        if not mine:
            return []
        # From the kept figures' days (a sum over the whole table is a scan of it), unless a
        # period is not whole days of the contract's zone.
        figures = self.contract_figures(item)
        costs: list[PeriodCost] = []
        for invoice in sorted(mine, key=lambda invoice: invoice.period_start):
            cost = period_model_cost(figures, invoice.period_start, invoice.period_end)
            if cost is None:
                cost = self._period_model_cost(item, invoice.period_start, invoice.period_end)
            costs.append(PeriodCost(invoice.id, invoice.period, invoice.total, cost))
        return costs

    def _period_model_cost(self, item: ContractText, start: datetime, end: datetime) -> Decimal:
        """The model cost of the episodes that started in [start, end), summed by the table."""
        with self.table(item) as cursor:
            row = cursor.execute(
                "SELECT coalesce(sum(model_cost), 0) FROM episodes "
                "WHERE started_at >= ? AND started_at < ?",
                [start, end],
            ).fetchone()
        assert row is not None
        return Decimal(row[0])

    def review_queue(self, item: ContractText) -> list[ReviewItem]:
        """Episodes a person should look at: those whose review failed, newest first (at most
        REVIEW_QUEUE_MAX), kept with the figures (finding them is a scan of the table)."""
        return [
            ReviewItem(review.episode, review.intent, review.started_at, "review failed")
            for review in self.contract_figures(item).failed_reviews
        ]

    def episode_rows(self, item: ContractText, episode_ids: Sequence[str]) -> list[EpisodeRow]:
        """The table's rows for these episodes, in the order given (missing ones left out)."""
        if not episode_ids:
            return []
        with self.table(item) as cursor:
            rows = cursor.execute(
                "SELECT id, intent, channel, started_at, handed_off, confirmed, csat, "
                "model_cost FROM episodes WHERE list_contains(?, id)",
                [list(episode_ids)],
            ).fetchall()
        found = {row[0]: EpisodeRow(*row) for row in rows}
        return [found[episode] for episode in episode_ids if episode in found]

    def customer_of(self, item: ContractText, episode_id: str) -> str | None:
        with self.table(item) as cursor:
            row = cursor.execute(
                "SELECT customer FROM episodes WHERE id = ?", [episode_id]
            ).fetchone()
        return None if row is None else str(row[0])

    # -- disputes ---------------------------------------------------------------------------

    def disputes(self, item: ContractText) -> list[Dispute]:
        """The disputes filed in the contract's buyer's log, each with its ruling if any (the
        table lists the log indexes of their customer, so only they are read)."""
        with self.table(item) as cursor:
            row = cursor.execute(
                "SELECT log_indexes FROM customers WHERE customer = ?", [DISPUTE_CUSTOMER]
            ).fetchone()
        if row is None:
            return []
        contract = item.contract
        stored = self.ledger.entries(contract.buyer, [int(index) for index in row[0]])
        invoices = {
            invoice_id
            for invoice_id in self.invoice_ids(contract.buyer)
            if self.invoice(contract.buyer, invoice_id).contract == contract.contract
        }
        return [
            dispute
            for dispute in fold_disputes(entry.reveal() for entry in stored)
            if dispute.invoice_id in invoices
        ]

    def append(self, tenant: str, events: Sequence[Event]) -> None:
        """Append to the tenant's log, and read its tables afresh on the next page."""
        self.ledger.append(events)
        self.refresh(tenant)

    def refresh(self, tenant: str) -> None:
        """Bring the tenant's tables up to its log on the next page (it was written to)."""
        with self._lock:
            for path in self._refreshed:
                if path.name.startswith(f"{tenant}-"):
                    self._refreshed[path] = -1e9

    # -- one episode ----------------------------------------------------------------------

    def episode(self, item: ContractText, episode_id: str) -> EpisodeDetail:
        """An episode of the contract's buyer with its events, verdict and proof status."""
        contract = item.contract
        tenant = contract.buyer
        with self.table(item) as cursor:
            row = cursor.execute(
                "SELECT c.log_indexes FROM episodes e JOIN customers c USING (customer) "
                "WHERE e.id = ?",
                [episode_id],
            ).fetchone()
        if row is None:
            raise DashboardError(f"no episode {episode_id!r} in the log of {tenant!r}")
        stored = self.ledger.entries(tenant, [int(index) for index in row[0]])
        entries = [Entry(item.event, item.leaf_hash) for item in stored]
        episode = next(
            (
                found
                for found in derive_episodes(entries, link_horizon=contract.window)
                if found.id == episode_id
            ),
            None,
        )
        if episode is None:
            raise DashboardError(f"no episode {episode_id!r} in the log of {tenant!r}")
        leaves = set(episode.event_hashes)
        events = tuple(
            sorted(
                (entry for entry in stored if entry.leaf_hash.hex() in leaves),
                key=lambda entry: entry.log_index,
            )
        )
        outcome = Judge(contract).judge(episode)
        rules = {rule.name: rule.when for rule in plan_of(contract).rules}
        return EpisodeDetail(
            episode=episode,
            events=events,
            revealed=tuple(entry.reveal() for entry in events),
            outcome=outcome,
            rule=rules.get(outcome.kind, ""),
            contract=f"{contract.contract} v{contract.version}",
            proof=self.proof_status(tenant, events),
        )

    def proof_status(self, tenant: str, events: Sequence[StoredEvent]) -> ProofStatus:
        """Check each event's inclusion proof against the latest signed checkpoint."""
        note = self.ledger.latest_checkpoint(tenant)
        if note is None:
            return ProofStatus(
                checkpoint_size=None,
                signature="no checkpoint signed yet",
                proven=0,
                after_checkpoint=len(events),
                failures=(),
            )
        size, root = note_size_and_root(note)
        signature = self.signature_status(note)
        covered = [entry for entry in events if entry.log_index < size]
        indexes = [entry.log_index for entry in covered]
        with self._subtrees_lock:
            proofs = self._kept_subtrees(tenant).inclusion_proofs(self.ledger, indexes, size)
        failures = _failed_proofs(covered, proofs, size, root)
        if failures:
            # Only the ledger's own tree may find an entry unproven: the kept blocks are a cache.
            proofs = self.ledger.inclusion_proofs(tenant, indexes, size)
            failures = _failed_proofs(covered, proofs, size, root)
        return ProofStatus(
            checkpoint_size=size,
            signature=signature,
            proven=len(covered) - len(failures),
            after_checkpoint=len(events) - len(covered),
            failures=tuple(failures),
        )

    def keep_subtrees(self, tenant: str) -> int:
        """Hash the tenant's log into the kept blocks proofs are made from, up to its head (as
        the first episode page would); how many blocks were added."""
        with self._subtrees_lock:
            return self._kept_subtrees(tenant).update(self.ledger, self.ledger.head(tenant))

    def _kept_subtrees(self, tenant: str) -> KeptSubtrees:
        kept = self._subtrees.get(tenant)
        if kept is None:
            kept = self._subtrees[tenant] = KeptSubtrees(
                self.tables / f"{tenant}.merkle-blocks", tenant
            )
        return kept

    def signature_status(self, note: str) -> str:
        if not self.verifier_keys:
            return "signature not checked: no verifier key is configured"
        try:
            open_checkpoint(note, self.verifier_keys)
        except CheckpointError as error:
            return f"signature failed: {error}"
        return "signature verified with " + ", ".join(key.name for key in self.verifier_keys)

    def checkpoints(self, tenant: str) -> Checkpoints:
        """The signed checkpoints an auditor can reach: those invoices were settled at, and
        the latest."""
        sizes = {
            self.invoice(tenant, invoice_id).ledger.size for invoice_id in self.invoice_ids(tenant)
        }
        notes: dict[int, str] = {}
        for size in sizes:
            note = self.ledger.checkpoint_at(tenant, size)
            if note is not None:
                notes[size] = note
        latest = self.ledger.latest_checkpoint(tenant)
        if latest is not None:
            notes[note_size_and_root(latest)[0]] = latest
        return Checkpoints(tenant, tuple(sorted(notes.items())))

    def close(self) -> None:
        self._closing.set()
        if self._warming is not None:
            self._warming.join()
        with self._lock:
            self._attached.clear()
            self._duck.close()
            self._keepers.clear()


def _failed_proofs(
    events: Sequence[StoredEvent], proofs: Sequence[list[bytes]], size: int, root: bytes
) -> list[str]:
    failures: list[str] = []
    for entry, proof in zip(events, proofs, strict=True):
        try:
            verify_inclusion(entry.leaf_hash, entry.log_index, size, proof, root)
        except ProofError as error:
            failures.append(f"entry {entry.log_index}: {error}")
    return failures


def note_size_and_root(note: str) -> tuple[int, bytes]:
    """The size and root a checkpoint note states (its signature is checked apart)."""
    import base64

    lines = note.split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        raise DashboardError("a stored checkpoint is not a checkpoint note")
    return int(lines[1]), base64.b64decode(lines[2], validate=True)


def _outcome_order(names: Sequence[str]) -> list[str]:
    """Outcome names in contract order (verdicts repeat a name once per gate), then unmatched
    and excluded, which the plan puts first."""
    order: list[str] = []
    for name in [*names[2:], names[1], names[0]]:
        if name not in order:
            order.append(name)
    return order
