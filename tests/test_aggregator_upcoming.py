"""A source's upcoming count (/api/sources, /status) is kept sorted, and says what a walk says."""

from __future__ import annotations

from datetime import timedelta

from aggregator_support import NOW, event, notice
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.reader.merge import Content, is_upcoming
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
