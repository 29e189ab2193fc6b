"""A written feed is valid Atom (RFC 4287's RELAX NG schema) and feedparser recovers every field."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import feedparser
import pytest
from lxml import etree

from klynge.atom.writer import FeedMeta, write_feed
from klynge.model import Event, FeedSource, Notice, Place, Tombstone

DATA = Path(__file__).parent / "data"
CPH = ZoneInfo("Europe/Copenhagen")
NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
SOURCE = FeedSource(
    id="https://osterby.example.dk/feed.atom",
    title="Østerby",
    updated=NOW,
    self_url="https://osterby.example.dk/feed.atom",
    author="Østerby Lokalråd",
)
META = FeedMeta(
    id="https://klynge.example.dk/feed.atom",
    title="Sydklyngen",
    self_url="https://klynge.example.dk/feed.atom",
    updated=NOW,
    author="Sydklyngen",
    alternate_url="https://klynge.example.dk/",
    hub_urls=("https://hub.example.dk/", "https://hub2.example.dk/"),
    subtitle="Alt i klyngen",
)
DINNER = Event(
    id="urn:uuid:0b9e4a52-7c1d-4e55-9a3b-2f4f0c6d8e11",
    title="Julefrokost & dans",
    updated=NOW,
    created=datetime(2026, 11, 2, 10, 15, tzinfo=UTC),
    category="food",
    organizer="Østerby Forsamlingshus",
    organizer_url="https://forsamlingshus.example.dk/",
    link="https://osterby.example.dk/events/0b9e4a52",
    url="https://forsamlingshus.example.dk/julefrokost",
    sequence=2,
    source=SOURCE,
    start=datetime(2026, 12, 5, 18, 0, tzinfo=CPH),
    end=datetime(2026, 12, 6, 1, 0, tzinfo=CPH),
    description="<p>Tag en <strong>ret</strong> med.</p>",
    rrule="FREQ=YEARLY;COUNT=3",
    place=Place(
        name="Forsamlingshuset",
        street="Bygaden 12",
        postcode="5853",
        locality="Østerby",
        lat=55.2931,
        lon=10.6021,
    ),
)
MARKET = Event(
    id="urn:uuid:3c7d9e1f-2a4b-4c6d-8e0f-1a2b3c4d5e6f",
    title="Juletræsmarked",
    updated=NOW,
    start=date(2026, 12, 12),
    end=date(2026, 12, 14),
    all_day=True,
    status="cancelled",
)
CARPOOL = Notice(
    id="urn:uuid:5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
    title="Samkørsel til julefrokosten",
    updated=NOW,
    category="carpool",
    body="<p>To ledige pladser.</p>",
    expires=datetime(2026, 12, 5, 17, 0, tzinfo=CPH),
    related=DINNER.id,
)
GONE = Tombstone(id="urn:uuid:6f1c2a4e-93b7-4d1e-9a0c-1f2e3d4c5b6a", deleted=NOW, source=SOURCE)


@pytest.fixture(scope="module")
def atom_schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(DATA / "atom.rng")))


@pytest.fixture(scope="module")
def written() -> bytes:
    return write_feed(META, [DINNER, MARKET, CARPOOL], [GONE])


def test_written_feed_is_valid_atom(atom_schema: etree.RelaxNG, written: bytes) -> None:
    document = etree.fromstring(written)
    assert atom_schema.validate(document), atom_schema.error_log
    assert (
        document.findall("{http://www.w3.org/2005/Atom}entry")[0].findtext(
            "{http://www.w3.org/2005/Atom}id"
        )
        == DINNER.id
    )  # entries keep the given order


@pytest.mark.parametrize(
    "name", ["village.atom", "merged.atom", "prefix-k.atom", "default-ns.atom", "plain.atom"]
)
def test_golden_feeds_are_valid_atom(atom_schema: etree.RelaxNG, name: str) -> None:
    assert atom_schema.validate(etree.parse(str(DATA / name))), atom_schema.error_log


def test_schema_rejects_invalid_atom(atom_schema: etree.RelaxNG, written: bytes) -> None:
    """The validator can fail: an entry without atom:id is not Atom."""
    document = etree.fromstring(written)
    entry = document.find("{http://www.w3.org/2005/Atom}entry")
    entry.remove(entry.find("{http://www.w3.org/2005/Atom}id"))
    assert not atom_schema.validate(document)


def test_feedparser_recovers_every_field(written: bytes) -> None:
    parsed = feedparser.parse(io.BytesIO(written))
    assert not parsed.bozo
    feed = parsed.feed
    assert (feed.id, feed.title, feed.subtitle, feed.language) == (
        META.id,
        META.title,
        META.subtitle,
        "da",
    )
    assert feed.author == "Sydklyngen"
    assert feed.updated_parsed[:6] == (2026, 11, 27, 9, 30, 0)
    assert {(link.rel, link.href) for link in feed.links} == {
        ("self", META.self_url),
        ("alternate", META.alternate_url),
        ("hub", "https://hub.example.dk/"),
        ("hub", "https://hub2.example.dk/"),
    }
    dinner, market, carpool = parsed.entries
    assert (dinner.id, dinner.title) == (DINNER.id, "Julefrokost & dans")
    assert dinner.published_parsed[:3] == (2026, 11, 2)
    assert dinner.author_detail == {
        "name": "Østerby Forsamlingshus",
        "href": "https://forsamlingshus.example.dk/",
    }
    assert dinner.tags[0]["term"] == "food"
    assert dinner.tags[0]["label"] == "Spisning"
    assert dinner.content[0]["value"] == "<p>Tag en <strong>ret</strong> med.</p>"
    assert dinner.content[0]["type"] == "text/html"
    assert [(link.rel, link.type, link.href) for link in dinner.links] == [
        ("alternate", "text/html", DINNER.link),
        ("related", "text/calendar", DINNER.link + ".ics"),
        ("related", "text/html", DINNER.url),
    ]
    klynge = {
        key.removeprefix("klynge_"): value
        for key, value in dinner.items()
        if key.startswith("klynge_")
    }
    assert klynge == {
        "kind": "event",
        "start": "2026-12-05T18:00:00+01:00",
        "end": "2026-12-06T01:00:00+01:00",
        "tzid": "Europe/Copenhagen",  # allday false and status confirmed are the defaults
        "rrule": "FREQ=YEARLY;COUNT=3",
        "location": "Forsamlingshuset",
        "street": "Bygaden 12",
        "postcode": "5853",
        "locality": "Østerby",
        "organizer": "Østerby Forsamlingshus",
        "organizerurl": "https://forsamlingshus.example.dk/",
        "sequence": "2",
    }
    assert dinner.where["coordinates"] == (10.6021, 55.2931)  # GeoJSON order: lon, lat
    assert dinner.source["id"] == SOURCE.id
    assert dinner.source["title"] == "Østerby"
    assert (market.klynge_start, market.klynge_end, market.klynge_allday, market.klynge_status) == (
        "2026-12-12",
        "2026-12-14",
        "true",
        "cancelled",
    )
    assert (carpool.klynge_kind, carpool.klynge_expires, carpool.klynge_related) == (
        "notice",
        "2026-12-05T17:00:00+01:00",
        DINNER.id,
    )
    assert carpool.content[0]["value"] == "<p>To ledige pladser.</p>"


def test_tombstone_is_written_as_rfc6721_with_source(written: bytes) -> None:
    document = etree.fromstring(written)
    ns = {"at": "http://purl.org/atompub/tombstones/1.0", "a": "http://www.w3.org/2005/Atom"}
    (tombstone,) = document.findall("at:deleted-entry", ns)
    assert tombstone.get("ref") == GONE.id
    assert tombstone.get("when") == "2026-11-27T09:30:00+00:00"
    assert tombstone.findtext("a:source/a:id", namespaces=ns) == SOURCE.id
    assert tombstone.findtext("a:source/a:author/a:name", namespaces=ns) == "Østerby Lokalråd"
    assert tombstone.find("a:source/a:link[@rel='self']", ns).get("href") == SOURCE.self_url


def test_an_event_entry_has_one_alternate_link_the_page(written: bytes) -> None:
    """Feed readers (newsboat) open an entry's alternate link: it must be the page, not the .ics."""
    parsed = feedparser.parse(written)
    dinner = parsed.entries[0]
    assert [link.href for link in dinner.links if link.rel == "alternate"] == [DINNER.link]
    assert dinner.link == DINNER.link
    calendar = [link for link in dinner.links if link.type == "text/calendar"]
    assert [(link.rel, link.href) for link in calendar] == [("related", DINNER.link + ".ics")]
