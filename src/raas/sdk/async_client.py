"""`raas.AsyncClient`: record events from asyncio code; a task sends them in batches.

The same bounds and guarantees as `raas.Client`: a bounded queue (awaiting room, or raising
QueueFullError), retries with the same bytes, flush on `aclose()` and at the end of `async with`.
If the program exits with events still queued and the loop gone, they are sent synchronously at
exit; a batch that was in flight is sent again, which the service stores once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Final, Unpack

import httpx

from raas.core.events import Event
from raas.sdk.client import SOURCE_DEFAULT
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
    post_batch_async,
    request_headers,
)

_AT_EXIT_TIMEOUT_SECONDS: Final = 10.0


class AsyncClient:
    """An asyncio raas client: `client.conversation(...)` gives the typed helpers, awaited.

    async with raas.AsyncClient(URL, api_key=KEY, tenant="acme") as client:
        chat = client.conversation("conv-1", customer="cust-9")
        await chat.started("voice")
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        tenant: str,
        source: str = SOURCE_DEFAULT,
        transport: httpx.AsyncBaseTransport | None = None,
        **limits: Unpack[LimitOptions],
    ) -> None:
        self.limits = Limits(**limits)
        self.tenant = tenant
        self.source = source
        self._tally = Tally()
        self._url = url
        self._api_key = api_key
        self._http = httpx.AsyncClient(
            base_url=url,
            headers=request_headers(api_key),
            timeout=self.limits.timeout_seconds,
            transport=transport,
        )
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=self.limits.queue_events_max)
        self._in_flight: list[Event] = []
        self._done: asyncio.Condition | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        atexit.register(self._at_exit)

    @property
    def stats(self) -> ClientStats:
        """Events queued, accepted, found already stored, failed; batches and retries."""
        return self._tally.stats

    # -- recording ---------------------------------------------------------------------------

    def conversation(
        self, conversation: str, *, customer: str, intent: str | None = None
    ) -> Conversation[Coroutine[Any, Any, None]]:
        """The typed event helpers for one conversation; each returns a coroutine to await."""
        return Conversation(
            self.send,
            tenant=self.tenant,
            source=self.source,
            customer=customer,
            conversation=conversation,
            intent=intent,
        )

    async def send(self, event: Event) -> None:
        """Check the event (EventError at once if the service would refuse it) and queue it."""
        if self._closed:
            raise ClientClosedError("this client is closed; events can no longer be sent")
        event = checked(event)
        self._start()
        limits = self.limits
        try:
            if limits.when_full == "raise":
                self._queue.put_nowait(event)
            else:
                await asyncio.wait_for(self._queue.put(event), limits.block_timeout_seconds)
        except (asyncio.QueueFull, TimeoutError):
            raise QueueFullError(
                f"{limits.queue_events_max:,} events are waiting to be sent; the service is "
                "slower than events arrive, or unreachable"
            ) from None
        self._tally.stats.queued += 1

    # -- delivery ----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Send everything queued so far and wait for it; raises DeliveryError for events that
        were not delivered since the last flush."""
        tally = self._tally
        if self._task is not None:
            done, wake = self._conditions()
            target = tally.stats.queued
            async with done:
                wake.set()
                await done.wait_for(lambda: tally.finished >= target or self._task_ended())
        failure = tally.take_failure()
        if failure is not None:
            raise failure
        task = self._task
        if task is not None and task.done() and tally.finished < tally.stats.queued:
            error = None if task.cancelled() else task.exception()
            raise ClientError(
                f"{tally.stats.queued - tally.finished:,} events not sent: the sending task "
                f"stopped ({error!r})"
            )

    async def aclose(self) -> None:
        """Flush, then stop the sending task; raises DeliveryError as flush does."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._at_exit)
        try:
            await self.flush()
        finally:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _conditions(self) -> tuple[asyncio.Condition, asyncio.Event]:
        if self._done is None or self._wake is None:
            self._done, self._wake = asyncio.Condition(), asyncio.Event()
        return self._done, self._wake

    def _start(self) -> None:
        if self._task is None:
            self._conditions()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="raas-client")

    def _task_ended(self) -> bool:
        return self._task is None or self._task.done()

    async def _run(self) -> None:
        try:
            while True:
                batch = await self._collect()
                self._in_flight = batch
                await self._deliver(batch)
                self._in_flight = []
        except Exception:
            # Never silently: a flush waiting for these events must wake and say so.
            done, _wake = self._conditions()
            async with done:
                done.notify_all()
            raise

    async def _collect(self) -> list[Event]:
        limits = self.limits
        _done, wake = self._conditions()
        batch = [await self._queue.get()]
        deadline = time.monotonic() + limits.flush_interval_seconds
        while len(batch) < limits.batch_events:
            if wake.is_set():
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Whichever comes first: the next event, a flush, or the end of the interval.
            getter = asyncio.ensure_future(self._queue.get())
            waker = asyncio.ensure_future(wake.wait())
            finished, _pending = await asyncio.wait(
                {getter, waker}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            waker.cancel()
            if getter in finished:
                batch.append(getter.result())
            else:
                getter.cancel()
                # A get that completed while being cancelled must not lose its event.
                if getter.done() and not getter.cancelled():
                    batch.append(getter.result())
        return batch

    async def _deliver(self, batch: list[Event]) -> None:
        outcome, retries = await post_batch_async(self._http, encode_batch(batch), self.limits)
        self._tally.record(len(batch), retries, outcome)
        done, wake = self._conditions()
        async with done:
            if self._queue.empty():
                wake.clear()
            done.notify_all()

    def _at_exit(self) -> None:
        """The loop is gone: send what is left (in flight and queued) on a plain HTTP client."""
        events = list(self._in_flight)
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        if not events:
            return
        limits = self.limits
        with httpx.Client(
            base_url=self._url,
            headers=request_headers(self._api_key),
            timeout=min(limits.timeout_seconds, _AT_EXIT_TIMEOUT_SECONDS),
        ) as http:
            for start in range(0, len(events), limits.batch_events):
                batch = events[start : start + limits.batch_events]
                outcome, retries = post_batch(http, encode_batch(batch), limits)
                self._tally.record(len(batch), retries, outcome)
