"""read_feed on real bytes: golden feeds, plain Atom and RSS, prefixes, hostile and broken input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from klynge.atom.entries import NO_UPDATED
from klynge.atom.reader import Problem, read_feed
from klynge.errors import FeedError
from klynge.messages import Message
from klynge.model import NOT_HTTP, Event, FeedSource, Notice

DATA = Path(__file__).parent / "data"
HEAD = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:klynge="https://purl.org/klynge/ns/1.0"'
    b' xmlns:georss="http://www.georss.org/georss">'
    b"<id>https://x.example.dk/feed.atom</id><title>X</title>"
    b"<updated>2026-11-27T09:00:00Z</updated><author><name>X</name></author>"
)


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def feed_of(*entries: str) -> bytes:
    return HEAD + "".join(entries).encode() + b"</feed>"


def entry(body: str, entry_id: str = "urn:uuid:00000000-0000-4000-8000-000000000001") -> str:
    return f"<entry><id>{entry_id}</id><updated>2026-11-27T09:00:00Z</updated>{body}</entry>"


def test_plain_atom_entries_become_notices() -> None:
    parsed = read_feed(read("plain.atom"))
    assert parsed.flavour == "atom"
    assert parsed.problems == ()
    roads, waste = parsed.items
    assert isinstance(roads, Notice)
    assert roads.id == "tag:kommune.example.dk,2026:nyhed-17"
    assert roads.title == "Vejarbejde på Hovedgaden"
    assert roads.link == "https://kommune.example.dk/nyheder/17"
    assert roads.body == "Hovedgaden er spærret i uge 49."
    assert roads.updated == datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    assert roads.created == datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    assert roads.category == ""  # free-form categories outside the vocabulary are dropped
    assert waste.title == "Nyt affaldssystem"  # type="html" title reduced to text
    assert waste.body == "<p>Fra januar får alle <b>fire</b> spande.</p>"
    assert parsed.meta.self_url == "https://kommune.example.dk/nyheder.atom"
    assert parsed.meta.title == "Kommunens nyheder"


def test_rss2_items_become_notices() -> None:
    parsed = read_feed(read("plain-rss.xml"), url="https://skole.example.dk/rss.xml")
    assert parsed.flavour == "rss"
    assert parsed.problems == ()
    party, crafts = parsed.items
    assert isinstance(party, Notice) and isinstance(crafts, Notice)
    assert party.id == "skole-2026-41"  # the guid
    assert crafts.id == "https://skole.example.dk/nyt/juleklip"  # no guid: the link
    assert party.title == "Skolefest"
    assert party.body == "<p>Kom til skolefest torsdag.</p>"
    assert party.link == "https://skole.example.dk/nyt/skolefest"
    assert party.updated == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    assert parsed.meta.alternate_url == "https://skole.example.dk/"
    assert parsed.meta.self_url == "https://skole.example.dk/rss.xml"
    assert parsed.meta.language == "da"


def test_prefix_k_is_resolved() -> None:
    parsed = read_feed(read("prefix-k.atom"))
    assert parsed.flavour == "klynge"
    (event,) = parsed.items
    assert isinstance(event, Event)
    assert event.start == datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
    assert event.place is not None and event.place.name == "Boldbanen"
    assert event.sequence == 3


def test_default_namespace_is_resolved() -> None:
    parsed = read_feed(read("default-ns.atom"))
    assert parsed.flavour == "klynge"
    (event,) = parsed.items
    assert isinstance(event, Event)
    assert (event.start, event.all_day) == (date(2026, 12, 6), True)
    assert event.place is not None and event.place.name == "Hallen"


def test_tombstones_are_read() -> None:
    (tombstone,) = read_feed(read("village.atom")).tombstones
    assert tombstone.id == "urn:uuid:6f1c2a4e-93b7-4d1e-9a0c-1f2e3d4c5b6a"
    assert tombstone.deleted == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert tombstone.source is None


OSTERBY = FeedSource(
    id="https://osterby.example.dk/feed.atom",
    title="Østerby",
    updated=datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
    self_url="https://osterby.example.dk/feed.atom",
    author="Østerby Lokalråd",
)


def test_atom_source_is_kept_on_items_and_tombstones() -> None:
    parsed = read_feed(read("merged.atom"))
    dinner, light = parsed.items
    assert dinner.source == OSTERBY
    assert light.source == FeedSource(
        id="https://vesterby.example.dk/feed.atom",
        title="Vesterby",
        updated=datetime(2026, 11, 26, 20, 0, tzinfo=UTC),
        self_url="https://vesterby.example.dk/feed.atom",
        author="Vesterby Borgerforening",
    )
    assert parsed.tombstones[0].source == OSTERBY


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&lol3;</title></feed>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&xxe;</title></feed>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
 "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>x</title></channel></rss>"""
REFUSED = "the feed contains a DTD/entity declaration, which Klynge refuses"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            "<!DOCTYPE html><html><head><title>Østerby</title></head><body></body></html>".encode(),
            "the document is HTML, not a feed",
        ),
        (b"\n  <html lang='da'><body><p>Velkommen</p></body></html>", "the document is HTML"),
        (
            b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
            "the document is HTML",
        ),
        (b"", "the document is empty"),
        (b"   \n\t ", "the document is empty"),
        (b"hello, this is not a feed", "the document is not XML"),
        (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "the document is not XML"),
        (b"/etc/hostname", "the document is not XML"),  # never opened as a path by feedparser
        (b"<feed><entry><title>x</ti", "not well-formed XML and no feed could be recovered"),
        (b'<?xml version="1.0"?><opml version="2.0"><body/></opml>', "its root is <opml>"),
        (BILLION_LAUGHS, REFUSED),
        (XXE, REFUSED),
        (EXTERNAL_DTD, REFUSED),
    ],
)
def test_not_a_feed_raises_feed_error_in_words(data: bytes, words: str) -> None:
    with pytest.raises(FeedError) as caught:
        read_feed(data)
    assert words in caught.value.message


def test_a_truncated_feed_is_recovered_with_a_warning_and_marked_incomplete() -> None:
    whole = read("village.atom")
    cut = whole[: whole.index(b"<title>Samk")]  # the last entry is cut off mid-way
    parsed = read_feed(cut)
    assert not parsed.complete
    assert [item.title for item in parsed.items][:3] == [
        "Julefrokost i forsamlingshuset",
        "Juletræsmarked",
        "Gymnastik for seniorer",
    ]
    assert any(p.severity == "warning" and p.field == "feed" for p in parsed.problems)
    assert read_feed(whole).complete


SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"  # markup as text inside the XML
DOUBLE = "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;"  # entity-escaped twice


@pytest.mark.parametrize("payload", [ESCAPED, DOUBLE, f"<![CDATA[{SCRIPT}]]>"])
def test_script_in_every_text_field_never_reaches_the_model(payload: str) -> None:
    fields = "".join(
        f"<klynge:{name}>{payload}Tekst</klynge:{name}>"
        for name in ("location", "street", "postcode", "locality", "organizer")
    )
    body = (
        f"<title>{payload}Titel</title><author><name>{payload}A</name></author>"
        f'<content type="html">{payload}&lt;p onclick="x()"&gt;Indhold&lt;/p&gt;'
        f'&lt;a href="javascript:alert(1)"&gt;klik&lt;/a&gt;</content>'
        f"<klynge:kind>event</klynge:kind><klynge:start>2026-12-01T19:00:00+01:00</klynge:start>"
        f"{fields}"
    )
    notice = entry(
        f'<title>{payload}N</title><summary type="html">{payload}</summary>'
        "<klynge:kind>notice</klynge:kind>",
        "urn:uuid:00000000-0000-4000-8000-000000000002",
    )
    parsed = read_feed(feed_of(entry(body), notice))
    assert len(parsed.items) == 2, parsed.problems
    for item in parsed.items:
        text = repr(item).lower()
        assert "<script" not in text and "javascript:" not in text and "onclick" not in text
    event = parsed.items[0]
    assert isinstance(event, Event)
    assert event.title.endswith("Titel")
    assert event.place is not None and event.place.name.endswith("Tekst")


@pytest.mark.parametrize(
    ("element", "field"),
    [
        ('<link rel="alternate" type="text/html" href="javascript:alert(1)"/>', "link"),
        ('<link rel="related" href="javascript:alert(1)"/>', "url"),
        ("<klynge:organizerurl>javascript:alert(1)</klynge:organizerurl>", "organizer_url"),
        ("<author><name>A</name><uri>javascript:alert(1)</uri></author>", "organizer_url"),
    ],
)
def test_javascript_urls_drop_the_entry_with_a_problem(element: str, field: str) -> None:
    body = (
        f"<title>T</title>{element}<klynge:kind>event</klynge:kind>"
        "<klynge:start>2026-12-01T19:00:00+01:00</klynge:start>"
    )
    parsed = read_feed(feed_of(entry(body)))
    assert parsed.items == ()
    assert parsed.problems == (
        Problem(
            "urn:uuid:00000000-0000-4000-8000-000000000001",
            field,
            Message(NOT_HTTP),
        ),
    )


def test_every_dropped_entry_has_a_problem() -> None:
    parsed = read_feed(read("problems.atom"))
    assert [item.title for item in parsed.items] == ["Denne er i orden"]
    assert {(p.entry_id[-1], p.field, p.severity) for p in parsed.problems} == {
        ("1", "start", "error"),
        ("2", "end", "error"),
        ("3", "link", "error"),
        ("4", "timezone", "error"),
    }


def test_unknown_kind_and_bad_values_are_reported() -> None:
    parsed = read_feed(
        feed_of(
            entry("<title>A</title><klynge:kind>meeting-room</klynge:kind>", "urn:a"),
            entry(
                "<title>B</title><klynge:kind>event</klynge:kind>"
                "<klynge:start>2026-12-01T19:00:00+01:00</klynge:start>"
                "<klynge:sequence>many</klynge:sequence><klynge:allday>maybe</klynge:allday>",
                "urn:b",
            ),
            entry(
                "<title>C</title><klynge:kind>event</klynge:kind>"
                "<klynge:start>2026-12-01T19:00:00+01:00</klynge:start>"
                "<georss:point>95.0 10.0</georss:point>",
                "urn:c",
            ),
        )
    )
    assert parsed.items == ()
    assert {(p.entry_id, p.field) for p in parsed.problems} == {
        ("urn:a", "kind"),
        ("urn:b", "sequence"),
        ("urn:b", "all_day"),
        ("urn:c", "lat"),
    }


def test_missing_updated_uses_the_feed_time_with_a_warning() -> None:
    body = "<entry><id>urn:x</id><title>T</title><klynge:kind>notice</klynge:kind></entry>"
    parsed = read_feed(HEAD + body.encode() + b"</feed>")
    (notice,) = parsed.items
    assert notice.updated == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert parsed.problems == (Problem("urn:x", "updated", Message(NO_UPDATED), "warning"),)


def test_unknown_elements_are_ignored() -> None:
    body = (
        "<title>T</title><klynge:kind>event</klynge:kind>"
        "<klynge:start>2026-12-01T19:00:00+01:00</klynge:start>"
        "<klynge:parking>Bag kirken</klynge:parking>"
        '<x:rating xmlns:x="urn:example:other" stars="5">god</x:rating>'
    )
    parsed = read_feed(
        feed_of(entry(body)).replace(b"</feed>", b"<klynge:future>1</klynge:future></feed>")
    )
    assert parsed.problems == ()
    assert [item.title for item in parsed.items] == ["T"]


def test_text_that_looks_like_mojibake_is_kept_exactly() -> None:
    """feedparser turns "Ã¦" into "æ" in every value; the reader takes such text from XML."""
    body = (
        "<title>Ã¦ble Â°C</title><author><name>Ã¸l</name></author>"
        '<content type="html">Â¡hola!</content><klynge:kind>event</klynge:kind>'
        "<klynge:start>2026-12-01T19:00:00+01:00</klynge:start>"
        "<klynge:location>Ã…bo</klynge:location>"
    )
    (event,) = read_feed(feed_of(entry(body))).items
    assert isinstance(event, Event)
    assert (event.title, event.organizer, event.description) == ("Ã¦ble Â°C", "Ã¸l", "Â¡hola!")
    assert event.place is not None and event.place.name == "Ã…bo"
