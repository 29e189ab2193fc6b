"""Write an aggregator data directory as Klynge wrote it before the store per source.

The directory next to this script (`data/`) was made by the code at commit 2e60308 (the last
with every source in one `aggregator.json`), and tests/test_store_migration.py starts today's
code on a copy of it. Regenerate it with that code, not today's:

    git worktree add /tmp/base 2e60308
    rm -rf tests/data/aggregator-store-v1/data
    PYTHONPATH=/tmp/base .venv/bin/python tests/data/aggregator-store-v1/make_v1_store.py \
        tests/data/aggregator-store-v1/data

(`PYTHONPATH` puts the old code first; the script refuses to run with a store per source.)
It holds five sources: a village with events (one recurring, one all day), notices and a
tombstone, and ETag/Last-Modified validators; a failing village (an error, back-off, its last
good entry and a problem); an aggregator relaying another village's entries with their
`atom:source`, a relayed tombstone and a held-back removal; a calendar (.ics) cut at the entry
limit; and a source stored but no longer configured. Fixed times, no clock.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aggregator.config import AggregatorConfig, Source, save_config
from aggregator.reader.merge import Content
from aggregator.reader.state import SourceState
from aggregator.store import sources as old_store
from klynge.model import Event, FeedSource, Notice, Place, Tombstone

T0 = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)  # the moment of the last fetch
ZONE = "Europe/Copenhagen"


def uid(n: int) -> str:
    """Return the n-th fixed entry id."""
    return f"urn:uuid:6f1c2d3e-0000-4000-8000-{n:012x}"


def origin(url: str, title: str, feed_id: str = "") -> FeedSource:
    """Return the provenance a refresh stamps on a source's entries."""
    return FeedSource(id=feed_id or url, title=title, updated=T0 - timedelta(hours=1),
                      self_url=url, author=title)  # fmt: skip


def content(src: FeedSource, items: list, tombs: list | None = None, **more: object) -> Content:
    """Return a source's content with every item bound to `src` unless it has its own."""
    bound = [i if i.source else replace(i, source=src) for i in items]
    return Content(
        origin=src,
        entries={i.id: i for i in bound},
        first_seen={i.id: T0 - timedelta(days=n) for n, i in enumerate(bound)},
        tombstones={t.id: t for t in tombs or []},
        **more,  # type: ignore[arg-type]
    )


def osterby() -> SourceState:
    """A healthy village: events, notices, a tombstone, both validators."""
    url = "http://osterby.test/feed.atom"
    src = origin(url, "Østerby", "urn:klynge:osterby")
    hall = Place(name="Østerby Forsamlingshus", street="Bygaden 4", postcode="4200",
                 locality="Østerby", lat=55.41, lon=11.35)  # fmt: skip
    items = [
        Event(id=uid(1), title="Strikkeklub", updated=T0 - timedelta(days=3),
              start=datetime(2026, 12, 2, 19, 0, tzinfo=UTC), end=datetime(2026, 12, 2, 21, 0,
              tzinfo=UTC), timezone=ZONE, rrule="FREQ=WEEKLY;COUNT=10", category="culture",
              organizer="Forsamlingshuset", place=hall, sequence=2,
              description="<p>Tag <b>garn</b> med.</p>", link="http://osterby.test/e/1"),
        Event(id=uid(2), title="Julemarked", updated=T0 - timedelta(days=1),
              start=date(2026, 12, 12), end=date(2026, 12, 14), all_day=True, timezone=ZONE,
              category="market", status="postponed", organizer="Lokalrådet"),
        Notice(id=uid(3), title="Samkørsel til julemarkedet", updated=T0 - timedelta(hours=5),
               body="<p>Ring til Birgit.</p>", category="carpool", related=uid(2),
               expires=datetime(2026, 12, 12, 23, 0, tzinfo=UTC)),
        Notice(id=uid(4), title="Vejarbejde på Bygaden", updated=T0 - timedelta(days=2),
               body="Lukket i uge 50.", category="roadworks"),
    ]  # fmt: skip
    tomb = Tombstone(id=uid(5), deleted=T0 - timedelta(days=4), source=src)
    return SourceState(
        url, etag='W/"osterby-17"', last_modified="Sat, 28 Nov 2026 08:00:00 GMT",
        body_hash="0f1e2d3c4b5a69788796a5b4c3d2e1f0", last_success=T0, last_attempt=T0,
        next_check=T0 + timedelta(minutes=15), content=content(src, items, [tomb]),
    )  # fmt: skip


def vesterby() -> SourceState:
    """A failing village: the error, the back-off, its last good entry, a problem."""
    url = "http://vesterby.test/feed.atom"
    src = origin(url, "Vesterby")
    item = Event(id=uid(11), title="Fodbold for de små", updated=T0 - timedelta(days=6),
                 start=datetime(2026, 12, 5, 10, 0, tzinfo=UTC), timezone=ZONE,
                 category="sport")  # fmt: skip
    return SourceState(
        url, etag='"v-3"', last_success=T0 - timedelta(days=2), last_attempt=T0,
        last_error="HTTP 503 (Service Unavailable)", failures=3,
        next_check=T0 + timedelta(hours=1),
        problems=(f"entry {uid(12)} (start): the start is not a date or time",),
        content=content(src, [item]),
    )  # fmt: skip


def nord() -> SourceState:
    """An aggregator: relayed entries keep their own atom:source; a removal is held back."""
    url = "http://nord.test/feed.atom"
    src = origin(url, "Klynge Nord", "urn:klynge:nord")
    norby = FeedSource(id="urn:klynge:norby", title="Nørby", self_url="http://norby.test/feed.atom",
                       updated=T0 - timedelta(days=1))  # fmt: skip
    items = [
        Event(id=uid(21), title="Loppemarked i Nørby", updated=T0 - timedelta(days=2),
              start=datetime(2026, 12, 6, 9, 0, tzinfo=UTC), timezone=ZONE, source=norby),
        Event(id=uid(22), title="Koncert i kirken", updated=T0 - timedelta(days=8),
              start=datetime(2026, 12, 20, 16, 0, tzinfo=UTC), timezone=ZONE, source=norby,
              status="cancelled", sequence=1),
    ]  # fmt: skip
    tomb = Tombstone(id=uid(23), deleted=T0 - timedelta(days=1), source=norby)
    held = "2 of 3 upcoming entries vanished; held back until the next fetch confirms it"
    return SourceState(
        url, last_modified="Fri, 27 Nov 2026 22:00:00 GMT", last_success=T0, last_attempt=T0,
        content=content(src, items, [tomb], held=frozenset({uid(22)}), flag=held),
    )  # fmt: skip


def skolen() -> SourceState:
    """A calendar (.ics) read only up to the entry limit."""
    url = "http://skolen.test/kalender.ics"
    src = origin(url, "Skolen")
    item = Event(id=uid(31), title="Skolebestyrelsesmøde", updated=T0 - timedelta(days=9),
                 start=datetime(2026, 12, 8, 17, 0, tzinfo=UTC), timezone=ZONE,
                 category="meeting")  # fmt: skip
    limited = "The calendar has 2500 events; only the first 2000 were read."
    return SourceState(url, last_success=T0, last_attempt=T0, content=content(src, [item]),
                       limited=limited)  # fmt: skip


def removed() -> SourceState:
    """A source stored earlier and since removed from aggregator.toml."""
    url = "http://gammel.test/feed.atom"
    src = origin(url, "Gammelby")
    item = Notice(id=uid(41), title="Gammelt opslag", updated=T0 - timedelta(days=20))
    return SourceState(url, last_success=T0 - timedelta(days=20), content=content(src, [item]))


def main(out: Path) -> None:
    """Write the data directory into `out` with the old single-file store."""
    if not hasattr(old_store, "DocumentStorage"):
        sys.exit("run this with the code of commit 2e60308 first on PYTHONPATH (see the docstring)")
    out.mkdir(parents=True)
    states = [osterby(), vesterby(), nord(), skolen(), removed()]
    kinds = {"http://nord.test/feed.atom": "aggregator", "http://skolen.test/kalender.ics": "ics"}
    config = AggregatorConfig(
        data_dir=out, name="Klyngen ved Åen", url="http://klynge.test",
        sources=tuple(Source(s.url, kind=kinds.get(s.url, "node")) for s in states[:-1]),
    )  # fmt: skip
    save_config(config)
    store = old_store.Store(out / "aggregator.json")
    first = osterby()
    first.failures, first.last_error = 1, "timed out"
    store.save([old_store.state_record(first)])  # so that aggregator.json.bak exists
    store.save([old_store.state_record(s) for s in states])
    store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
