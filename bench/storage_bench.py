"""Cost of one TinyDB insert: plain JSONStorage against DurableStorage (fsync, .bak, rename)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from tinydb import TinyDB
from tinydb.storages import JSONStorage

from klynge.storage import open_database

SIZES = (100, 1000)
SAMPLES = 30
DOC = {"title": "Fællesspisning i forsamlingshuset", "start": "2026-12-04T18:00:00+01:00"}


def median_insert_ms(db: TinyDB, size: int) -> float:
    """Fill `db` to `size` documents, then return the median time of one more insert."""
    table = db.table("events")
    table.insert_multiple(dict(DOC, n=i) for i in range(size))
    times = []
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        table.insert(DOC)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    """Print a table of median insert times and their ratio, measured side by side."""
    print(f"{'documents':>10} {'JSONStorage ms':>15} {'DurableStorage ms':>18} {'ratio':>6}")
    for size in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            plain = median_insert_ms(TinyDB(Path(tmp, "plain.json"), storage=JSONStorage), size)
            durable = median_insert_ms(open_database(Path(tmp, "durable.json")), size)
        print(f"{size:>10} {plain:>15.2f} {durable:>18.2f} {durable / plain:>6.1f}")


if __name__ == "__main__":
    main()
