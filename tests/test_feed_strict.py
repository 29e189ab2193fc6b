"""The strict Klynge reader (one XML parse) against the feedparser reader: the same results.

read_feed reads a strict Klynge feed from the XML pass alone and everything else with
feedparser; these tests read the same bytes both ways (`strict=False` forces feedparser) and
compare the whole ParsedFeed, and check which feeds take which path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_feed_roundtrip import META, SETTINGS, TOMBSTONES, events, notices

from klynge.atom.entries import NotStrict
from klynge.atom.reader import ParsedFeed, read_feed, read_strict
from klynge.atom.scan import scan
from klynge.atom.writer import write_feed
from klynge.model import Item, Tombstone

DATA = Path(__file__).parent / "data"
HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:klynge="https://purl.org/klynge/ns/1.0"'
    ' xmlns:georss="http://www.georss.org/georss" xml:lang="da">'
    "<id>https://x.example.dk/feed.atom</id><title>X</title>"
    "<updated>2026-11-27T09:00:00Z</updated><author><name>X</name></author>"
    '<link rel="self" href="https://x.example.dk/feed.atom"/>'
)
EVENT = (
    "<entry><id>urn:uuid:00000000-0000-4000-8000-000000000001</id><title>Fest</title>"
    "<updated>2026-11-27T09:00:00Z</updated>{extra}<klynge:kind>event</klynge:kind>"
    "<klynge:start>2026-12-01T19:00:00+01:00</klynge:start>"
    "<klynge:tzid>Europe/Copenhagen</klynge:tzid></entry>"
)


def feed(extra: str = "", head: str = HEAD, tail: str = "") -> bytes:
    return (head + EVENT.format(extra=extra) + tail + "</feed>").encode()


def strict(data: bytes) -> ParsedFeed | None:
    """Return the strict reader's result, or None when it steps aside for feedparser."""
    outline = scan(data)
    assert outline is not None
    try:
        return read_strict(data, outline)
    except NotStrict:
        return None


def assert_same(data: bytes) -> ParsedFeed:
    both = read_feed(data)
    assert both == read_feed(data, strict=False)
    return both


@SETTINGS
@given(
    st.lists(st.one_of(events(), notices()), min_size=1, max_size=5),
    st.lists(TOMBSTONES, max_size=3),
)
def test_klynge_feeds_read_strictly_give_what_feedparser_gives(
    items: list[Item], tombstones: list[Tombstone]
) -> None:
    data = write_feed(META, items, tombstones)
    fast = strict(data)
    assert fast is not None  # everything Klynge writes is strict
    assert fast == read_feed(data, strict=False)
    assert fast.items == tuple(items)


@pytest.mark.parametrize(
    ("name", "is_strict"),
    [
        ("village.atom", True),
        ("merged.atom", True),
        ("prefix-k.atom", True),
        ("problems.atom", True),
        ("default-ns.atom", False),  # feedparser names default-namespace keys its own way
        ("plain.atom", False),
        ("plain-rss.xml", False),
    ],
)
def test_golden_feeds_give_the_same_both_ways(name: str, is_strict: bool) -> None:
    data = (DATA / name).read_bytes()
    assert (strict(data) is not None) == is_strict
    assert assert_same(data).items


HOSTILE = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.mark.parametrize(
    "extra",
    [
        f"<klynge:location>{HOSTILE}Hus</klynge:location><klynge:organizer>{HOSTILE}</klynge:organizer>",
        f'<content type="html">{HOSTILE}&lt;p onclick="x()"&gt;Tekst&lt;/p&gt;</content>',
        f"<summary>{HOSTILE} &amp; kage</summary>",
        "<content>Kaffe &amp; kage &lt;3</content>",
        '<content type="HTML">&lt;b&gt;fed&lt;/b&gt;</content>',
        '<link rel="alternate" type="text/html" href="javascript:alert(1)"/>',
        '<link href="https:////x.example.dk/e"/><link rel="RELATED" href=" https://y.dk/ "/>',
        '<link rel="alternate" type="text/calendar" href="https://x.example.dk/e.ics"/>',
        "<author><name>Ã¸l</name><uri>javascript:alert(1)</uri></author>",
        "<author><name>IF</name><uri>https:////if.example.dk/</uri><email>a@b</email></author>",
        '<category term=" Sport "/><category term="culture"/>',
        "<published>2026-11-01T10:00:00+01:00</published>",
        "<georss:point>95.0 10.0</georss:point>",
        "<georss:point>55.1,10.2</georss:point>",
        "<klynge:sequence>many</klynge:sequence><klynge:allday>maybe</klynge:allday>",
        "<klynge:end>2026-11-30T19:00:00+01:00</klynge:end>",
        "<klynge:parking>Bag kirken</klynge:parking>",
        "<title>Ã¦ble Â°C</title>",
        '<title type="html">&lt;b&gt;Fed&lt;/b&gt; fest</title>',
        "<rights>CC0</rights>",
    ],
)
def test_strict_entries_give_the_same_both_ways(extra: str) -> None:
    data = feed(extra)
    if extra.startswith("<title"):  # instead of the entry's title
        data = feed().replace(b"<title>Fest</title>", extra.encode())
    assert strict(data) is not None
    assert_same(data)


@pytest.mark.parametrize(
    "extra",
    [
        '<x:rating xmlns:x="urn:example:other" stars="5">god</x:rating>',
        '<dc:date xmlns:dc="http://purl.org/dc/elements/1.1/">2026-01-01T00:00:00Z</dc:date>',
        "<modified>2026-01-01T00:00:00Z</modified>",  # Atom 0.3: feedparser reads it as updated
        '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><b>x</b></div></content>',
        '<content src="https://x.example.dk/c"/>',
        "<summary>a</summary><summary>b</summary>",
        "<link rel='alternate'>https://x.example.dk/text-link</link>",
        "<klynge:start>2026-12-02T19:00:00+01:00</klynge:start>",  # a second start
        '<klynge:location kind="x">Hus</klynge:location>',
        "<klynge:location>Hus <b>x</b></klynge:location>",
        "<published>1 Nov 2026 10:00:00 GMT</published>",
        "<georss:point>55.1 10.2 3</georss:point>",
        "<contributor><name>B</name></contributor>",
        '<link xml:base="https://other.example/" href="e"/>',
    ],
)
def test_entries_outside_the_format_are_read_by_feedparser(extra: str) -> None:
    data = feed(extra)
    assert strict(data) is None
    assert_same(data)


@pytest.mark.parametrize(
    ("head", "tail"),
    [
        (HEAD.replace('encoding="utf-8"', 'encoding="iso-8859-1"'), ""),
        (HEAD.replace("xml:lang", 'xmlns:k="https://purl.org/klynge/ns/1.0" xml:lang'), ""),
        (
            HEAD.replace(
                "<author><name>X</name></author>", "<author><name>X</name><email>e</email></author>"
            ),
            "",
        ),
        (HEAD.replace("2026-11-27T09:00:00Z", "Fri, 27 Nov 2026 09:00:00 GMT"), ""),
        (HEAD.replace("<id>https://x.example.dk/feed.atom</id>", ""), ""),
        (HEAD.replace('xml:lang="da"', 'lang="da"'), ""),
        (HEAD, '<dc:title xmlns:dc="http://purl.org/dc/elements/1.1/">Y</dc:title>'),
        (
            HEAD,
            "<entry><id>urn:plain</id><title>Plain</title><updated>2026-11-27T09:00:00Z</updated></entry>",
        ),
    ],
)
def test_feeds_outside_the_format_are_read_by_feedparser(head: str, tail: str) -> None:
    data = feed(head=head, tail=tail)
    assert strict(data) is None
    assert_same(data)


def test_the_feed_meta_is_the_same_both_ways() -> None:
    head = HEAD.replace('xml:lang="da"', 'xml:lang="da_DK"').replace(
        "<title>X</title>",
        '<title type="html">&lt;i&gt;X&lt;/i&gt;by</title><subtitle>Sub</subtitle>',
    )
    parsed = assert_same(feed(head=head))
    assert strict(feed(head=head)) is not None
    assert (parsed.meta.title, parsed.meta.subtitle, parsed.meta.language) == (
        "Xby",
        "Sub",
        "da-DK",
    )
    assert parsed.meta.self_url == "https://x.example.dk/feed.atom"
