"""Ingest: validation at the boundary (bytes -> typed events, or every reason why not)."""

from raas.ingest.validate import BATCH_BYTES_MAX, BATCH_EVENTS_MAX, parse_batch, parse_event

__all__ = ["BATCH_BYTES_MAX", "BATCH_EVENTS_MAX", "parse_batch", "parse_event"]
