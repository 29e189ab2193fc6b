"""The merge rules as pure functions: provenance, one copy per entry, tombstones, held removals."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from aggregator_support import NOW, event, notice

from aggregator.reader.merge import Content, apply_fetch, bind, merge_entries, safe_source
from klynge.model import FeedSource, Item, Tombstone

A = FeedSource(id="urn:klynge:a", title="Østerby", self_url="http://a.example/feed.atom")
B = FeedSource(id="urn:klynge:b", title="Vesterby", self_url="http://b.example/feed.atom")
AGG = FeedSource(id="urn:klynge:agg", title="Klynge Syd", self_url="http://agg.example/feed.atom")


def fetched(
    items: list[Item],
    origin: FeedSource,
    old: Content | None = None,
    *,
    tombs: Sequence[Tombstone] = (),
    trust: bool = False,
    now: datetime = NOW,
) -> Content:
    """Return a source's content after a good fetch of `items` served by `origin`."""
    bound, bound_tombs = bind(items, tombs, origin=origin, trust_source=trust)
    return apply_fetch(old or Content(), bound, bound_tombs, origin=origin, now=now)


def test_bind_overwrites_claims_unless_the_source_is_an_aggregator() -> None:
    claimed = event(source=B)
    [village], _ = bind([claimed], [], origin=A, trust_source=False)
    [relayed], _ = bind([claimed], [], origin=AGG, trust_source=True)
    [plain], _ = bind([event()], [], origin=AGG, trust_source=True)
    assert village.source == A and relayed.source == B and plain.source == AGG


def test_safe_source_keeps_only_plain_text_and_http_links() -> None:
    hostile = FeedSource(id="urn:x", title="Ond\x00", self_url="javascript:alert(1)", author="x")
    assert safe_source(hostile) == FeedSource(id="urn:x", title="Ond", self_url="", author="x")


def test_one_copy_per_entry_newest_then_highest_sequence() -> None:
    base = event("Koncert", source=A)
    older = dataclasses.replace(base, sequence=3)
    newer = dataclasses.replace(base, title="Koncert (flyttet)", updated=NOW, sequence=1)
    via_agg = fetched([older], AGG, trust=True)
    direct = fetched([newer], A)
    [merged] = merge_entries([via_agg, direct]).items
    assert merged.title == "Koncert (flyttet)"
    same_time = dataclasses.replace(base, title="Koncert (ny sekvens)", sequence=4)
    [merged] = merge_entries([direct, fetched([same_time], AGG, trust=True)]).items
    assert merged.title == "Koncert (flyttet)"  # newer `updated` wins over a higher sequence
    later = dataclasses.replace(newer, title="Koncert v2", sequence=2)
    [merged] = merge_entries([fetched([newer], A), fetched([later], AGG, trust=True)]).items
    assert merged.title == "Koncert v2"  # same `updated`: the higher sequence wins


@pytest.mark.parametrize("a_first", [True, False], ids=["A polled first", "B polled first"])
def test_a_copied_id_is_a_separate_entry_whatever_the_polling_order(a_first: bool) -> None:
    real = event("Juletræ")
    hijack = dataclasses.replace(real, title="Hijacked", updated=NOW + timedelta(hours=1))
    # B even copies A's feed id: only the URL we poll it at tells them apart.
    impostor = FeedSource(id=A.id, title="Ond", self_url="http://ond.example/feed.atom")
    first, second = (NOW - timedelta(hours=1), NOW) if a_first else (NOW, NOW - timedelta(hours=1))
    a, b = fetched([real], A, now=first), fetched([hijack], impostor, now=second)
    merged = merge_entries([a, b] if a_first else [b, a])
    by_title = {i.title: i for i in merged.items}
    assert set(by_title) == {"Juletræ", "Hijacked"}
    assert by_title["Juletræ"].source == A and by_title["Hijacked"].source == impostor
    ids = {i.id for i in merged.items}
    assert len(ids) == 2 and real.id not in ids  # each under its own stable derived id
    assert merge_entries([b, a]).items == merged.items  # the same, in any order


def test_a_relayed_copy_merges_only_with_its_own_origin() -> None:
    real = event("Koncert", source=A)
    newer = dataclasses.replace(real, title="Koncert (flyttet)", updated=NOW)
    lie = dataclasses.replace(real, title="Falsk", updated=NOW + timedelta(hours=1))
    relayed = fetched([newer], AGG, trust=True)
    forged = fetched(  # an aggregator relaying a village that copied A's feed id
        [dataclasses.replace(lie, source=FeedSource(id=A.id, self_url="http://ond.example/"))],
        AGG,
        trust=True,
    )
    [merged] = merge_entries([fetched([real], A), relayed]).items
    assert merged.title == "Koncert (flyttet)" and merged.id == real.id
    titles = sorted(i.title for i in merge_entries([fetched([real], A), forged]).items)
    assert titles == ["Falsk", "Koncert"]


def test_tombstones_remove_only_their_origins_entries_and_are_relayed() -> None:
    ev = event("Fest")
    a = fetched([ev], A)
    foreign = fetched([], B, tombs=[Tombstone(ev.id, NOW)])
    assert [i.title for i in merge_entries([a, foreign]).items] == ["Fest"]
    relayed = fetched([], AGG, tombs=[Tombstone(ev.id, NOW, A)], trust=True)
    merged = merge_entries([a, relayed])
    assert merged.items == () and [t.source for t in merged.tombstones] == [A]


def test_a_stale_tombstone_does_not_remove_a_newer_edit() -> None:
    ev = event("Fest", updated=NOW)
    merged = merge_entries([fetched([ev], A, tombs=[Tombstone(ev.id, NOW - timedelta(days=1))])])
    assert [i.title for i in merged.items] == ["Fest"]
    assert merged.tombstones == ()  # the entry is back (an undo): its tombstone is not relayed


def test_tombstones_older_than_30_days_are_dropped() -> None:
    old = Tombstone("urn:uuid:old", NOW - timedelta(days=31))
    fresh = Tombstone("urn:uuid:new", NOW - timedelta(days=29))
    content = fetched([], A, tombs=[old, fresh])
    assert list(content.tombstones) == ["urn:uuid:new"]


def test_vanished_past_entries_are_kept_90_days_without_a_hold() -> None:
    # A village feed keeps 30 days of past events, calendars about 90 (design.md): an event
    # that leaves its village's feed after 30 days stays in our calendar until day 90.
    recent, old = event("Sommerfest", days=-40), event("Forårsfest", days=-100)
    coming = [event(f"E{n}") for n in range(2)]
    first = fetched([recent, old, *coming], A)
    second = fetched(coming, A, old=first)
    assert not second.held
    assert recent.id in second.entries and old.id not in second.entries
    later = fetched(coming, A, old=second, now=NOW + timedelta(days=51))
    assert recent.id not in later.entries


def test_mass_removal_is_held_once_then_applied() -> None:
    events = [event(f"E{n}") for n in range(3)] + [notice()]
    first = fetched(events, A)
    held = fetched(events[:1], A, old=first)
    assert len(held.entries) == 4 and len(held.held) == 3
    assert held.flag is not None
    assert held.flag.english().startswith("This fetch would remove 3 of 4 upcoming entries")
    confirmed = fetched(events[:1], A, old=held)
    assert list(confirmed.entries) == [events[0].id] and confirmed.flag is None


def test_first_seen_survives_updates() -> None:
    ev = event()
    first = fetched([ev], A, now=NOW - timedelta(days=2))
    again = fetched([dataclasses.replace(ev, title="Ny titel")], A, old=first)
    assert again.first_seen[ev.id] == NOW - timedelta(days=2)
