"""The embedded ledger's index of idempotency-key hashes: kept on disk in append order, looked up
in memory.

A unique SQLite index on the 64-bit key hashes took random inserts: past a few hundred thousand
events a batch of 5,000 dirtied nearly every page of it, so at a million events each commit
wrote ~20 MiB of WAL, and ingest with a parsing worker fell from ~135,000 to 45,000-55,000
events/s past 800,000 events, lower as the ledger grew. Here a batch's (key hash, position)
pairs go to the end of the `key_blocks` table in seq order (a block or two a commit, whatever
the ledger's size), and lookups go to a sorted copy in memory (16 bytes an event), read from
the blocks when first needed and kept up to date commit by commit, other processes' commits
included.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from raas.errors import StoreError

if TYPE_CHECKING:
    import numpy as np

# NumPy is imported where it is first used, not with the module: commands that never write to
# or look keys up in a ledger start without it.

# Pairs a row of `key_blocks` holds: 64 KiB of (key hash, position), little-endian int64 each.
KEY_BLOCK_PAIRS: Final = 4096
_PAIR_BYTES: Final = 16
# Recent pairs (a dict) are merged into the sorted arrays once a 16th as many as these hold have
# come, at least _MIN and at most _MAX: a merge copies the arrays, so it waits until the copy is
# cheap per pair, and the dict (~100 bytes a pair) stays small.
_MERGE_PAIRS_MIN: Final = 1 << 17
_MERGE_PAIRS_MAX: Final = 1 << 20

KEY_BLOCKS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS key_blocks (
    block INTEGER PRIMARY KEY,
    pairs BLOB NOT NULL
)"""
_MAX_SEQ: Final = "SELECT value FROM meta WHERE name = 'max_seq'"


class KeyIndex:
    """Where the event under each key hash is stored (hash -> position), for seqs 1 to `_known`.

    Pairs up to `_merged` are in the sorted arrays; later ones in `_recent`, with their hashes
    in seq order in `_recent_order`, so that the pairs of an append that was rolled back can be
    taken out. Pairs up to `_committed` are known to be committed; those after it were staged
    by this process's append in the open transaction.

    Not thread-safe: the ledger calls it under its writer lock.
    """

    def __init__(self) -> None:
        self._hashes: np.ndarray | None = None  # with _positions, made by the first `begin`
        self._positions: np.ndarray | None = None
        self._merged = 0
        self._recent: dict[int, int] = {}
        self._recent_order: list[int] = []
        self._known = 0
        self._committed = 0

    def begin(self, connection: sqlite3.Connection) -> None:
        """Catch up with the file at the start of a write transaction (or, under the writer
        lock, outside one): what this process staged and did not see committed is dropped, and
        what is committed and not yet here is read from the blocks."""
        import numpy as np

        if self._hashes is None:
            self._hashes = self._positions = np.empty(0, np.int64)
        self._forget_after(self._committed)
        max_seq = _max_seq(connection)
        if max_seq < self._known:
            raise StoreError(
                f"the ledger holds {max_seq} events, fewer than the {self._known} whose keys were "
                "read from it before: was the file replaced while it was open?"
            )
        if max_seq > self._known:
            hashes, positions = read_pairs(connection, self._known, max_seq)
            if hashes.size < _MERGE_PAIRS_MIN:
                self._add(hashes.tolist(), positions.tolist())
            else:  # a file opened, or far behind: sorted in as arrays, not through the dict
                self._merge()
                self._merge_sorted(hashes, positions)
                self._known = self._merged = max_seq
        self._committed = self._known
        if len(self._recent) >= min(
            max(self._hashes.size // 16, _MERGE_PAIRS_MIN), _MERGE_PAIRS_MAX
        ):
            self._merge()

    def rewind(self, connection: sqlite3.Connection) -> None:
        """Drop the staged pairs a `ROLLBACK TO` took back out of the open transaction."""
        self._forget_after(_max_seq(connection))

    def committed(self) -> None:
        """The open transaction committed: what it staged is now stored for good."""
        self._committed = self._known

    def find(self, hashes: Sequence[int]) -> dict[int, int]:
        """The position of each of `hashes` that is stored (or staged); after `begin`."""
        import numpy as np

        assert self._hashes is not None and self._positions is not None, "begin came first"
        found = {key_hash: self._recent[key_hash] for key_hash in self._recent.keys() & hashes}
        if self._hashes.size and hashes:
            wanted = np.array(hashes, dtype=np.int64)
            at = np.searchsorted(self._hashes, wanted)
            at[at == self._hashes.size] = 0
            hits = np.flatnonzero(self._hashes[at] == wanted)
            found.update(
                zip(wanted[hits].tolist(), self._positions[at[hits]].tolist(), strict=True)
            )
        return found

    def position_of(self, key_hash: int) -> int | None:
        return self.find([key_hash]).get(key_hash)

    def append(
        self,
        connection: sqlite3.Connection,
        seq_before: int,
        hashes: Sequence[int],
        positions: Sequence[int],
    ) -> None:
        """Write the pairs of seqs seq_before+1... to the blocks in the open transaction, and
        stage them here. `seq_before` is the file's max_seq in that transaction."""
        import numpy as np

        if seq_before < self._committed:
            raise StoreError(
                f"appending after seq {seq_before}, but seqs up to {self._committed} are "
                "committed: was the file replaced while it was open?"
            )
        self._forget_after(seq_before)
        if seq_before != self._known:
            # Not caught up (begin was not called): the pairs in between are not here.
            raise StoreError(f"the key index knows seqs up to {self._known}, not {seq_before}")
        pairs = np.empty((len(hashes), 2), np.int64)
        pairs[:, 0] = hashes
        pairs[:, 1] = positions
        data = pairs.astype("<i8", copy=False).tobytes()
        first_block, kept = divmod(seq_before, KEY_BLOCK_PAIRS)
        if kept:
            row = connection.execute(
                "SELECT pairs FROM key_blocks WHERE block = ?", (first_block,)
            ).fetchone()
            if row is None or len(row[0]) != kept * _PAIR_BYTES:
                raise StoreError(
                    f"the key block {first_block} should hold {kept} pairs; run `raas ledger check`"
                )
            data = bytes(row[0]) + data
        block_bytes = KEY_BLOCK_PAIRS * _PAIR_BYTES
        connection.executemany(
            "INSERT OR REPLACE INTO key_blocks (block, pairs) VALUES (?, ?)",
            [
                (first_block + offset // block_bytes, data[offset : offset + block_bytes])
                for offset in range(0, len(data), block_bytes)
            ],
        )
        self._add(list(hashes), list(positions))

    def _add(self, hashes: list[int], positions: list[int]) -> None:
        self._recent.update(zip(hashes, positions, strict=True))
        self._recent_order.extend(hashes)
        self._known += len(hashes)

    def _forget_after(self, seq: int) -> None:
        if seq >= self._known:
            return
        if seq < self._merged:
            raise StoreError(
                f"the key index would go back to seq {seq}, before the {self._merged} it has "
                "merged: was the file replaced while it was open?"
            )
        dropped = self._recent_order[seq - self._merged :]
        del self._recent_order[seq - self._merged :]
        for key_hash in dropped:
            del self._recent[key_hash]
        self._known = seq
        self._committed = min(self._committed, seq)

    def _merge(self) -> None:
        """Move the recent pairs into the sorted arrays (all of them must be committed)."""
        import numpy as np

        if self._recent_order:
            hashes = np.array(self._recent_order, dtype=np.int64)
            positions = np.array(
                list(map(self._recent.__getitem__, self._recent_order)), dtype=np.int64
            )
            self._merge_sorted(hashes, positions)
            self._recent.clear()
            self._recent_order.clear()
        self._merged = self._known

    def _merge_sorted(self, hashes: np.ndarray, positions: np.ndarray) -> None:
        import numpy as np

        assert self._hashes is not None and self._positions is not None
        order = np.argsort(hashes)
        hashes, positions = hashes[order], positions[order]
        if self._hashes.size == 0:
            self._hashes, self._positions = hashes, positions
            return
        at = np.searchsorted(self._hashes, hashes)
        self._hashes = np.insert(self._hashes, at, hashes)
        self._positions = np.insert(self._positions, at, positions)


def read_pairs(
    connection: sqlite3.Connection, after: int, until: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (hashes, positions) of seqs after+1..until, read from the blocks; StoreError if the
    blocks do not hold them all."""
    import numpy as np

    first = after // KEY_BLOCK_PAIRS
    last = (until - 1) // KEY_BLOCK_PAIRS
    parts: list[bytes] = []
    for number, (block, data) in enumerate(
        connection.execute(
            "SELECT block, pairs FROM key_blocks WHERE block >= ? AND block <= ? ORDER BY block",
            (first, last),
        ),
        start=first,
    ):
        full = block < last
        if (
            block != number
            or len(data) % _PAIR_BYTES
            or (full and len(data) != KEY_BLOCK_PAIRS * _PAIR_BYTES)
        ):
            raise StoreError(
                f"the key block {number} is missing or cut short; run `raas ledger check`"
            )
        parts.append(bytes(data))
    pairs = np.frombuffer(b"".join(parts), dtype="<i8").reshape(-1, 2)
    start = after - first * KEY_BLOCK_PAIRS
    if pairs.shape[0] < until - first * KEY_BLOCK_PAIRS:
        raise StoreError(
            f"the key blocks hold {first * KEY_BLOCK_PAIRS + pairs.shape[0]} pairs, fewer than "
            f"the {until} events stored; run `raas ledger check`"
        )
    taken = pairs[start : until - first * KEY_BLOCK_PAIRS]
    return taken[:, 0].astype(np.int64), taken[:, 1].astype(np.int64)


def fill_key_blocks(connection: sqlite3.Connection) -> None:
    """Write the blocks from the events' own key hashes, in seq order (a file made before the
    blocks existed), inside the caller's transaction."""
    import numpy as np

    connection.execute(KEY_BLOCKS_TABLE)
    connection.execute("DELETE FROM key_blocks")
    block = 0
    rows = connection.execute("SELECT key_hash, position FROM events ORDER BY seq")
    while chunk := rows.fetchmany(KEY_BLOCK_PAIRS):
        pairs = np.array(chunk, dtype="<i8")
        connection.execute(
            "INSERT INTO key_blocks (block, pairs) VALUES (?, ?)", (block, pairs.tobytes())
        )
        block += 1


def _max_seq(connection: sqlite3.Connection) -> int:
    return int(connection.execute(_MAX_SEQ).fetchone()[0])
