"""The vendor's figures kept current as the ledger grows: one contract's grouped figures over an
episode table, the latency histogram and the newest failed reviews, kept in a small file beside
the table.

A full grouping of a million-episode table takes about a second, so it is done once per table
(and contract); after that, each update of the table tells which rows it takes away and which it
adds (`raas.engine.episode_table.RowsWatcher`, inside the update's transaction), and the kept
sums subtract the figures of the first and add those of the second: a few hundred rows for a
growth of a few hundred conversations, however large the table. The sums are exactly those of
a full grouping of the table at its new state (integers and decimals, no floats); kept sums of
another state than the table's are never used: the table is grouped in full again.

The review queue (failed reviews, newest first) is kept the same way, as every failed review
from the newest down to a bound: an episode that enters above the bound is added, one that
leaves is taken away, and the table is asked again only when fewer than a queue's worth are
left above the bound.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NamedTuple

import duckdb
import msgspec

from raas.engine.episode_table import EPISODE_TABLE_FORMAT

# Changes whenever what the kept file means changes; a file of another format is not read.
KEPT_FORMAT: Final = "3"
LATENCY_QUANTILE: Final = 0.95
# The review queue shows this many failed reviews; this many are kept (and up to twice as
# many before the oldest are let go), so that episodes leaving seldom empty what is kept.
REVIEW_QUEUE_MAX: Final = 50
REVIEW_KEPT: Final = 200

GroupKey = tuple[str, int, bool, str]  # day (ISO, contract zone), verdict, handed off, tiers
# A failed review in the queue's order (started_at DESC, id): minus its start in microseconds
# since the epoch, its id, its intent.
ReviewKey = tuple[int, str, str]


class GroupSums(NamedTuple):
    episodes: int
    csat_total: int
    csat_answers: int
    model_cost: Decimal


class FailedReview(NamedTuple):
    episode: str
    intent: str
    started_at: datetime  # UTC


class KeptTotals(NamedTuple):
    """The figures' groups, the p95 latency and the newest failed reviews (at most
    REVIEW_QUEUE_MAX, newest first) of the episode table at `size`; whether the groups were
    grouped in full from the table just now (`full`)."""

    groups: dict[GroupKey, GroupSums]
    latency_p95_ms: int | None
    size: int
    last_leaf: str
    full: bool
    reviews: tuple[FailedReview, ...] = ()


class _KeptFile(msgspec.Struct, frozen=True):
    """The file: the signature of what was grouped, the table state, the sums."""

    signature: str
    size: int
    last_leaf: str
    groups: list[tuple[str, int, bool, str, int, int, int, str]]  # the cost as written
    latencies: list[tuple[int, int]]  # (milliseconds, episodes)
    reviews: list[tuple[int, str, str]] | None  # ReviewKey, in order; None: ask the table
    review_bound: tuple[int, str, str] | None


class _Sums:
    """Groups, latency histogram and failed reviews, added to and taken from."""

    def __init__(self) -> None:
        self.groups: dict[GroupKey, GroupSums] = {}
        self.latencies: Counter[int] = Counter()
        # Every failed review at or above `review_bound` in the queue's order (None: every
        # failed review of the table); None as a whole when they must be asked for again.
        self.reviews: set[ReviewKey] | None = set()
        self.review_bound: ReviewKey | None = None

    def copy(self) -> _Sums:
        other = _Sums()
        other.groups = dict(self.groups)
        other.latencies = Counter(self.latencies)
        other.reviews = None if self.reviews is None else set(self.reviews)
        other.review_bound = self.review_bound
        return other

    def set_reviews(self, newest: Sequence[ReviewKey]) -> None:
        """The newest failed reviews of the table, in order, as the table gave at most
        REVIEW_KEPT of them."""
        self.reviews = set(newest)
        self.review_bound = newest[-1] if len(newest) >= REVIEW_KEPT else None

    def fold_reviews(self, keys: Iterable[ReviewKey], sign: int) -> None:
        """Failed reviews added (sign 1) or taken away (-1); those below the bound are not
        kept. When fewer than a queue's worth are left above a bound, what is kept no longer
        says which come next: asked for again (`reviews` None)."""
        if self.reviews is None:
            return
        bound = self.review_bound
        for key in keys:
            if bound is None or key <= bound:
                if sign > 0:
                    self.reviews.add(key)
                else:
                    self.reviews.discard(key)
        if bound is not None and len(self.reviews) < REVIEW_QUEUE_MAX:
            self.reviews = None
        elif len(self.reviews) > 2 * REVIEW_KEPT:
            self.set_reviews(sorted(self.reviews)[:REVIEW_KEPT])

    def newest_reviews(self) -> tuple[FailedReview, ...]:
        assert self.reviews is not None
        return tuple(
            FailedReview(episode, intent, _EPOCH + timedelta(microseconds=-minus))
            for minus, episode, intent in sorted(self.reviews)[:REVIEW_QUEUE_MAX]
        )

    def fold_groups(self, rows: Iterable[Sequence[Any]], sign: int) -> None:
        """Add (sign 1) or take away (-1) grouped rows (day, verdict, handed off, tiers,
        episodes, CSAT total, CSAT answers, model cost). Each partial sum is of real episodes
        (all taken away were added before), so a group of no episodes sums to nothing."""
        groups = self.groups
        for day, verdict, handed_off, tiers, episodes, total, answers, cost in rows:
            key = (_day(day), int(verdict), bool(handed_off), str(tiers))
            old = groups.get(key, GroupSums(0, 0, 0, Decimal(0)))
            new = GroupSums(
                old.episodes + sign * int(episodes),
                old.csat_total + sign * int(total),
                old.csat_answers + sign * int(answers),
                old.model_cost + sign * Decimal(cost),
            )
            if new.episodes:
                groups[key] = new
            else:
                groups.pop(key, None)

    def fold_latencies(self, rows: Iterable[Sequence[Any]], sign: int) -> None:
        latencies = self.latencies
        for latency, count in rows:
            value = int(latency)
            latencies[value] += sign * int(count)
            if latencies[value] == 0:
                del latencies[value]


class FigureKeeper:
    """One contract's sums over one episode table, kept in the file at `path`.

    `totals` gives the sums of the table a connection reads, grouped in full unless those kept
    are of its state; `watch` gives the watcher for an update of the table, whose sums become
    the kept ones by `advance` once the update is committed."""

    def __init__(self, path: Path, verdict_sql: str, time_zone: str) -> None:
        self.path = path
        self.signature = hashlib.sha256(
            "\n".join((KEPT_FORMAT, EPISODE_TABLE_FORMAT, verdict_sql, time_zone)).encode()
        ).hexdigest()
        zone = time_zone.replace("'", "''")
        day = f"CAST(timezone('{zone}', started_at) AS DATE)"
        self._groups_sql = (
            f"SELECT {day} AS day, {verdict_sql} AS verdict, handed_off, tiers, "
            "count(*) AS episodes, coalesce(sum(csat), 0) AS csat_total, "
            "count(csat) AS csat_answers, coalesce(sum(model_cost), 0) AS model_cost "
            "FROM episodes GROUP BY ALL"
        )
        self._latency_sql = (
            "SELECT latency_ms_max AS latency_ms, count(*) AS episodes FROM episodes "
            "WHERE model_calls > 0 AND latency_ms_max IS NOT NULL GROUP BY ALL"
        )
        self._reviews_sql = (
            "SELECT -epoch_us(started_at), id, intent FROM episodes WHERE review_passed = false "
            f"ORDER BY started_at DESC, id, intent LIMIT {REVIEW_KEPT}"
        )
        # What one row adds, as the groupings above count it.
        self.expressions: tuple[str, ...] = (
            day,
            f"({verdict_sql})",
            "handed_off",
            "tiers",
            "csat",
            "model_cost",
            "CASE WHEN model_calls > 0 THEN latency_ms_max END",
            "CASE WHEN review_passed = false THEN -epoch_us(started_at) END",
            "id",
            "intent",
        )
        self._state: tuple[int, str] | None = None
        self._sums = _Sums()
        self._loaded = False

    @property
    def state(self) -> tuple[int, str] | None:
        """The table state (size, last leaf) the kept sums are of, if any."""
        self._load()
        return self._state

    def totals(self, connection: duckdb.DuckDBPyConnection) -> KeptTotals:
        """The sums of the episode table that `connection` reads (its default database): the
        kept ones when they are of the table's state, else grouped in full and kept."""
        row = connection.execute("SELECT size, last_leaf FROM episode_table").fetchone()
        assert row is not None, "the episode table holds no state"
        state = (int(row[0]), str(row[1]))
        full = self.state != state
        if full:
            sums = _Sums()
            sums.fold_groups(connection.execute(self._groups_sql).fetchall(), +1)
            sums.fold_latencies(connection.execute(self._latency_sql).fetchall(), +1)
            sums.set_reviews(self._newest_reviews(connection))
            self._keep(state, sums)
        elif self._sums.reviews is None:
            # Too few failed reviews left above the bound: the table's newest, kept along.
            sums = self._sums.copy()
            sums.set_reviews(self._newest_reviews(connection))
            self._keep(state, sums)
        return KeptTotals(
            dict(self._sums.groups),
            _quantile(self._sums.latencies),
            state[0],
            state[1],
            full,
            self._sums.newest_reviews(),
        )

    def _newest_reviews(self, connection: duckdb.DuckDBPyConnection) -> list[ReviewKey]:
        return [
            (int(minus), str(episode), str(intent))
            for minus, episode, intent in connection.execute(self._reviews_sql).fetchall()
        ]

    def watch(self, size: int, last_leaf: str) -> FigureWatch | None:
        """A watcher for an update of the table from (size, last leaf): None when the sums
        kept are of another state (they are grouped in full when next asked for)."""
        if self.state != (size, last_leaf):
            return None
        return FigureWatch(self, (size, last_leaf), self._sums.copy())

    def advance(self, watch: FigureWatch, size: int, last_leaf: str) -> bool:
        """Keep the sums `watch` followed, as those of the table at (size, last leaf) now that
        the update is committed; False (and nothing kept) when the kept sums moved since."""
        if self.state != watch.start:
            return False
        self._keep((size, last_leaf), watch.sums)
        return True

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            kept = msgspec.json.decode(self.path.read_bytes(), type=_KeptFile)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return  # none, or not one this version reads: grouped in full when asked for
        if kept.signature != self.signature:
            return
        sums = _Sums()
        sums.fold_groups(
            (
                (day, verdict, handed, tiers, n, total, answers, Decimal(cost))
                for day, verdict, handed, tiers, n, total, answers, cost in kept.groups
            ),
            +1,
        )
        sums.fold_latencies(kept.latencies, +1)
        if kept.reviews is None:
            sums.reviews = None
        else:
            sums.reviews = {(minus, episode, intent) for minus, episode, intent in kept.reviews}
            sums.review_bound = kept.review_bound
        self._state, self._sums = (kept.size, kept.last_leaf), sums

    def _keep(self, state: tuple[int, str], sums: _Sums) -> None:
        """Make `sums` the kept ones, of `state`: in memory, and in the file (written whole
        beside it and moved over it, so a crash leaves the old file or the new one)."""
        self._state, self._sums = state, sums
        kept = _KeptFile(
            self.signature,
            state[0],
            state[1],
            [(*key, *value[:3], str(value.model_cost)) for key, value in sums.groups.items()],
            list(sums.latencies.items()),
            None if sums.reviews is None else sorted(sums.reviews),
            sums.review_bound,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writing = self.path.with_name(self.path.name + ".writing")
        writing.write_bytes(msgspec.json.encode(kept))
        os.replace(writing, self.path)


class FigureWatch:
    """One update's watcher for a keeper: the kept sums, with the rows the update takes away
    subtracted and those it adds added (`raas.engine.episode_table.RowsWatcher`)."""

    def __init__(self, keeper: FigureKeeper, start: tuple[int, str], sums: _Sums) -> None:
        self.keeper = keeper
        self.start = start
        self.sums = sums

    @property
    def expressions(self) -> Sequence[str]:
        return self.keeper.expressions

    def rows(self, values: Sequence[Sequence[Any]], sign: int) -> None:
        """Rows' (day, verdict, handed off, tiers, CSAT, model cost, latency of an episode
        with model calls, ReviewKey of a failed review) added (sign 1) or taken away (-1)."""
        groups: dict[tuple[Any, ...], list[Any]] = {}
        latencies: Counter[int] = Counter()
        reviews: list[ReviewKey] = []
        for day, verdict, handed_off, tiers, csat, cost, latency, failed, episode, intent in values:
            if failed is not None:
                reviews.append((int(failed), str(episode), str(intent)))
            sums = groups.setdefault((day, verdict, handed_off, tiers), [0, 0, 0, Decimal(0)])
            sums[0] += 1
            if csat is not None:
                sums[1] += int(csat)
                sums[2] += 1
            if cost is not None:
                sums[3] += Decimal(cost)
            if latency is not None:
                latencies[int(latency)] += 1
        self.sums.fold_groups([(*key, *sums) for key, sums in groups.items()], sign)
        self.sums.fold_latencies(latencies.items(), sign)
        self.sums.fold_reviews(reviews, sign)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _day(value: date | str) -> str:
    return value if isinstance(value, str) else value.isoformat()


def _quantile(histogram: Counter[int]) -> int | None:
    """The discrete quantile as DuckDB's `quantile_disc` gives it: the value at position
    ceil(n * q) (from 1, q a double as there) of the sorted values."""
    count = sum(histogram.values())
    if not count:
        return None
    position = max(1, math.ceil(count * LATENCY_QUANTILE))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= position:
            return value
    raise AssertionError("unreachable: the positions add up to the count")
