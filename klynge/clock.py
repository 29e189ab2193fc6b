"""The one clock the services read: the system's, or one that starts at a chosen instant.

Both services take the time only from the `Clock` in their config, so a test (or an operator
rehearsing a date) can start a real `serve` process at a chosen moment with `KLYNGE_NOW`; the
clock then runs on at the normal rate from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from klynge.errors import ConfigError

ENV_NOW = "KLYNGE_NOW"


def system_now() -> datetime:
    """Return the system's current time, aware, in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class Clock:
    """Wall-clock time, aware and in UTC, shifted by a fixed offset from the system's."""

    offset: timedelta = timedelta(0)

    def now(self) -> datetime:
        """Return the current time, aware, in UTC, to the second."""
        return system_now() + self.offset

    def today(self, tz: ZoneInfo) -> date:
        """Return today's date in the zone `tz`."""
        return self.now().astimezone(tz).date()

    @classmethod
    def starting_at(cls, moment: datetime) -> Clock:
        """Return a clock that reads `moment` now and runs on from there."""
        return cls(moment.replace(microsecond=0) - system_now())


def clock_from_env(env: Mapping[str, str]) -> Clock:
    """Return the system clock, or one starting at `KLYNGE_NOW` (RFC 3339 with an offset)."""
    text = env.get(ENV_NOW, "").strip()
    if not text:
        return Clock()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not 1900 <= moment.year <= 2200:
        raise ConfigError(
            f"{ENV_NOW}={text!r} must be a time with an offset, e.g. 2027-03-28T01:30:00+01:00"
        )
    return Clock.starting_at(moment)


SYSTEM_CLOCK = Clock()
