"""Event files (a JSON array, or NDJSON) of any size, cut into batches the ledger accepts.

A file is validated whole before anything of it is stored, then appended batch by batch; each
batch is atomic and appends are idempotent, so running the same file again after an
interruption stores exactly what was missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from raas.errors import BatchRejected, EventError
from raas.ingest.validate import BATCH_BYTES_MAX, BATCH_EVENTS_MAX, parse_batch
from raas.ledger.store import AppendReceipt, LedgerStore

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
    """Validate the whole file, then append it; raises BatchRejected naming every bad event."""
    body = path.read_bytes()
    ndjson = is_ndjson(path)
    errors: list[EventError] = []
    for offset, batch in file_batches(body, ndjson=ndjson):
        try:
            parse_batch(batch, ndjson=ndjson)
        except BatchRejected as rejected:
            errors += [_shifted(error, offset) for error in rejected.errors]
    if errors:
        raise BatchRejected(errors)
    stored = duplicates = 0
    logs = {}
    # As a stream: a store may parse and prepare each batch while the one before commits.
    parsed = (
        parse_batch(batch, ndjson=ndjson) for _offset, batch in file_batches(body, ndjson=ndjson)
    )
    for receipt in ledger.append_batches(parsed):
        stored += receipt.stored
        duplicates += receipt.duplicates
        logs.update(receipt.logs)
    return AppendReceipt(stored=stored, duplicates=duplicates, logs=logs)


def _shifted(error: EventError, offset: int) -> EventError:
    if error.index is None or offset == 0:
        return error
    return EventError(error.event_id, error.field, error.reason, error.index + offset)
