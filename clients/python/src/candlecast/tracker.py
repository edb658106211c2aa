"""The bookkeeping behind :meth:`AsyncClient.live_bars`, kept free of I/O so it can be tested on its own.

A tracker follows one (symbol, interval). It remembers the newest closed bar it let through and the recent
closed bars by open time, and decides what each incoming bar is:

- a closed bar newer than the last one: ``closed`` (exactly once per open time);
- a closed bar or correction for an open time already let through: a ``correction`` if its values differ
  (a bar with the same open time replaces the earlier one), nothing if it is the same bar again (the
  repeats a reconnect or a hand-over produces);
- a forming bar: ``forming``, unless its bucket has already closed (a stale state).

It also says which closed bars are missing before an incoming one (:meth:`BarTracker.gap_before`), so the
client fetches them before letting the newer bar through: after a reconnect, closed bars come out
contiguous and in order.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

from .models import Bar, UpdateKind


class BarTracker:
    def __init__(self, interval_ms: int, last_closed: Optional[int] = None, memory: int = 1024):
        self.interval_ms = interval_ms
        #: Open time of the newest closed bar let through (None: nothing yet).
        self.last_closed = last_closed
        self._memory = memory
        self._seen: OrderedDict[int, Bar] = OrderedDict()

    def prime(self, bar: Bar) -> None:
        """Takes ``bar`` as already known (the starting point), without reporting it."""
        self._remember(bar)
        if self.last_closed is None or bar.timestamp > self.last_closed:
            self.last_closed = bar.timestamp

    def gap_before(self, bar: Bar) -> Optional[tuple[int, int]]:
        """The open times ``[start, end)`` of closed bars missing before the closed bar ``bar``, if any."""
        if not (bar.closed or bar.correction) or self.last_closed is None:
            return None
        expected = self.last_closed + self.interval_ms
        if bar.timestamp > expected:
            return (expected, bar.timestamp)
        return None

    def apply(self, bar: Bar) -> Optional[UpdateKind]:
        """What ``bar`` is for the consumer, or None when it brings nothing new."""
        if not (bar.closed or bar.correction):
            if self.last_closed is not None and bar.timestamp <= self.last_closed:
                return None
            return "forming"
        if self.last_closed is None or bar.timestamp > self.last_closed:
            self._remember(bar)
            self.last_closed = bar.timestamp
            return "closed"
        earlier = self._seen.get(bar.timestamp)
        if earlier is not None and earlier.same_values(bar):
            return None
        self._remember(bar)
        return "correction"

    def _remember(self, bar: Bar) -> None:
        self._seen[bar.timestamp] = bar
        self._seen.move_to_end(bar.timestamp)
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)
