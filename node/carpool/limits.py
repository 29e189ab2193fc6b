"""Rate limits for anonymous carpool posts: per address and per event, in a sliding window.

Kept in memory only (an address is personal data; a restart forgetting the counts costs a
few extra posts at most). Stale keys are swept once per window, so a stream of made-up
addresses cannot grow the node's memory without end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from klynge.sliding import SlidingCounts

PER_ADDRESS = 5  # posts from one address per window: a family posts two or three
PER_EVENT = 40  # posts (changes included) to one event per window
WINDOW = 3600.0  # seconds
OPEN_PER_EVENT = 60  # open posts one event may carry at once (a cap, not a rate)


class PostLimiter:
    """Counts accepted posts per address and per event over the last `window` seconds."""

    def __init__(
        self,
        per_address: int = PER_ADDRESS,
        per_event: int = PER_EVENT,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_address, self.per_event, self.window = per_address, per_event, window
        self.clock = clock
        self._times = SlidingCounts(window, clock())

    def __len__(self) -> int:
        """Return how many addresses and events have posts on record."""
        return len(self._times)

    def allowed(self, address: str, event_id: str) -> bool:
        """Tell whether one more post from `address` to `event_id` is within both limits."""
        now = self.clock()
        return (
            self._times.count(f"a:{address}", now) < self.per_address
            and self._times.count(f"e:{event_id}", now) < self.per_event
        )

    def record(self, address: str, event_id: str) -> None:
        """Count one accepted post."""
        self._times.add((f"a:{address}", f"e:{event_id}"), self.clock())
