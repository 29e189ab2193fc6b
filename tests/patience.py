"""Wait bounds that stretch on slow machines, and the one polling wait the tests share.

Every bound here is a limit on a wait, never a timing the test asserts: a correct program
meets it on any machine. Under qemu-user emulation (`make pi-check`) Python runs 5-30x slower,
so deploy/pi/check.sh sets KLYNGE_TEST_PATIENCE=10 there, and each bound is multiplied by it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

PATIENCE_ENV = "KLYNGE_TEST_PATIENCE"


def patience() -> float:
    """Return the factor for every wait bound: KLYNGE_TEST_PATIENCE, 1 to 100, default 1."""
    raw = os.environ.get(PATIENCE_ENV, "").strip()
    try:
        factor = float(raw) if raw else 1.0
    except ValueError as error:
        raise ValueError(f"{PATIENCE_ENV} must be a number from 1 to 100, not {raw!r}") from error
    if not 1.0 <= factor <= 100.0:
        raise ValueError(f"{PATIENCE_ENV} must be a number from 1 to 100, not {raw!r}")
    return factor


def patient(seconds: float) -> float:
    """Return the wait bound `seconds`, stretched by the machine's patience factor."""
    return seconds * patience()


async def eventually(check: Callable[[], Awaitable[bool]], *, limit: float = 10.0) -> None:
    """Wait until `check()` is true, failing after `limit` (stretched) seconds."""
    bound = patient(limit)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while not await check():
        assert loop.time() < deadline, f"the condition never became true within {bound:g} s"
        await asyncio.sleep(0.05)
