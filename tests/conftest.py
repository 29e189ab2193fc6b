"""Shared pytest fixtures; keep this file small and put helpers beside the tests that use them.

The session travels to `clock_support.DEFAULT_NOW` before any test module is imported, so
module-level dates are built from the frozen "today" too; `now` moves one test elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

import pytest
import time_machine
from clock_support import DEFAULT_NOW
from hypothesis import settings

_SESSION_TRAVEL = time_machine.travel(DEFAULT_NOW, tick=True)

# Hypothesis budgets: "ci" keeps hypothesis' defaults (the fuzz tests in tests/fuzz/ name their
# own modest counts); "fuzz" is `make fuzz`'s long budget, FUZZ_EXAMPLES per test and round
# (tests/fuzz/session.py repeats rounds with fresh seeds for FUZZ_MINUTES).
settings.register_profile("ci", print_blob=True)
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), print_blob=True
)
# "emulated" is `make pi-check`'s (deploy/pi/check.sh): under qemu-user every example runs
# 5-30x slower, so hypothesis' 200 ms deadline would fail correct code; it has none.
settings.register_profile("emulated", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    _SESSION_TRAVEL.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    _SESSION_TRAVEL.stop()


@pytest.fixture
def now(request: pytest.FixtureRequest) -> Iterator[datetime]:
    """Travel to the test's instant (`hostile_dates` parametrises it) and return it."""
    moment: datetime = getattr(request, "param", DEFAULT_NOW)
    with time_machine.travel(moment, tick=True):
        yield moment
