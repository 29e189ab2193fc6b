"""A target for aggregator.child in tests: a child that stays until it is killed."""

from __future__ import annotations

import time
from multiprocessing.connection import Connection


def stay(conn: Connection) -> None:
    """Tell the parent it runs, then sleep as a parse of hostile bytes would run."""
    conn.send("running")
    time.sleep(120)
