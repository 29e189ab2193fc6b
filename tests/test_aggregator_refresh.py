"""Refreshing sources against real feed servers: conditional GET, store writes, back-off."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import aggregator_support as support
from aggregator_support import (
    FeedServer,
    config_for,
    event,
    feed,
    harness,
    notice,
)
from aiohttp import web
from clock_support import utc_now

from aggregator.config import Source
from aggregator.reader.merge import HELD_BACK
from aggregator.reader.state import backoff
from aggregator.store.sources import Store
from klynge.http.problems import STATUS_BARE
from klynge.messages import Message

feed_server = support.feed_server  # a fixture
make_harness = support.make_harness  # a fixture


async def test_first_refresh_stores_entries_bound_to_the_source(
    feed_server: FeedServer, tmp_path: Path, make_harness
) -> None:
    items = [event("Loppemarked"), notice("Hjælpere søges")]
    url = feed_server.set("/osterby.atom", feed("Østerby", items))
    h = await make_harness(config_for(tmp_path, [Source(url, "Østerby")]))
    [outcome] = await h.refresher.refresh_all()
    assert outcome.ok and outcome.changed
    merged = h.view.merged()
    assert {i.title for i in merged.items} == {"Loppemarked", "Hjælpere søges"}
    assert all(i.source and i.source.title == "Østerby" for i in merged.items)
    assert all(i.source and i.source.self_url == url for i in merged.items)
    assert h.refresher.store.writes == 2  # the source's file, then the index naming it


async def test_unchanged_source_costs_no_write_and_304_no_parse(
    feed_server: FeedServer, tmp_path: Path, make_harness
) -> None:
    url = feed_server.set("/a.atom", feed("A", [event()]))
    body = feed("B", [event()])

    async def without_validators(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/atom+xml")

    plain = feed_server.set("/b.atom", b"", handler=without_validators)
    h = await make_harness(config_for(tmp_path, [Source(url), Source(plain)]))
    await h.refresher.refresh_all()
    writes = h.refresher.store.writes
    words = {o.url: o.words for o in await h.refresher.refresh_all()}
    # A server without validators: the same bytes are recognised by their hash.
    assert words == {url: "not modified (304)", plain: "unchanged"}
    assert h.refresher.store.writes == writes


async def test_a_304_keeps_the_new_validators_it_carries(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    # RFC 9110 §15.4.5: a 304 carries the validators to keep. This server changes both on
    # every answer and answers 304 only to the newest ones.
    body = feed("A", [event("Loppemarked")])
    stamps = [format_datetime(utc_now() - timedelta(hours=h), usegmt=True) for h in (4, 3, 2, 1)]
    asked: list[tuple[str, str]] = []

    async def rotating(request: web.Request) -> web.Response:
        asked.append(
            (request.headers.get("If-None-Match", ""), request.headers.get("If-Modified-Since", ""))
        )
        n = len(asked)
        headers = {"ETag": f'"v{n}"', "Last-Modified": stamps[n - 1]}
        if n > 1 and asked[-1] == (f'"v{n - 1}"', stamps[n - 2]):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/atom+xml", headers=headers)

    url = feed_server.set("/a.atom", b"", handler=rotating)
    config = config_for(tmp_path, [Source(url)])
    h = await harness(config)
    try:
        outcomes = [(await h.refresher.refresh_all())[0].words]
        first = h.refresher.store.writes  # the new source's file and the index
        outcomes += [(await h.refresher.refresh_all())[0].words for _ in range(2)]
        writes = h.refresher.store.writes - first
    finally:
        await h.close()
    assert outcomes == ["1 entry", "not modified (304)", "not modified (304)"]
    assert asked == [("", ""), ('"v1"', stamps[0]), ('"v2"', stamps[1])]
    assert writes == 2  # the new validators are stored with each 304
    h2 = await harness(config)
    try:
        state = h2.refresher.states[url]
        assert (state.etag, state.last_modified) == ('"v3"', stamps[2])
        [outcome] = await h2.refresher.refresh_all()
        assert outcome.words == "not modified (304)" and asked[-1] == ('"v3"', stamps[2])
    finally:
        await h2.close()


async def test_a_changed_source_writes_its_own_file_only(
    feed_server: FeedServer, tmp_path: Path, make_harness
) -> None:
    urls = [feed_server.set(f"/v{n}.atom", feed(f"V{n}", [event(f"E{n}")])) for n in range(5)]
    h = await make_harness(config_for(tmp_path, [Source(u) for u in urls]))
    await h.refresher.refresh_all()
    store = h.refresher.store
    assert store.writes == 10  # five new sources: each its file, then the index
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in store.directory.iterdir()}
    feed_server.set("/v2.atom", feed("V2", [event("E2 changed")]))
    await h.refresher.refresh_all()
    assert store.writes == 11  # one changed source, one write; four 304s, none
    changed = store.path_of(urls[2])
    assert changed is not None and b"E2 changed" in changed.read_bytes()
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in store.directory.iterdir()}
    # Its file changed and its backup (the version before) came; nothing else was touched.
    assert {n for n in after if before.get(n) != after[n]} == {changed.name, changed.name + ".bak"}
    assert after[changed.name + ".bak"][1] == before[changed.name][1]


async def test_state_and_entries_survive_a_restart(feed_server: FeedServer, tmp_path: Path) -> None:
    ev = event("Juletræstænding", rrule="FREQ=WEEKLY;COUNT=3", description="<b>Gløgg</b>")
    url = feed_server.set("/a.atom", feed("A", [ev, notice()]))
    config = config_for(tmp_path, [Source(url, "A")])
    h = await harness(config)
    await h.refresher.refresh_all()
    before = h.view.merged()
    etag = h.refresher.states[url].etag
    await h.close()
    h2 = await harness(config)
    try:
        assert h2.view.merged() == before
        assert h2.refresher.states[url].etag == etag
        [outcome] = await h2.refresher.refresh_all()
        assert outcome.words == "not modified (304)"
    finally:
        await h2.close()


async def test_failing_source_keeps_entries_and_backs_off(
    feed_server: FeedServer, tmp_path: Path, make_harness
) -> None:
    url = feed_server.set("/a.atom", feed("A", [event("Generalforsamling")]))
    config = config_for(tmp_path, [Source(url)])
    h = await make_harness(config)
    await h.refresher.refresh_all()
    feed_server.routes["/a.atom"].status = 500
    for _ in range(3):
        [outcome] = await h.refresher.refresh_all()
    state = h.refresher.states[url]
    assert not outcome.ok and "500" in outcome.words
    assert state.failures == 3 and state.last_error is not None
    assert state.last_error.params["status"] == 500
    assert [i.title for i in h.view.merged().items] == ["Generalforsamling"]
    assert state.next_check is not None and state.last_attempt is not None
    assert state.next_check - state.last_attempt == timedelta(minutes=60)
    feed_server.routes["/a.atom"].status = 200
    [outcome] = await h.refresher.refresh_all()
    assert outcome.ok and state.failures == 0 and state.last_error is None


def test_backoff_doubles_up_to_six_hours() -> None:
    interval, ceiling = timedelta(minutes=15), timedelta(hours=6)
    waits = [backoff(n, interval, ceiling) for n in range(0, 9)]
    minutes = [w.total_seconds() / 60 for w in waits]
    assert minutes == [15, 15, 30, 60, 120, 240, 360, 360, 360]


async def test_tombstone_removes_and_is_kept_for_relaying(
    feed_server: FeedServer, tmp_path: Path, make_harness
) -> None:
    keep, gone = event("Bliver"), event("Slettes")
    url = feed_server.set("/a.atom", feed("A", [keep, gone]))
    h = await make_harness(config_for(tmp_path, [Source(url)]))
    await h.refresher.refresh_all()
    from klynge.model import Tombstone

    feed_server.set("/a.atom", feed("A", [keep], [Tombstone(gone.id, utc_now())]))
    await h.refresher.refresh_all()
    merged = h.view.merged()
    assert [i.title for i in merged.items] == ["Bliver"]
    assert [t.id for t in merged.tombstones] == [gone.id]
    assert merged.tombstones[0].source and merged.tombstones[0].source.self_url == url


async def test_mass_removal_is_held_back_until_confirmed(
    feed_server: FeedServer, tmp_path: Path, make_harness
) -> None:
    events = [event(f"E{n}") for n in range(4)]
    url = feed_server.set("/a.atom", feed("A", events))
    h = await make_harness(config_for(tmp_path, [Source(url)]))
    await h.refresher.refresh_all()
    feed_server.set("/a.atom", feed("A", events[:1]))  # three of four vanish, no tombstones
    [outcome] = await h.refresher.refresh_all()
    state = h.refresher.states[url]
    assert len(h.view.merged().items) == 4
    assert state.content.flag == Message(HELD_BACK, {"gone": 3, "total": 4})
    assert "would remove 3 of 4 upcoming entries" in state.content.flag.english()
    assert "would remove 3 of 4" in outcome.words
    [outcome] = await h.refresher.refresh_all()  # the second fetch confirms it
    assert [i.title for i in h.view.merged().items] == ["E0"]
    assert state.content.flag is None and not state.content.held


async def test_small_removal_applies_at_once_and_a_return_clears_the_hold(
    feed_server: FeedServer, tmp_path: Path, make_harness
) -> None:
    events = [event(f"E{n}") for n in range(4)]
    url = feed_server.set("/a.atom", feed("A", events))
    h = await make_harness(config_for(tmp_path, [Source(url)]))
    await h.refresher.refresh_all()
    feed_server.set("/a.atom", feed("A", events[:2]))  # exactly half: not a mass removal
    await h.refresher.refresh_all()
    assert sorted(i.title for i in h.view.merged().items) == ["E0", "E1"]
    feed_server.set("/a.atom", feed("A", []))  # everything vanishes: held
    await h.refresher.refresh_all()
    assert len(h.view.merged().items) == 2
    feed_server.set("/a.atom", feed("A", events[:2]))  # it was a glitch: entries are back
    await h.refresher.refresh_all()
    state = h.refresher.states[url]
    assert sorted(i.title for i in h.view.merged().items) == ["E0", "E1"]
    assert state.content.flag is None and not state.content.held


async def test_store_file_holds_one_document_per_source(
    feed_server: FeedServer, tmp_path: Path, make_harness
) -> None:
    urls = [feed_server.set(f"/v{n}.atom", feed(f"V{n}", [event()])) for n in range(3)]
    config = config_for(tmp_path, [Source(u) for u in urls])
    h = await make_harness(config)
    await h.refresher.refresh_all()
    await h.refresher.close()
    store = Store(config.data_dir)
    try:
        assert sorted(store.load()) == sorted(urls)
    finally:
        store.close()
    assert dataclasses.is_dataclass(config)


def test_a_source_failing_for_a_day_is_stale_and_says_why(tmp_path: Path) -> None:
    from aggregator.reader.state import SourceState
    from aggregator.web.status import summary

    config = config_for(tmp_path, [])
    now = utc_now()
    state = SourceState(
        "http://a.example/feed.atom",
        failures=3,
        last_error=Message(STATUS_BARE, {"status": 503}),
    )
    state.last_success = now - timedelta(hours=23)
    assert state.health(now, config.limits.stale_after) == "failing"
    state.last_success = now - timedelta(hours=25)
    assert state.health(now, config.limits.stale_after) == "stale"
    words = summary(state, now, config)
    assert words.english() == "Stale: HTTP 503 (3 failures in a row, last success 25 h ago)."
    assert words.render("da") == (
        "Forældet: serveren svarede med fejlen HTTP 503 (3 fejl i træk, "
        "sidst hentet med held for 25 timer siden)."
    )
    state.failures = 1
    assert "(1 failure in a row," in summary(state, now, config).english()


async def test_ics_and_plain_rss_sources(
    feed_server: FeedServer, tmp_path: Path, make_harness
) -> None:
    from klynge.ical.writer import write_calendar

    ics = feed_server.set(
        "/kirke.ics",
        write_calendar([event("Julegudstjeneste", category="church")], name="Sogn"),
        content_type="text/calendar",
    )
    rss = feed_server.set(
        "/kommune.rss",
        """<?xml version="1.0"?><rss version="2.0"><channel><title>Kommunen</title>
        <link>https://kommune.example/</link><description>Nyt</description>
        <item><title>Vejarbejde på Hovedgaden</title><link>https://kommune.example/vej</link>
        <guid>https://kommune.example/vej</guid><pubDate>Fri, 27 Nov 2026 08:00:00 GMT</pubDate>
        </item></channel></rss>""".encode(),
        content_type="application/rss+xml",
    )
    h = await make_harness(
        config_for(tmp_path, [Source(ics, "Sognet", "ics"), Source(rss, "Kommunen", "atom")])
    )
    outcomes = await h.refresher.refresh_all()
    assert all(o.ok for o in outcomes), outcomes
    items = h.view.merged().items
    by_title = {i.title: (i.kind, i.source.title if i.source else "") for i in items}
    assert by_title == {
        "Julegudstjeneste": ("event", "Sognet"),
        "Vejarbejde på Hovedgaden": ("notice", "Kommunen"),
    }
