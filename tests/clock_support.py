"""Time is an input: the instants the suite runs at, and the one place that reads the clock.

The whole session runs at `DEFAULT_NOW` (started in conftest.py with time-machine, ticking on
from there), so no test depends on the day it happens to run. Date-sensitive tests take the
`now` fixture and are parametrised with `hostile_dates`: each then runs at every instant in
`HOSTILE_NOWS`, a DST change, a month's and a year's ends, 29 February, Mondays and Sundays.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from klynge.clock import ENV_NOW

COPENHAGEN = ZoneInfo("Europe/Copenhagen")


def local(text: str) -> datetime:
    """Return a Copenhagen wall-clock time (`YYYY-MM-DD HH:MM`) as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=COPENHAGEN)


DEFAULT_NOW = local("2026-12-01 10:00")  # a Tuesday

HOSTILE_NOWS = {
    "monday-morning": local("2027-01-04 07:00"),
    "sunday-evening": local("2026-12-06 21:00"),  # the last day of the calendar week
    "first-of-month": local("2027-02-01 09:00"),
    "last-of-month": local("2027-04-30 22:30"),
    "new-years-eve": local("2026-12-31 23:30"),
    "new-years-day": local("2027-01-01 00:30"),  # still 31 December in UTC
    "leap-day": local("2028-02-29 12:00"),
    "dst-spring-before": local("2027-03-28 01:30"),  # CET; 02:00-03:00 does not exist
    "dst-spring-after": local("2027-03-28 03:30"),  # CEST
    "dst-autumn-before": local("2027-10-31 01:30"),  # CEST; 02:00-03:00 happens twice
    "dst-autumn-after": local("2027-10-31 03:30"),  # CET
}

hostile_dates = pytest.mark.parametrize(
    "now", list(HOSTILE_NOWS.values()), ids=list(HOSTILE_NOWS), indirect=True
)


def utc_now() -> datetime:
    """Return the (travelled) current time, aware, in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def local_today() -> date:
    """Return the (travelled) current date in Copenhagen."""
    return utc_now().astimezone(COPENHAGEN).date()


def service_env(**extra: str) -> dict[str, str]:
    """Return the environment for a service started as a subprocess: on the suite's clock."""
    return {**os.environ, ENV_NOW: utc_now().isoformat(), **extra}
