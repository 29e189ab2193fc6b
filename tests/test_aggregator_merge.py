"""The merge rules as pure functions: provenance, one copy per entry, tombstones, held removals.

What one fetch does to a source's content (`apply_fetch`) is one named table, `RULES`; the
end-to-end counterparts, against real feed servers, are in tests/test_aggregator_refresh.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


# --- apply_fetch: what one good fetch does to a source's content ----------------------------

E = [event(f"E{n}") for n in range(4)]
KONCERT = event("Koncert", updated=NOW - timedelta(hours=2))
MOVED = dataclasses.replace(KONCERT, title="Koncert (flyttet)", updated=NOW - timedelta(hours=1))
RESEQUENCED = dataclasses.replace(KONCERT, title="Koncert (ny sekvens)", sequence=1)
FEST = event("Fest", updated=NOW)
SUMMER, SPRING = event("Sommerfest", days=-40), event("Forårsfest", days=-100)
NOTE = notice("Opslag")
DAY = timedelta(days=1)
# An .ics series read as its dates by an older Klynge, then as one series (docs/aggregator.md)
BADMINTON = event("Badminton-serie", id="urn:x-ics:b@x", rrule="FREQ=WEEKLY;COUNT=4")
SINGLE_DATES = [
    event(f"Badminton {n}", id=f"urn:x-ics:b@x/2026120{n}T180000Z", days=n) for n in (1, 2, 3)
]
PAST_DATE = event("Badminton forbi", id="urn:x-ics:b@x/20261020T180000Z", days=-40)


@dataclass(frozen=True)
class Fetch:
    """One good fetch of source A: its entries and tombstones, at a time."""

    items: tuple[Item, ...] = ()
    tombs: tuple[Tombstone, ...] = ()
    at: datetime = NOW


@dataclass(frozen=True)
class Rule:
    """Fetches applied in turn to a new source, and its content after the last one."""

    fetches: tuple[Fetch, ...]
    entries: tuple[str, ...]  # the titles kept
    held: tuple[str, ...] = ()  # the titles whose removal waits for a confirming fetch
    tombstones: tuple[str, ...] = ()  # the ids of the tombstones kept for relaying
    flag: str = ""  # how the flag begins ("" for no flag)
    seen: Mapping[str, datetime] = field(default_factory=dict)  # title -> first seen


def deleted(item: Item, days: float = 0) -> Tombstone:
    """Return a tombstone for `item`, deleted `days` from NOW."""
    return Tombstone(item.id, NOW + timedelta(days=days))


MASS = "This fetch would remove 3 of 4 upcoming entries"
RULES: dict[str, Rule] = {
    "a new source's entries are taken": Rule((Fetch((E[0], E[1])),), ("E0", "E1")),
    "an edit replaces the entry": Rule(
        (Fetch((KONCERT,)), Fetch((MOVED,))), ("Koncert (flyttet)",)
    ),
    "of two copies in one fetch the newest edit wins": Rule(
        (Fetch((MOVED, KONCERT)),), ("Koncert (flyttet)",)
    ),
    "of two copies edited at the same time the higher sequence wins (first)": Rule(
        (Fetch((RESEQUENCED, KONCERT)),), ("Koncert (ny sekvens)",)
    ),
    "of two copies edited at the same time the higher sequence wins (last)": Rule(
        (Fetch((KONCERT, RESEQUENCED)),), ("Koncert (ny sekvens)",)
    ),
    "a tombstone removes its entry and is kept for relaying": Rule(
        (Fetch(tuple(E[:3])), Fetch(tuple(E[:2]), (deleted(E[2]),))),
        ("E0", "E1"),
        tombstones=(E[2].id,),
    ),
    "a tombstone removes an entry of the same fetch": Rule(
        (Fetch((E[0], E[1]), (deleted(E[1]),)),), ("E0",), tombstones=(E[1].id,)
    ),
    "a tombstone older than the edit does not remove it": Rule(
        (Fetch((FEST,), (deleted(FEST, -1),)),), ("Fest",), tombstones=(FEST.id,)
    ),
    "tombstones older than 30 days are dropped": Rule(
        (
            Fetch(
                (),
                (
                    Tombstone("urn:uuid:old", NOW - 31 * DAY),
                    Tombstone("urn:uuid:new", NOW - 29 * DAY),
                ),
            ),
        ),
        (),
        tombstones=("urn:uuid:new",),
    ),
    "a removal of half the upcoming entries applies at once": Rule(
        (Fetch(tuple(E)), Fetch(tuple(E[:2]))), ("E0", "E1")
    ),
    "a removal of more than half is held back and flagged": Rule(
        (Fetch(tuple(E)), Fetch(tuple(E[:1]))),
        ("E0", "E1", "E2", "E3"),
        held=("E1", "E2", "E3"),
        flag=MASS,
    ),
    "notices count among the upcoming entries": Rule(
        (Fetch((*E[:3], NOTE)), Fetch(tuple(E[:1]))),
        ("E0", "E1", "E2", "Opslag"),
        held=("E1", "E2", "Opslag"),
        flag=MASS,
    ),
    "the next fetch confirms a held removal": Rule(
        (Fetch(tuple(E)), Fetch(tuple(E[:1])), Fetch(tuple(E[:1]))), ("E0",)
    ),
    "entries that come back clear the hold": Rule(
        (Fetch(tuple(E[:2])), Fetch(()), Fetch(tuple(E[:2]))), ("E0", "E1")
    ),
    "a vanished notice goes at once": Rule(
        (Fetch((E[0], E[1], NOTE)), Fetch((E[0], E[1]))), ("E0", "E1")
    ),
    # A village feed keeps 30 days of past events, calendars about 90 (design.md): an event
    # that leaves its village's feed after 30 days stays in our calendar until day 90.
    "a vanished past event is kept for 90 days, without a hold": Rule(
        (Fetch((SUMMER, SPRING, E[0], E[1])), Fetch((E[0], E[1]))), ("E0", "E1", "Sommerfest")
    ),
    "a vanished past event goes after 90 days": Rule(
        (
            Fetch((SUMMER, E[0], E[1])),
            Fetch((E[0], E[1])),
            Fetch((E[0], E[1]), at=NOW + 51 * DAY),
        ),
        ("E0", "E1"),
    ),
    "the single dates of a series that now carries them go at once, without a hold": Rule(
        (Fetch((*SINGLE_DATES, PAST_DATE, E[0])), Fetch((BADMINTON, E[0]))),
        ("Badminton-serie", "E0"),
    ),
    "single dates whose id only looks like a series' stay guarded": Rule(
        (Fetch((*SINGLE_DATES, E[0])), Fetch((dataclasses.replace(BADMINTON, rrule=None), E[0]))),
        ("Badminton 1", "Badminton 2", "Badminton 3", "Badminton-serie", "E0"),
        held=("Badminton 1", "Badminton 2", "Badminton 3"),
        flag="This fetch would remove 3 of 4 upcoming entries",
    ),
    "an entry is first seen when first fetched, whatever its edits": Rule(
        (Fetch((KONCERT,), at=NOW - 2 * DAY), Fetch((MOVED, E[0]))),
        ("E0", "Koncert (flyttet)"),
        seen={"Koncert (flyttet)": NOW - 2 * DAY, "E0": NOW},
    ),
}


@pytest.mark.parametrize("rule", list(RULES.values()), ids=list(RULES))
def test_apply_fetch(rule: Rule) -> None:
    content = Content()
    for one in rule.fetches:
        content = fetched(list(one.items), A, content, tombs=one.tombs, now=one.at)
    entries = content.entries
    assert sorted(i.title for i in entries.values()) == sorted(rule.entries)
    assert sorted(entries[i].title for i in content.held) == sorted(rule.held)
    assert sorted(content.tombstones) == sorted(rule.tombstones)
    flag = content.flag.english() if content.flag else ""
    assert flag.startswith(rule.flag) and bool(flag) == bool(rule.flag)
    assert {i.source for i in entries.values()} <= {A}
    first_seen = {entries[i].title: when for i, when in content.first_seen.items()}
    assert first_seen.keys() == {i.title for i in entries.values()}
    assert {t: first_seen[t] for t in rule.seen} == rule.seen
