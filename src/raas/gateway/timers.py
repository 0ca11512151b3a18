"""A timer for deadlines that move with activity: it is set again only when it fires or when a
deadline comes before the time it is set for, not once per request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DeadlineTimer:
    """Calls `check` by the earliest time it was asked for with `by` since it last fired; `check`
    looks at its deadlines and asks again for the next one. Asking for a later time than the
    timer is set for costs nothing: a timer made and cancelled twice per request cost more than
    the rest of a connection's work."""

    __slots__ = ("_check", "_handle", "_loop", "at")

    def __init__(self, loop: asyncio.AbstractEventLoop, check: Callable[[], None]) -> None:
        self._loop = loop
        self._check = check
        self._handle: asyncio.TimerHandle | None = None
        self.at = 0.0  # loop time it fires at, while set

    def by(self, when: float) -> None:
        """Fire by `when` (loop time)."""
        handle = self._handle
        if handle is None or self.at > when:
            if handle is not None:
                handle.cancel()
            self.at = when
            self._handle = self._loop.call_at(when, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._check()
