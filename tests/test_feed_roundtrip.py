"""Property tests: write_feed then read_feed gives back equal Events, Notices and Tombstones."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klynge.atom.reader import read_feed
from klynge.atom.writer import FeedMeta, write_feed, xml_text
from klynge.model import (
    CATEGORIES,
    Event,
    FeedSource,
    Item,
    Notice,
    Place,
    Tombstone,
    as_utc,
    format_when,
    new_id,
)
from klynge.recurrence import occurrences
from klynge.series import MAX_EXCEPTIONS, Change, key, rule_starts

CPH = ZoneInfo("Europe/Copenhagen")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Printable text: letters (æøå among them), digits, punctuation, symbols (emoji), spaces.
# '<' is left out on purpose: the reader strips anything that looks like a tag from plain-text
# fields (docs/feed-format.md, "Processing rules"), which test_feed_reader.py covers.
TEXT = st.text(
    alphabet=st.characters(
        categories=("L", "N", "P", "S", "Zs"), exclude_characters="<", max_codepoint=0x1FAFF
    ),
    max_size=60,
)
DANISH = st.sampled_from(["Fællesspisning", "Ålegilde på Øen", "Juletræ 🎄", "Kaffe & kage <3"])
TITLE = st.one_of(DANISH, TEXT).map(str.strip).filter(bool)
HTML = st.one_of(
    TEXT.map(lambda t: t.strip()),
    st.sampled_from(
        [
            "<p>Tag en ret med &amp; godt humør</p>",
            '<p><a href="https://example.dk/x">Læs mere</a> om <strong>festen</strong></p>',
            "<ul><li>Kaffe</li><li>Kage</li></ul>",
            "Æblekage 🍰 &lt;3",
        ]
    ),
)
URL = st.sampled_from(["", "https://osterby.example.dk/x", "http://example.dk/a?b=c&d=æ"])
# The format carries times to the second (RFC 3339 without fractions), like the model's utcnow.
UPDATED = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))
CATEGORY = st.sampled_from(["", *CATEGORIES, "boules"])


def _dst_days() -> list[date]:
    """Last Sundays of March and October 2024-2030 (Copenhagen's DST changes)."""
    days = []
    for year in range(2024, 2031):
        for month in (3, 10):
            last = date(year, month, 31)
            days.append(last - timedelta(days=(last.weekday() + 1) % 7))
    return days


@st.composite
def local_start(draw: st.DrawFn) -> datetime:
    """A Copenhagen wall time, often on a DST change day, maybe nonexistent or ambiguous."""
    if draw(st.booleans()):
        day = draw(st.sampled_from(_dst_days()))
        hour, minute = draw(st.integers(0, 4)), draw(st.sampled_from([0, 15, 30, 59]))
        naive = datetime(day.year, day.month, day.day, hour, minute)
    else:
        naive = draw(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 1)))
    aware = naive.replace(tzinfo=CPH, fold=draw(st.sampled_from([0, 1])), microsecond=0)
    # Normalise through UTC as parse_when/localize do: a nonexistent 02:30 becomes 03:30, and
    # an ambiguous 02:30 keeps the fold it was given. (Event keeps a nonexistent wall time as
    # given, since astimezone() to the same zone is a no-op; noted for the model's owner.)
    return aware.astimezone(UTC).astimezone(CPH)


@st.composite
def places(draw: st.DrawFn) -> Place | None:
    if draw(st.booleans()):
        return None
    coordinates = draw(
        st.one_of(
            st.none(),
            st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
        )
    )
    lat, lon = coordinates if coordinates else (None, None)
    return Place(
        name=draw(TITLE),
        street=draw(st.sampled_from(["", "Bygaden 12", "Åvej 3, 1. tv."])),
        postcode=draw(st.sampled_from(["", "5853"])),
        locality=draw(st.sampled_from(["", "Østerby"])),
        lat=lat,
        lon=lon,
    )


SOURCES = st.one_of(
    st.none(),
    st.builds(
        FeedSource,
        id=st.sampled_from(
            [
                "https://osterby.example.dk/feed.atom",
                "urn:uuid:1c0ffee0-0000-4000-8000-000000000001",
            ]
        ),
        title=st.sampled_from(["", "Østerby", "Vesterby 🌲"]),
        updated=st.one_of(st.none(), UPDATED),
        self_url=st.sampled_from(["", "https://osterby.example.dk/feed.atom"]),
        author=st.sampled_from(["", "Østerby Lokalråd"]),
    ),
)


@st.composite
def common(draw: st.DrawFn) -> dict[str, object]:
    return {
        "id": new_id(),
        "title": draw(TITLE),
        "updated": draw(UPDATED),
        "created": draw(st.one_of(st.none(), UPDATED)),
        "category": draw(CATEGORY),
        "organizer": draw(st.one_of(st.just(""), TITLE)),
        "organizer_url": draw(URL),
        "link": draw(URL),
        "url": draw(URL),
        "sequence": draw(st.integers(0, 1000)),
        "source": draw(SOURCES),
    }


@st.composite
def events(draw: st.DrawFn) -> Event:
    fields = draw(common())
    all_day = draw(st.booleans())
    rrule = draw(
        st.sampled_from(
            [
                "",
                "FREQ=WEEKLY;COUNT=10",
                "FREQ=DAILY;UNTIL={until}",
                "FREQ=MONTHLY;BYDAY=1SA;COUNT=6",
            ]
        )
    )
    length = draw(st.one_of(st.none(), st.integers(1, 60 * 24 * 3)))
    if all_day:
        start: date | datetime = draw(
            st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 1))
        )
        end = None if length is None else start + timedelta(days=1 + length // (60 * 24))
    else:
        start = draw(local_start())
        # Add the length in UTC so it is a real duration across DST changes.
        end = (
            None
            if length is None
            else (start.astimezone(UTC) + timedelta(minutes=length)).astimezone(CPH)
        )
        if end is not None and end.replace(tzinfo=None) <= start.replace(tzinfo=None):
            # Within the repeated hour the end's wall time can be earlier though it is later;
            # the model compares wall times there (noted for its owner), so leave the end out.
            end = None
    until = (start + timedelta(days=draw(st.integers(1, 400)))).strftime("%Y%m%dT235959Z")
    return Event(
        **fields,  # type: ignore[arg-type]
        start=start,
        end=end,
        all_day=all_day,
        timezone="Europe/Copenhagen",
        description=draw(HTML),
        status=draw(st.sampled_from(["confirmed", "cancelled", "postponed"])),
        rrule=rrule.format(until=until),
        place=draw(places()),
    )


@st.composite
def notices(draw: st.DrawFn) -> Notice:
    fields = draw(common())
    return Notice(
        **fields,  # type: ignore[arg-type]
        body=draw(HTML),
        expires=draw(st.one_of(st.none(), st.builds(lambda d: d.astimezone(CPH), UPDATED))),
        related=draw(st.sampled_from(["", "urn:uuid:0b9e4a52-7c1d-4e55-9a3b-2f4f0c6d8e11"])),
    )


TOMBSTONES = st.builds(Tombstone, id=st.builds(new_id), deleted=UPDATED, source=SOURCES)
META = FeedMeta(
    id="https://osterby.example.dk/feed.atom",
    title="Østerby",
    self_url="https://osterby.example.dk/feed.atom",
    updated=datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
    author="Østerby Lokalråd",
    alternate_url="https://osterby.example.dk/",
    hub_urls=("https://klynge.example.dk/ping",),
    subtitle="Det sker i Østerby",
)


def _roundtrip(items: list[Item], tombstones: list[Tombstone] = ()) -> tuple[Item, ...]:  # type: ignore[assignment]
    parsed = read_feed(write_feed(META, items, tombstones))
    assert parsed.problems == ()
    assert parsed.flavour == "klynge"
    assert parsed.meta == META
    assert parsed.tombstones == tuple(tombstones)
    return parsed.items


@SETTINGS
@given(st.lists(events(), min_size=1, max_size=4))
def test_events_round_trip(items: list[Event]) -> None:
    back = _roundtrip(list(items))
    assert back == tuple(items)
    for original, copy in zip(items, back, strict=True):
        # Intra-zone datetime equality ignores fold: compare instants explicitly.
        assert as_utc(copy.start) == as_utc(original.start)
        if original.end is not None:
            assert as_utc(copy.end) == as_utc(original.end)  # type: ignore[union-attr, arg-type]


@SETTINGS
@given(st.lists(notices(), min_size=1, max_size=4), st.lists(TOMBSTONES, max_size=3))
def test_notices_and_tombstones_round_trip(
    items: list[Notice], tombstones: list[Tombstone]
) -> None:
    assert _roundtrip(list(items), tombstones) == tuple(items)


@SETTINGS
@given(HTML)
def test_sanitised_html_survives_a_second_sanitising(html: str) -> None:
    notice = Notice(id=new_id(), title="x", updated=META.updated, body=html)
    (copy,) = _roundtrip([notice])
    assert copy.body == notice.body  # type: ignore[union-attr]


def test_events_on_dst_days_keep_their_instants() -> None:
    """The nonexistent 02:30 moves to 03:30; the ambiguous 02:30 keeps the fold given."""
    spring = Event(
        id=new_id(),
        title="Forår",
        updated=META.updated,
        start=datetime(2026, 3, 29, 2, 30, tzinfo=CPH),
    )
    autumn_first = Event(
        id=new_id(),
        title="Efterår 1",
        updated=META.updated,
        start=datetime(2026, 10, 25, 2, 30, tzinfo=CPH, fold=0),
    )
    autumn_second = Event(
        id=new_id(),
        title="Efterår 2",
        updated=META.updated,
        start=datetime(2026, 10, 25, 2, 30, tzinfo=CPH, fold=1),
    )
    back = _roundtrip([spring, autumn_first, autumn_second])
    assert [as_utc(e.start).isoformat() for e in back] == [  # type: ignore[union-attr]
        "2026-03-29T01:30:00+00:00",
        "2026-10-25T00:30:00+00:00",
        "2026-10-25T01:30:00+00:00",
    ]


# --- series with exceptions (docs/feed-format.md, "Series exceptions") ----------------------

SERIES_RULES = ["FREQ=WEEKLY;COUNT=12", "FREQ=DAILY;COUNT=40", "FREQ=MONTHLY;BYDAY=-1SU;COUNT=8"]


@st.composite
def series_events(draw: st.DrawFn) -> Event:
    """A series over DST changes with excluded, extra, moved, retitled and cancelled dates."""
    plain = draw(events())
    rule = draw(st.sampled_from(SERIES_RULES))
    base = replace(plain, rrule=rule)
    starts = list(rule_starts(base))
    excluded = draw(st.lists(st.sampled_from(starts), max_size=4, unique=True))
    left = [s for s in starts if s not in excluded]
    extra = draw(st.lists(st.integers(1, 400), max_size=3, unique=True))
    rdates = tuple(_shifted(base.start, days) for days in extra)
    # An excluded date excludes an extra date on it too (RFC 5545 §3.8.5.1): not a target.
    dates = left + [r for r in rdates if key(r) not in {key(e) for e in excluded}]
    targets = draw(st.lists(st.sampled_from(dates), max_size=4, unique_by=key))
    changes = tuple(draw(changes_of(base, original)) for original in targets)
    return replace(base, exdates=tuple(excluded), rdates=rdates, changes=changes)


def _shifted(start: date | datetime, days: int) -> date | datetime:
    if isinstance(start, datetime):
        return (start.astimezone(UTC) + timedelta(days=days, minutes=7)).astimezone(CPH)
    return start + timedelta(days=days)


@st.composite
def changes_of(draw: st.DrawFn, event: Event, original: date | datetime) -> Change:
    moved = draw(st.one_of(st.none(), st.integers(-3 * 24 * 60, 3 * 24 * 60)))
    start = None
    if moved is not None:
        start = _shifted(original, 0)
        if isinstance(original, datetime):
            start = (original.astimezone(UTC) + timedelta(minutes=moved)).astimezone(CPH)
        else:
            start = original + timedelta(days=moved // (24 * 60))
    return Change(
        original=original,
        start=start,
        title=draw(st.one_of(st.just(""), TITLE)),
        description=draw(st.one_of(st.just(""), HTML)),
        place=draw(places()),
        cancelled=draw(st.booleans()),
        sequence=draw(st.integers(0, 50)),
    )


@SETTINGS
@given(st.lists(series_events(), min_size=1, max_size=3), st.booleans())
def test_series_exceptions_round_trip(items: list[Event], strict: bool) -> None:
    """Both readers (the strict XML view and feedparser) give back the same exceptions."""
    parsed = read_feed(write_feed(META, items), strict=strict)
    assert parsed.problems == ()
    assert parsed.items == tuple(items)
    for original, copy in zip(items, parsed.items, strict=True):
        assert isinstance(copy, Event)
        assert [key(v) for v in copy.exdates] == [key(v) for v in original.exdates]
        assert [key(v) for v in copy.rdates] == [key(v) for v in original.rdates]
        assert [key(c.original) for c in copy.changes] == [
            key(c.original) for c in original.changes
        ]
        got = [(as_utc(o.start), o.title, o.status) for o in occurrences(copy, *WINDOW)]
        want = [(as_utc(o.start), o.title, o.status) for o in occurrences(original, *WINDOW)]
        assert got == want


WINDOW = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2033, 1, 1, tzinfo=UTC))


def _weekly() -> Event:
    start = datetime(2026, 10, 4, 19, 0, tzinfo=CPH)  # Sundays, over the change on 25 October
    return Event(
        id=new_id(),
        title="Badminton for voksne",
        updated=META.updated,
        start=start,
        end=start + timedelta(hours=2),
        rrule="FREQ=WEEKLY;COUNT=6",
    )


def _with(event: Event, **texts: str) -> bytes:
    """Return a feed of `event` with Klynge elements set to the given raw texts."""
    data = write_feed(META, [event]).decode()
    extra = "".join(f"<klynge:{name}>{text}</klynge:{name}>" for name, text in texts.items())
    return data.replace("</entry>", extra + "</entry>").encode()


def test_an_older_reader_sees_the_rule_dates() -> None:
    """The exceptions are extra elements: the rule and its start are written as before."""
    series = replace(
        _weekly(),
        exdates=(datetime(2026, 10, 18, 19, 0, tzinfo=CPH),),
        changes=(Change(original=datetime(2026, 10, 25, 19, 0, tzinfo=CPH), cancelled=True),),
    )
    data = write_feed(META, [series]).decode()
    assert "<klynge:rrule>FREQ=WEEKLY;COUNT=6</klynge:rrule>" in data
    assert "<klynge:start>2026-10-04T19:00:00+02:00</klynge:start>" in data
    assert "<klynge:exdate>2026-10-18T19:00:00+02:00</klynge:exdate>" in data
    assert '"original":"2026-10-25T19:00:00+01:00","cancelled":true' in data


@pytest.mark.parametrize("strict", [True, False])
def test_a_bad_exception_is_dropped_and_the_series_kept(strict: bool) -> None:
    data = _with(
        _weekly(),
        # The 18th is a date of the series (17:00 UTC is 19:00 summer time); the 19th is not.
        exdate="2026-10-18T17:00:00Z, 2026-10-19T19:00:00+02:00, morgen",
        rdate="2026-11-20T10:00:00+01:00",
        changes='[{"original":"2026-10-25T19:00:00+01:00","start":"2026-10-28T20:00:00+01:00"},'
        '{"original":"2026-10-26T19:00:00+01:00","cancelled":true},'
        '{"original":"2026-11-01T19:00:00+01:00","title":"Juleafslutning","cancelled":"ja"},'
        '{"original":"2026-11-08T19:00:00+01:00","title":"Afslutning <script>x</script>"}]',
    )
    parsed = read_feed(data, strict=strict)
    (event,) = parsed.items
    assert isinstance(event, Event)
    assert [format_when(v) for v in event.exdates] == ["2026-10-18T19:00:00+02:00"]
    assert [format_when(v) for v in event.rdates] == ["2026-11-20T10:00:00+01:00"]
    assert [(format_when(c.original), c.title) for c in event.changes] == [
        ("2026-10-25T19:00:00+01:00", ""),
        ("2026-11-08T19:00:00+01:00", "Afslutning"),
    ]
    codes = sorted((p.field, p.message.code) for p in parsed.problems)
    assert codes == [
        ("changes", "series.bad_field"),
        ("changes", "series.not_a_date"),
        ("exdates", "series.bad_value"),
        ("exdates", "series.not_a_date"),
    ]
    shown = [(o.start.isoformat(), o.title) for o in occurrences(event, *WINDOW)]  # type: ignore[union-attr]
    assert shown == [
        ("2026-10-04T19:00:00+02:00", "Badminton for voksne"),
        ("2026-10-11T19:00:00+02:00", "Badminton for voksne"),
        ("2026-10-28T20:00:00+01:00", "Badminton for voksne"),
        ("2026-11-01T19:00:00+01:00", "Badminton for voksne"),
        ("2026-11-08T19:00:00+01:00", "Afslutning"),
        ("2026-11-20T10:00:00+01:00", "Badminton for voksne"),
    ]


@pytest.mark.parametrize(
    "changes",
    ["not json", "{}", "[1]", "[" * 5000, '[{"original":"2026-10-25T19:00:00+01:00","x":1}]'],
)
def test_unreadable_changes_cost_only_the_changes(changes: str) -> None:
    parsed = read_feed(_with(_weekly(), changes=changes), strict=False)
    (event,) = parsed.items
    assert isinstance(event, Event) and event.changes == ()
    assert len(occurrences(event, *WINDOW)) == 6
    assert {p.field for p in parsed.problems} == {"changes"}


def test_exceptions_of_a_single_event_are_dropped_with_a_problem() -> None:
    single = replace(_weekly(), rrule=None)
    parsed = read_feed(_with(single, exdate="2026-10-04T19:00:00+02:00"))
    assert parsed.items == (single,)
    assert [p.message.code for p in parsed.problems] == ["series.not_a_series"]


def test_too_many_exceptions_are_cut_to_the_limit() -> None:
    start = datetime(2026, 1, 1, 19, 0, tzinfo=CPH)
    daily = replace(_weekly(), start=start, end=None, rrule="FREQ=DAILY;COUNT=500")
    days = ",".join(
        format_when((start.astimezone(UTC) + timedelta(days=i, hours=5)).astimezone(CPH))
        for i in range(MAX_EXCEPTIONS + 20)
    )
    parsed = read_feed(_with(daily, rdate=days))
    (event,) = parsed.items
    assert isinstance(event, Event) and len(event.rdates) == MAX_EXCEPTIONS
    assert [p.message.code for p in parsed.problems] == ["series.too_many"]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
CHANGE_LIKE = st.fixed_dictionaries(
    {"original": st.sampled_from(["2026-10-25T19:00:00+01:00", "2026-10-25", "x", ""])},
    optional={
        "start": st.one_of(st.text(max_size=30), st.just("2026-10-27T19:00")),
        "end": st.one_of(st.none(), st.text(max_size=30), st.just("2026-10-25T18:00")),
        "title": st.one_of(st.text(max_size=300), st.integers()),
        "location": JSONISH,
        "cancelled": JSONISH,
        "sequence": JSONISH,
    },
)
RAW = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    RAW,
    RAW,
    st.one_of(RAW, st.lists(st.one_of(CHANGE_LIKE, JSONISH), max_size=5).map(json.dumps)),
    st.booleans(),
)
def test_any_exception_text_costs_at_most_the_exceptions(
    exdate: str, rdate: str, changes: str, strict: bool
) -> None:
    """Whatever the three elements hold, the series is read, with a problem per bad value."""
    texts = {"exdate": exdate, "rdate": rdate, "changes": changes}
    escaped = {k: escape(xml_text(v)) for k, v in texts.items()}
    parsed = read_feed(_with(_weekly(), **escaped), strict=strict)
    (event,) = parsed.items
    assert isinstance(event, Event) and event.title == "Badminton for voksne"
    assert {p.field for p in parsed.problems} <= {"exdates", "rdates", "changes", "exceptions"}
    assert len(occurrences(event, *WINDOW)) <= 6 + len(event.rdates)
