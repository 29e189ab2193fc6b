"""Storage costs: (a) one TinyDB insert, plain JSONStorage against DurableStorage (fsync, .bak,
rename); (b) the aggregator's store: writing after one source changed, and loading everything,
at 1,000, 20,000 and 50,000 stored entries (50 a source), today's store against the old one.

The old store (every source in one file, rewritten whole) is measured side by side when its
code is given, e.g. a worktree of commit 2e60308:

    git worktree add /tmp/klynge-old 2e60308
    python -m bench.storage_bench --old /tmp/klynge-old

Each store runs in a fresh process with its own code first on sys.path; the table shows
medians and the ratio old/new.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import JSONStorage

from klynge.storage import open_database

SIZES = (100, 1000)
SAMPLES = 30
DOC = {"title": "Fællesspisning i forsamlingshuset", "start": "2026-12-04T18:00:00+01:00"}
STORE_SIZES = (1_000, 20_000, 50_000)
PER_SOURCE = 50
STORE_SAMPLES = 15
LOADS = 3
ROOT = Path(__file__).resolve().parent.parent


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


def insert_table() -> None:
    """Print (a): median insert times and their ratio, measured side by side."""
    print(f"{'documents':>10} {'JSONStorage ms':>15} {'DurableStorage ms':>18} {'ratio':>6}")
    for size in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            plain = median_insert_ms(TinyDB(Path(tmp, "plain.json"), storage=JSONStorage), size)
            durable = median_insert_ms(open_database(Path(tmp, "durable.json")), size)
        print(f"{size:>10} {plain:>15.2f} {durable:>18.2f} {durable / plain:>6.1f}")


# --- (b) the aggregator's store, run in a child process per code version -------------------


def source_states(entries: int) -> list[Any]:
    """Return SourceStates holding `entries` entries, PER_SOURCE each (the bench's villages)."""
    from dataclasses import replace

    from aggregator.reader.merge import Content
    from aggregator.reader.state import SourceState
    from bench.aggregator_bench import village_items
    from klynge.clock import system_now
    from klynge.model import FeedSource

    items = village_items(0, PER_SOURCE)  # validated once, shared: the store copies nothing
    now = system_now()
    states = []
    for n in range(entries // PER_SOURCE):
        url = f"http://v{n}.example/feed.atom"
        origin = FeedSource(id=url, title=f"Landsby {n}", self_url=url)
        bound = {i.id: replace(i, source=origin) for i in items}
        content = Content(origin=origin, entries=bound, first_seen=dict.fromkeys(bound, now))
        states.append(SourceState(url, etag=f'"{n}"', last_success=now, content=content))
    return states


def measure_store(entries: int, directory: Path) -> dict[str, float]:
    """Store `entries` entries, then time writes after one source changed and a full load."""
    from aggregator.store import sources

    states = source_states(entries)
    old = hasattr(sources, "DocumentStorage")  # the single-file store of commit 2e60308
    store = sources.Store(directory / "aggregator.json" if old else directory)
    if old:
        store.save([sources.state_record(s) for s in states])
    else:
        store.save_new(sources.state_record(s) for s in states)
    changed = states[len(states) // 2]
    times = []
    for n in range(STORE_SAMPLES):
        changed.failures = n + 1  # a change of health: the smallest change that is written
        t0 = time.perf_counter()
        store.save([sources.state_record(changed)] if old else changed)
        times.append(time.perf_counter() - t0)
    store.close()
    written = (directory / "aggregator.json") if old else store.path_of(changed.url)
    assert written is not None
    loads = []
    for _ in range(LOADS):
        t0 = time.perf_counter()
        loader = sources.Store(directory / "aggregator.json" if old else directory)
        loaded = loader.load()
        loads.append(time.perf_counter() - t0)
        loader.close()
        assert sum(len(s.content.entries) for s in loaded.values()) == entries
    return {
        "write_s": statistics.median(times),
        "bytes": written.stat().st_size,
        "load_s": statistics.median(loads),
    }


def run_child(code: Path, entries: int) -> dict[str, float]:
    """Measure one store size with the code in `code` first on sys.path, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        # This file, run as a script: its imports (the store) then come from `code`.
        [sys.executable, str(Path(__file__).resolve()), "--child", str(entries)],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.splitlines()[-1]))


def store_table(old_code: Path | None) -> None:
    """Print (b): the cost of one changed source and of a full load, old and new side by side."""
    print(f"\n{'entries':>8} {'store':>5} {'write after one change':>23} {'bytes written':>14} "
          f"{'load all':>9}")  # fmt: skip
    for entries in STORE_SIZES:
        rows = [("new", run_child(ROOT, entries))]
        if old_code is not None:
            rows.append(("old", run_child(old_code, entries)))
        for name, r in rows:
            print(f"{entries:>8} {name:>5} {r['write_s'] * 1000:>20.2f} ms {r['bytes']:>14,.0f} "
                  f"{r['load_s']:>7.2f} s")  # fmt: skip
        if len(rows) == 2:
            new, old = rows[0][1], rows[1][1]
            ratios = [old[k] / new[k] for k in ("write_s", "bytes", "load_s")]
            print(f"{'':>8} {'old/new':>5} {ratios[0]:>20.1f} x {ratios[1]:>13.0f}x "
                  f"{ratios[2]:>7.2f} x")  # fmt: skip


def main() -> None:
    """Print both tables (old store only with --old)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="a checkout of the old code (e.g. 2e60308)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(measure_store(args.child, Path(tmp))))
        return
    insert_table()
    store_table(args.old)


if __name__ == "__main__":
    main()
