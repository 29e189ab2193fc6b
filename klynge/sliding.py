"""Counts of recent events per key in a sliding window (rate limits: logins, carpool posts).

Stale keys are swept once per window, so a stream of made-up keys (addresses, usernames)
cannot grow memory without end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class SlidingCounts:
    """Event times per key over the last `window` seconds."""

    def __init__(self, window: float, now: float) -> None:
        self.window = window
        self._times: dict[str, deque[float]] = {}
        self._swept = now

    def __len__(self) -> int:
        """Return how many keys have events on record."""
        return len(self._times)

    def count(self, key: str, now: float) -> int:
        """Return how many events `key` had in the window ending at `now`."""
        times = self._times.get(key)
        if times is None:
            return 0
        cutoff = now - self.window
        while times and times[0] < cutoff:
            times.popleft()
        if not times:
            del self._times[key]
        return len(times)

    def add(self, keys: Iterable[str], now: float) -> None:
        """Record one event at `now` for each key."""
        if now - self._swept >= self.window:
            cutoff = now - self.window
            self._times = {k: t for k, t in self._times.items() if t and t[-1] >= cutoff}
            self._swept = now
        for key in keys:
            self._times.setdefault(key, deque()).append(now)

    def forget(self, key: str) -> None:
        """Drop every event of `key`."""
        self._times.pop(key, None)

    def take_back(self, key: str) -> None:
        """Drop the latest event of `key`, if any."""
        times = self._times.get(key)
        if times:
            times.pop()
