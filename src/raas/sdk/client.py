"""`raas.Client`: record events from a synchronous program; a worker thread sends them in batches.

Memory is bounded: events wait in a queue of `queue_events_max`; when it is full a caller waits
(or gets QueueFullError, as configured) instead of the queue growing. A failed send is retried
with the same bytes, so the service stores each event once however often it arrives. Whatever is
queued is sent on `flush()`, `close()`, at the end of a `with` block and when the program exits.
"""

from __future__ import annotations

import atexit
import queue
import threading
import time
from types import TracebackType
from typing import Final, Unpack

import httpx

from raas.core.events import Event
from raas.sdk.conversation import Conversation
from raas.sdk.delivery import (
    ClientClosedError,
    ClientError,
    ClientStats,
    LimitOptions,
    Limits,
    QueueFullError,
    Tally,
    checked,
    encode_batch,
    post_batch,
    request_headers,
)

SOURCE_DEFAULT: Final = "urn:raas:sdk"
# How often an idle worker looks for a flush or a close: the longest a flush waits for it.
_POLL_SECONDS: Final = 0.05


class Client:
    """A synchronous raas client: `client.conversation(...)` gives the typed event helpers.

    with raas.Client("http://localhost:8000", api_key=KEY, tenant="acme") as client:
        chat = client.conversation("conv-1", customer="cust-9", intent="refund")
        chat.started("chat")
        chat.message("customer", "I was charged twice")
        chat.resolution_claimed()
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        tenant: str,
        source: str = SOURCE_DEFAULT,
        transport: httpx.BaseTransport | None = None,
        **limits: Unpack[LimitOptions],
    ) -> None:
        self.limits = Limits(**limits)
        self.tenant = tenant
        self.source = source
        self._tally = Tally()
        self._http = httpx.Client(
            base_url=url,
            headers=request_headers(api_key),
            timeout=self.limits.timeout_seconds,
            transport=transport,
        )
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=self.limits.queue_events_max)
        self._done = threading.Condition()
        self._flush_wanted = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._worker_error: BaseException | None = None
        self._worker = threading.Thread(target=self._run, name="raas-client", daemon=True)
        self._worker.start()
        atexit.register(self.close)

    @property
    def stats(self) -> ClientStats:
        """Events queued, accepted, found already stored, failed; batches and retries."""
        return self._tally.stats

    # -- recording ---------------------------------------------------------------------------

    def conversation(
        self, conversation: str, *, customer: str, intent: str | None = None
    ) -> Conversation[None]:
        """The typed event helpers for one conversation of one customer."""
        return Conversation(
            self.send,
            tenant=self.tenant,
            source=self.source,
            customer=customer,
            conversation=conversation,
            intent=intent,
        )

    def send(self, event: Event) -> None:
        """Check the event (EventError at once if the service would refuse it) and queue it."""
        if self._closed:
            raise ClientClosedError("this client is closed; events can no longer be sent")
        event = checked(event)
        limits = self.limits
        try:
            if limits.when_full == "raise":
                self._queue.put_nowait(event)
            else:
                self._queue.put(event, timeout=limits.block_timeout_seconds)
        except queue.Full:
            raise QueueFullError(
                f"{limits.queue_events_max:,} events are waiting to be sent; the service is "
                "slower than events arrive, or unreachable"
            ) from None
        with self._done:
            self._tally.stats.queued += 1

    # -- delivery ----------------------------------------------------------------------------

    def flush(self, timeout_seconds: float | None = None) -> None:
        """Send everything queued so far and wait for it; raises DeliveryError for events that
        were not delivered since the last flush, TimeoutError if they are still on their way."""
        tally = self._tally
        with self._done:
            target = tally.stats.queued
            self._flush_wanted.set()
            arrived = self._done.wait_for(
                lambda: tally.finished >= target or self._worker_stopped(),
                timeout_seconds,
            )
            if tally.finished >= tally.stats.queued:
                self._flush_wanted.clear()
            failure = tally.take_failure()
        if failure is not None:
            raise failure
        if tally.finished < target and self._worker_stopped():
            raise ClientError(
                f"{target - tally.finished:,} events not sent: the sending thread stopped "
                f"({self._worker_error!r})"
            )
        if not arrived:
            raise TimeoutError(
                f"{target - tally.finished:,} events still on their way after {timeout_seconds} s"
            )

    def close(self) -> None:
        """Flush, then stop the worker; raises DeliveryError as flush does. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.flush()
        finally:
            self._stopping.set()
            self._worker.join()
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _worker_stopped(self) -> bool:
        return self._worker_error is not None or not self._worker.is_alive()

    def _run(self) -> None:
        try:
            while True:
                batch = self._collect()
                if batch:
                    self._deliver(batch)
                elif self._stopping.is_set():
                    return
        except BaseException as error:
            # Never silently: a flush waiting for these events must wake and say so.
            self._worker_error = error
            with self._done:
                self._done.notify_all()
            raise

    def _collect(self) -> list[Event]:
        """Up to batch_events events: sent when full, when the first has waited the flush
        interval, or at once when a flush or close asks."""
        limits = self.limits
        batch: list[Event] = []
        deadline: float | None = None
        while len(batch) < limits.batch_events:
            if self._flush_wanted.is_set() or self._stopping.is_set():
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except queue.Empty:
                    return batch
            wait = _POLL_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return batch
            try:
                batch.append(self._queue.get(timeout=wait))
            except queue.Empty:
                if not batch:
                    return batch
                continue
            if deadline is None:
                deadline = time.monotonic() + limits.flush_interval_seconds
        return batch

    def _deliver(self, batch: list[Event]) -> None:
        outcome, retries = post_batch(self._http, encode_batch(batch), self.limits)
        with self._done:
            self._tally.record(len(batch), retries, outcome)
            self._done.notify_all()
