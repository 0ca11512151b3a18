"""Event files (a JSON array, or NDJSON) of any size, cut into batches the ledger accepts.

A file is validated whole before anything of it is stored, then appended batch by batch; each
batch is atomic and appends are idempotent, so running the same file again after an
interruption stores exactly what was missing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

from raas.errors import BatchRejected, EventError
from raas.ingest.validate import BATCH_BYTES_MAX, BATCH_EVENTS_MAX, parse_batch
from raas.ledger.sqlite import SqliteLedger
from raas.ledger.store import AppendReceipt, LedgerStore

# From this many batches on, a file's second parse goes to a worker process while this one
# writes (SqliteLedger.append_parsed): starting the worker costs about half a second.
WORKER_BATCHES_MIN = 20

_raw_items: msgspec.json.Decoder[list[msgspec.Raw]] = msgspec.json.Decoder(list[msgspec.Raw])


def is_ndjson(path: Path) -> bool:
    return path.suffix in {".ndjson", ".jsonl"}


def file_batches(body: bytes, *, ndjson: bool) -> Iterator[tuple[int, bytes]]:
    """(index of the first event, batch body) for each batch of at most BATCH_EVENTS_MAX events."""
    if not ndjson:
        try:
            items = _raw_items.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            # Let the batch parser say exactly what is wrong with the document.
            yield 0, body
            return
        for start in range(0, max(len(items), 1), BATCH_EVENTS_MAX):
            chunk = items[start : start + BATCH_EVENTS_MAX]
            yield start, b"[" + b",".join(bytes(item) for item in chunk) + b"]"
        return
    lines = [line for line in body.splitlines() if line.strip()]
    start = 0
    while start < len(lines):
        end, size = start, 0
        while end < len(lines) and end - start < BATCH_EVENTS_MAX:
            if size + len(lines[end]) + 1 > BATCH_BYTES_MAX and end > start:
                break
            size += len(lines[end]) + 1
            end += 1
        yield start, b"\n".join(lines[start:end])
        start = end


def ingest_file(ledger: LedgerStore, path: Path) -> AppendReceipt:
    """Validate the whole file, then append it; raises BatchRejected naming every bad event.

    Into SQLite, a file of WORKER_BATCHES_MIN batches or more is parsed again and made ready in
    a worker process while this one writes and commits, where the machine has a second core.
    """
    body = path.read_bytes()
    ndjson = is_ndjson(path)
    errors: list[EventError] = []
    batches = 0
    for offset, batch in file_batches(body, ndjson=ndjson):
        batches += 1
        try:
            parse_batch(batch, ndjson=ndjson)
        except BatchRejected as rejected:
            errors += [_shifted(error, offset) for error in rejected.errors]
    if errors:
        raise BatchRejected(errors)
    stored = duplicates = 0
    logs = {}
    bodies = (batch for _offset, batch in file_batches(body, ndjson=ndjson))
    parse = functools.partial(parse_batch, ndjson=ndjson)
    if (
        isinstance(ledger, SqliteLedger)
        and batches >= WORKER_BATCHES_MIN
        and (os.cpu_count() or 1) > 1
    ):
        receipts = ledger.append_parsed(bodies, parse, processes=1)
    else:
        # As a stream: a store may parse and prepare each batch while the one before commits.
        receipts = ledger.append_batches(map(parse, bodies))
    for receipt in receipts:
        stored += receipt.stored
        duplicates += receipt.duplicates
        logs.update(receipt.logs)
    return AppendReceipt(stored=stored, duplicates=duplicates, logs=logs)


def _shifted(error: EventError, offset: int) -> EventError:
    if error.index is None or offset == 0:
        return error
    return EventError(error.event_id, error.field, error.reason, error.index + offset)
