"""docs/feed-format.md agrees with the code: every element in its tables is read and asserted on."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree

from klynge.atom.reader import ParsedFeed, read_feed
from klynge.atom.writer import ATOM_NS, GEORSS_NS, KLYNGE_NS, TOMBSTONE_NS, klynge_values
from klynge.model import CATEGORIES, Event, Notice, Place
from klynge.series import Change

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
DOC = (ROOT / "docs" / "feed-format.md").read_text(encoding="utf-8")
NAMESPACES = {"atom": ATOM_NS, "at": TOMBSTONE_NS, "georss": GEORSS_NS, "": KLYNGE_NS}


def table_rows(header: str) -> list[list[str]]:
    """Return the body rows (as cells) of every table whose first column is headed `header`."""
    rows: list[list[str]] = []
    in_table = False
    for line in DOC.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == header:
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not set(cells[0]) <= {"-"}:
            rows.append(cells)
    return rows


def table_names(header: str) -> list[str]:
    """Return the backticked names in the first column of the tables headed `header`."""
    return [name for row in table_rows(header) for name in re.findall(r"`([^`]+)`", row[0])]


def village() -> ParsedFeed:
    return read_feed((DATA / "village.atom").read_bytes())


def merged() -> ParsedFeed:
    return read_feed((DATA / "merged.atom").read_bytes())


def plain() -> ParsedFeed:
    return read_feed((DATA / "plain.atom").read_bytes())


def event(parsed: ParsedFeed, index: int = 0) -> Event:
    item = parsed.items[index]
    assert isinstance(item, Event)
    return item


def notice(parsed: ParsedFeed) -> Notice:
    (item,) = [item for item in parsed.items if isinstance(item, Notice)]
    return item


DINNER = "urn:uuid:0b9e4a52-7c1d-4e55-9a3b-2f4f0c6d8e11"

# element name -> (golden feed that carries it, a check on what read_feed made of it)
CHECKS: dict[str, tuple[str, Callable[[], bool]]] = {
    "atom:id": (
        "village.atom",
        lambda: (
            (village().meta.id, village().items[0].id)
            == ("https://osterby.example.dk/feed.atom", DINNER)
        ),
    ),
    "atom:title": (
        "village.atom",
        lambda: (
            (village().meta.title, village().items[0].title)
            == ("Østerby", "Julefrokost i forsamlingshuset")
        ),
    ),
    "atom:subtitle": ("village.atom", lambda: village().meta.subtitle == "Det sker i Østerby"),
    "atom:updated": (
        "village.atom",
        lambda: (
            (village().meta.updated, village().items[0].updated)
            == (
                datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
                datetime(2026, 11, 25, 18, 2, 11, tzinfo=UTC),
            )
        ),
    ),
    "atom:author": (
        "merged.atom",
        lambda: (
            (merged().meta.author, merged().items[1].organizer)
            == ("Sydklyngen", "Vesterby Menighedsråd")
        ),
    ),
    "atom:link": (
        "village.atom",
        lambda: (
            (
                village().meta.self_url,
                village().meta.alternate_url,
                village().meta.hub_urls,
                village().items[0].link,
                village().items[0].url,
            )
            == (
                "https://osterby.example.dk/feed.atom",
                "https://osterby.example.dk/",
                ("https://klynge.example.dk/ping",),
                f"https://osterby.example.dk/events/{DINNER.removeprefix('urn:uuid:')}",
                "https://forsamlingshus.example.dk/julefrokost",
            )
        ),
    ),
    "at:deleted-entry": (
        "village.atom",
        lambda: (
            [(t.id, t.deleted) for t in village().tombstones]
            == [
                (
                    "urn:uuid:6f1c2a4e-93b7-4d1e-9a0c-1f2e3d4c5b6a",
                    datetime(2026, 11, 20, 12, tzinfo=UTC),
                )
            ]
        ),
    ),
    "atom:published": (
        "village.atom",
        lambda: village().items[0].created == datetime(2026, 11, 2, 10, 15, tzinfo=UTC),
    ),
    "atom:category": (
        "village.atom",
        lambda: [i.category for i in village().items] == ["food", "market", "sport", "carpool"],
    ),
    "atom:content": (
        "village.atom",
        lambda: (
            event(village()).description
            == "<p>Tag en ret med. <strong>Tilmelding</strong> senest 1. december.</p>"
        ),
    ),
    "atom:summary": (
        "plain.atom",
        lambda: notice_body(plain()) == "Hovedgaden er spærret i uge 49.",
    ),
    "atom:source": (
        "merged.atom",
        lambda: (
            [i.source.id if i.source else "" for i in merged().items]
            == ["https://osterby.example.dk/feed.atom", "https://vesterby.example.dk/feed.atom"]
        ),
    ),
    "georss:point": (
        "village.atom",
        lambda: (
            event(village()).place
            == Place(
                name="Østerby Forsamlingshus",
                street="Bygaden 12",
                postcode="5853",
                locality="Østerby",
                lat=55.2931,
                lon=10.6021,
            )
        ),
    ),
    "kind": (
        "village.atom",
        lambda: [i.kind for i in village().items] == ["event", "event", "event", "notice"],
    ),
    "start": (
        "village.atom",
        lambda: (
            (event(village()).start, event(village(), 1).start)
            == (datetime(2026, 12, 5, 17, tzinfo=UTC), date(2026, 12, 12))
        ),
    ),
    "end": (
        "village.atom",
        lambda: (
            (event(village()).end, event(village(), 1).end)
            == (datetime(2026, 12, 6, 0, tzinfo=UTC), date(2026, 12, 14))
        ),
    ),
    "allday": (
        "village.atom",
        lambda: [event(village(), n).all_day for n in range(3)] == [False, True, False],
    ),
    "tzid": ("village.atom", lambda: event(village()).timezone == "Europe/Copenhagen"),
    "rrule": (
        "village.atom",
        lambda: str(event(village(), 2).rrule) == "FREQ=WEEKLY;BYDAY=TU;COUNT=20",
    ),
    "exdate": (
        "village.atom",
        lambda: event(village(), 2).exdates == (datetime(2026, 10, 20, 8, tzinfo=UTC),),
    ),
    "rdate": (
        "village.atom",
        lambda: event(village(), 2).rdates == (datetime(2026, 12, 19, 9, tzinfo=UTC),),
    ),
    "changes": (
        "village.atom",
        lambda: (
            [
                (c.original, c.start, c.title, c.place, c.cancelled)
                for c in event(village(), 2).changes
            ]
            == [
                (
                    datetime(2026, 10, 27, 9, tzinfo=UTC),
                    datetime(2026, 10, 28, 9, tzinfo=UTC),
                    "",
                    Place(name="Skolens gymnastiksal"),
                    False,
                ),
                (
                    datetime(2026, 11, 3, 9, tzinfo=UTC),
                    None,
                    "Gymnastik for seniorer: juleklip",
                    None,
                    False,
                ),
                (datetime(2026, 11, 10, 9, tzinfo=UTC), None, "", None, True),
            ]
        ),
    ),
    "status": (
        "village.atom",
        lambda: (
            [event(village(), n).status for n in range(3)]
            == ["confirmed", "cancelled", "postponed"]
        ),
    ),
    "sequence": ("village.atom", lambda: [i.sequence for i in village().items] == [2, 1, 0, 0]),
    "location": ("village.atom", lambda: event(village(), 1).place == Place(name="Gadekæret")),
    "street": ("village.atom", lambda: event(village()).place.street == "Bygaden 12"),  # type: ignore[union-attr]
    "postcode": ("village.atom", lambda: event(village()).place.postcode == "5853"),  # type: ignore[union-attr]
    "locality": ("village.atom", lambda: event(village()).place.locality == "Østerby"),  # type: ignore[union-attr]
    "organizer": ("village.atom", lambda: event(village(), 2).organizer == "Østerby IF"),
    "organizerurl": (
        "village.atom",
        lambda: event(village()).organizer_url == "https://forsamlingshus.example.dk/",
    ),
    "expires": (
        "village.atom",
        lambda: notice(village()).expires == datetime(2026, 12, 5, 16, tzinfo=UTC),
    ),
    "related": ("village.atom", lambda: notice(village()).related == DINNER),
}


def notice_body(parsed: ParsedFeed) -> str:
    item = parsed.items[0]
    assert isinstance(item, Notice)
    return item.body


DOCUMENTED = sorted(set(table_names("element")))


def test_the_element_tables_are_found() -> None:
    assert len(DOCUMENTED) >= 25
    assert {"kind", "start", "related", "georss:point", "at:deleted-entry"} <= set(DOCUMENTED)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_documented_element_is_in_a_golden_feed_and_read(name: str) -> None:
    assert name in CHECKS, f"{name} is documented but no test reads it"
    golden, check = CHECKS[name]
    prefix, _, local = name.rpartition(":")
    tag = f"{{{NAMESPACES[prefix]}}}{local}"
    assert any(True for _ in etree.parse(str(DATA / golden)).iter(tag)), f"{name} not in {golden}"
    assert check(), f"{name} was not read as documented"


def test_every_element_the_writer_emits_is_documented() -> None:
    full_event = Event(
        id=DINNER,
        title="x",
        updated=datetime(2026, 1, 1, tzinfo=UTC),
        organizer="o",
        organizer_url="https://o.example.dk/",
        start=date(2026, 1, 2),
        end=date(2026, 1, 3),
        all_day=True,
        rrule="FREQ=DAILY;COUNT=2",
        status="cancelled",
        sequence=1,
        place=Place("a", "b", "c", "d"),
        exdates=(date(2026, 1, 2),),
        rdates=(date(2026, 1, 5),),
        changes=(Change(original=date(2026, 1, 3), cancelled=True),),
    )
    full_notice = Notice(
        id=DINNER,
        title="x",
        updated=datetime(2026, 1, 1, tzinfo=UTC),
        expires=datetime(2026, 1, 2, tzinfo=UTC),
        related="urn:x",
    )
    written = {name for item in (full_event, full_notice) for name, _ in klynge_values(item)}
    assert written == {name for name in DOCUMENTED if ":" not in name}


def test_documented_categories_are_the_vocabulary() -> None:
    table = {row[0].strip("`"): (row[1], row[2]) for row in table_rows("term")}
    assert table == CATEGORIES


@pytest.mark.parametrize("number", [0, 1])
def test_example_feeds_in_the_docs_read_without_problems(number: int) -> None:
    blocks = re.findall(r"```xml\n(.*?)```", DOC, re.S)
    assert len(blocks) == 2
    parsed = read_feed(blocks[number].encode())
    assert parsed.problems == ()
    assert parsed.flavour == "klynge"
    assert len(parsed.items) >= 2
    assert len(parsed.tombstones) == 1
