"""The aggregator's process-wide knobs: the GIL's switch interval, and the cyclic garbage
collector and the freed memory, settled after each change.

The documents are built and the view merged in worker threads, in Python, while the event loop
answers requests. A thread that wants the GIL waits up to the switch interval (5 ms by default)
for the running one to let go, and a request takes the loop several such waits (accept, read,
answer, close): at 50,000 entries a /healthz during one change took 40-59 ms with the default,
14-19 ms with 1 ms (bench's /healthz probe, four changes each, the collector settled as below).

A big tier keeps a big heap: at 50,000 entries about 540,000 objects the collector tracks (the
entries, their places, the merge's tuples, the kept pieces). CPython 3.11 walks all of them in
a full collection, holding the GIL for 0.3-0.8 s, and the temporaries of a change's builds
start one now and then. Those were the longest loop stalls of one change at 50,000 entries:
gc.callbacks timed each full collection in a `serve` process, and every /healthz of 0.5-0.9 s
matched one (stop 29: 43-856 ms over six changes before, 40-59 ms over four after).

After each merge and each build (the kept pieces and rows are new then), `Settler.settle`
freezes every object alive (gc.freeze, which walks nothing): the collector's later rounds walk
only the objects made since, a change's worth. It counts what it freezes with gc.get_objects(),
which lists the unfrozen objects only: gc.get_freeze_count() walks every frozen one, 50-60 ms.

A reference cycle that is alive at a freeze and dies later is not collected while it is
frozen. So that such leftovers stay bounded, a whole collection runs (unfreeze, collect,
freeze) whenever as many objects were frozen since the last one as it left, or as the first
settle froze: as a tier grows, and after about a thousand changes at 50,000 entries (the count
does not see frozen objects freed again, so it errs early). That one stalls as before. The
first settle, after a start's first merge, freezes without a walk: a start's garbage is a
file's parse, freed as it went, and a walk of the loaded heap would stall the start. For the
same reason the collector is off from the start (`hold`) until that settle: it walked the
growing heap of the load ten times, 0.95 s of a 50,000-entry start (A/B over four restarts each:
median 6.80 -> 6.18 s until the first calendar is built).

Each settle then gives the memory freed since back to the system (glibc's `malloc_trim`, in
the settling thread: ctypes lets go of the GIL for the call). glibc keeps freed blocks for the
next malloc, and a change frees what its builds replaced. Fixed malloc thresholds were tried
for this and dropped (docs/aggregator.md): every change then faulted its 24 MB calendar and
12 MB answer afresh while holding the GIL. Those documents are no longer joined
(aggregator.publish.parts), and a trim after the build costs the loop nothing measurable:
at 50,000 entries, side by side over 12 changes each, loop stall median 8.4 ms with the trim
and 10.9 ms without, CPU of a change 0.205 and 0.200 s.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from collections.abc import Callable

SWITCH_INTERVAL = 0.001  # seconds a thread holds the GIL while another one waits for it


def share_the_gil() -> None:
    """Let the event loop have the GIL within a millisecond while the workers build."""
    sys.setswitchinterval(SWITCH_INTERVAL)


class Settler:
    """Freezes the heap after each merge and build; one for the process (`SETTLER`)."""

    def __init__(self) -> None:
        self.whole = 0  # whole collections run, for tests and the benchmark
        self._lock = threading.Lock()
        self._after_whole = 0  # objects frozen by the last whole collection, or the first settle
        self._since_whole = 0  # objects frozen since (some of them freed again: an upper bound)
        self._held = False  # the collector is off until the next settle (`hold`)

    def hold(self) -> None:
        """Turn the collector off until the next settle: for a start's load and first merge.

        A start makes the heap of every stored entry, and none of it is garbage: the collector
        walked the growing heap again and again, 0.95 s of a 50,000-entry start (gc.callbacks,
        ten full collections). What a start frees, reference counting frees.
        """
        with self._lock:
            gc.disable()
            self._held = True

    def release(self) -> None:
        """Turn the collector on again if it is held (a start stopped before its merge)."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self._held:
            gc.enable()
            self._held = False

    def settle(self) -> None:
        """Freeze every object alive now (walk them all once as many again were frozen), and
        give the memory freed since back to the system."""
        self._freeze()
        TRIM()

    def _freeze(self) -> None:
        with self._lock:
            young = len(gc.get_objects())  # the unfrozen ones: made since the last settle
            gc.freeze()  # no walk: it moves the collector's lists whole
            self._release()
            if not self._after_whole:  # the first: what a start loaded, frozen as it is
                self._after_whole = young
                return
            self._since_whole += young
            if self._since_whole >= self._after_whole:
                gc.unfreeze()
                gc.collect()
                self._after_whole, self._since_whole = len(gc.get_objects()), 0
                gc.freeze()
                self.whole += 1


def _malloc_trim() -> Callable[[], object]:
    """Return glibc's malloc_trim(0), or a no-op where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


TRIM = _malloc_trim()
SETTLER = Settler()
