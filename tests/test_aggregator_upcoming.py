"""A source's upcoming count (/api/sources, /status) is kept sorted, and says what a walk says."""

from __future__ import annotations

from datetime import timedelta

from aggregator_support import NOW, event, feed, notice
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config import Source
from aggregator.reader.merge import Content, is_upcoming
from aggregator.reader.refresh import ingest
from aggregator.reader.state import SourceState
from aggregator.store.sources import state_from, state_record
from klynge.model import Item

HOURS = st.integers(min_value=-400, max_value=400)


@st.composite
def items(draw: st.DrawFn) -> Item:
    """An event, a weekly series, or a notice (with or without an expiry), around NOW."""
    hours = timedelta(hours=draw(HOURS))
    kind = draw(st.sampled_from(["event", "series", "notice", "forever"]))
    if kind == "event":
        return event(days=0, start=NOW + hours, end=NOW + hours + timedelta(hours=2))
    if kind == "series":
        start = NOW + hours
        return event(start=start, end=start + timedelta(hours=1), rrule="FREQ=WEEKLY;COUNT=3")
    return notice(expires=NOW + hours if kind == "notice" else None)


@settings(max_examples=60, deadline=None)
@given(st.lists(items(), max_size=12), st.lists(HOURS, min_size=1, max_size=5))
def test_the_kept_count_is_the_walks_at_any_moment(entries: list[Item], at: list[int]) -> None:
    content = Content(entries={item.id: item for item in entries})
    for hours in at:
        now = NOW + timedelta(hours=hours)
        walked = sum(1 for item in content.entries.values() if is_upcoming(item, now))
        assert content.upcoming(now) == walked


def test_an_entry_ends_being_upcoming_at_its_end_and_a_notice_without_expiry_never() -> None:
    ending = event(days=0, start=NOW - timedelta(hours=2), end=NOW)
    content = Content(entries={e.id: e for e in (ending, notice(expires=None))})
    assert content.upcoming(NOW - timedelta(seconds=1)) == 2
    assert content.upcoming(NOW) == 1  # an end at `now` is over, as is_upcoming says
    assert content.upcoming(NOW + timedelta(days=3650)) == 1


def test_a_fetched_or_stored_content_has_its_ends_sorted_where_it_was_made() -> None:
    # Not on the event loop: the first /api/sources after a start counted every new content.
    url = "http://osterby.example/feed.atom"
    body = feed("Østerby", [event("Loppemarked"), notice("Samkørsel")], url=url)
    fetched = ingest(body, Source(url, "Østerby"), "Europe/Copenhagen", Content(), NOW).content
    assert "_ends" in vars(fetched) and fetched.upcoming(NOW) == 2
    stored = state_from({"url": url, **state_record(SourceState(url, content=fetched))}).content
    assert "_ends" in vars(stored) and stored.upcoming(NOW) == 2
