"""The parse child (aggregator.child) runs a fresh interpreter: what it imports it holds for the
service's life, so it imports the readers and nothing of the service around them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from aggregator_support import event

from klynge.ical.writer import write_calendar

CHILD = "import sys, aggregator.reader.parse_worker, aggregator.reader.parse; print(*sys.modules)"


def test_the_parse_child_imports_the_readers_only() -> None:
    # The HTTP client and the store were 11 MB of it; the Atom writer's feedgen and lxml 2.3 MB.
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    loaded = set(done.stdout.split())
    assert "klynge.atom.reader" in loaded
    assert not loaded & {"aiohttp", "tinydb", "feedgen", "lxml", "jinja2", "klynge.atom.writer"}
    # The iCalendar reader comes with the first calendar, feedparser with the first feed the
    # strict reader leaves to it: a region's child reads Klynge feeds only.
    assert not loaded & {"icalendar", "recurring_ical_events", "klynge.ical.reader", "feedparser"}


def test_the_parse_child_reads_a_calendar_though_it_did_not_import_its_reader() -> None:
    script = (
        "import sys; from datetime import UTC, datetime; from aggregator.config import Source;"
        "from aggregator.reader.parse import parse_body; assert 'icalendar' not in sys.modules;"
        "body = sys.stdin.buffer.read();"
        "parsed = parse_body(body, Source('http://k.example/k.ics', 'Kirken', kind='ics'),"
        " 'Europe/Copenhagen', datetime(2026, 12, 1, tzinfo=UTC));"
        "print(*[i.title for i in parsed.items], sep='|')"
    )
    calendar = write_calendar([event("Julekoncert"), event("Krybbespil", days=9)], name="Kirken")
    done = subprocess.run(
        [sys.executable, "-c", script], input=calendar, capture_output=True, timeout=60,
        check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert done.stdout.decode().split() == ["Julekoncert|Krybbespil"]


PARENT = """
import sys, time
from aggregator.child import Child
from child_support import stay

child = Child(stay, ())
assert child.connection().recv() == "running"
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_a_parent_killed_outright() -> None:
    # SIGKILL (the OOM killer) gives the parent no chance to kill its child: the child of a
    # hostile parse ran on alone before PR_SET_PDEATHSIG.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env
    ) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        try:
            assert _alive(child)
            parent.kill()
            parent.wait(10)
            deadline = time.monotonic() + 10
            while _alive(child) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _alive(child), "the child outlived its killed parent"
        finally:
            if _alive(child):
                os.kill(child, signal.SIGKILL)  # ours: started by the parent this test started
