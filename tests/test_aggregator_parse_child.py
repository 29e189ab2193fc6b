"""The parse child (aggregator.child) runs a fresh interpreter: what it imports it holds for the
service's life, so it imports the readers and nothing of the service around them."""

from __future__ import annotations

import os
import subprocess
import sys

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
