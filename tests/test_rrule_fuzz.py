"""Property tests of the repeat-rule parser and its bounded expansion (klynge.repeat_rule/rrules).

Any text is either a RepeatRule or a ValidationError with a message, soon; a rule survives
its own canonical text; any accepted rule expands to at most the limit, soon. The examples
are modest so the suite stays fast; `make fuzz` runs more through hypothesis profiles.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from clock_support import utc_now
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from klynge.errors import ValidationError
from klynge.model import Event
from klynge.recurrence import DEFAULT_LIMIT, occurrences
from klynge.repeat_rule import ORDER, WEEKDAYS, RepeatRule, parse_rrule
from klynge.rrules import wall_starts

CPH = ZoneInfo("Europe/Copenhagen")
FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=2),  # a rule that loops would never end: this is the bound
    suppress_health_check=[HealthCheck.too_slow],
)
NAMES = (*ORDER, "BYHOUR", "BYMINUTE", "BYSECOND", "RSCALE", "SKIP", "X-FOO", "freq", "count")
VALUES = st.one_of(
    st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY", "SECONDLY", "weekly"]),
    st.integers(-400, 100_000).map(str),
    st.lists(st.integers(-400, 400), min_size=1, max_size=5).map(lambda v: ",".join(map(str, v))),
    st.lists(
        st.tuples(
            st.sampled_from(["", "1", "-1", "2", "+3", "5", "-6", "53", "0", "54"]),
            st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU", "XX"]),
        ),
        min_size=1,
        max_size=4,
    ).map(lambda days: ",".join(n + d for n, d in days)),
    st.sampled_from(["20270101", "20270101T120000Z", "20270101T120000", "99991231", "2027013"]),
    st.text(max_size=8),
)
ANY_PARTS = st.lists(st.tuples(st.sampled_from(NAMES), VALUES), min_size=1, max_size=6)


def _numbers(low: int, high: int) -> st.SearchStrategy[str]:
    values = st.integers(low, high).filter(bool)
    return st.lists(values, min_size=1, max_size=4).map(lambda v: ",".join(map(str, v)))


# Parts that are each well-formed, so many (not all: combinations still matter) are accepted.
GOOD_PARTS = st.fixed_dictionaries(
    {"FREQ": st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"])},
    optional={
        "INTERVAL": st.integers(1, 1000).map(str),
        "BYMONTH": _numbers(1, 12),
        "BYWEEKNO": _numbers(-53, 53),
        "BYYEARDAY": _numbers(-366, 366),
        "BYMONTHDAY": _numbers(-31, 31),
        "BYDAY": st.lists(
            st.tuples(st.sampled_from(["", "", "1", "-1", "+2", "5"]), st.sampled_from(WEEKDAYS)),
            min_size=1,
            max_size=3,
        ).map(lambda days: ",".join(n + d for n, d in days)),
        "BYSETPOS": _numbers(-366, 366),
        "WKST": st.sampled_from(WEEKDAYS),
        "COUNT": st.integers(1, 500).map(str),
        "UNTIL": st.sampled_from(["20270101", "20301231T120000Z", "20280615T080000"]),
    },
).map(lambda parts: list(parts.items()))
RULE_TEXT = st.one_of(ANY_PARTS, GOOD_PARTS, GOOD_PARTS.map(lambda parts: parts[::-1])).map(
    lambda parts: ";".join(f"{name}={value}" for name, value in parts)
)
ANY_TEXT = st.one_of(RULE_TEXT, st.text(max_size=80), st.binary(max_size=60).map(repr))


def accepted(text: str) -> RepeatRule | None:
    try:
        return parse_rrule(text)
    except ValidationError as e:
        assert set(e.fields) == {"rrule"} and e.fields["rrule"].english().endswith("."), e.fields
        return None


@FUZZ
@given(ANY_TEXT)
@example("FREQ=WEEKLY;COUNT=2\r\nATTENDEE:mailto:e@x")
@example("FREQ=DAILY;INTERVAL=0;COUNT=5")
@example("COUNT=1;COUNT=100000;FREQ=DAILY")
@example("FREQ=DAILY;BYHOUR=1,2;BYMINUTE=1,2;BYSECOND=1,2;COUNT=5")
@example("FREQ=MONTHLY;BYDAY=1SU;COUNT=8")
def test_any_text_is_a_rule_or_a_refusal_in_words(text: str) -> None:
    rule = accepted(text)
    if rule is not None:
        assert rule.freq in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
        assert 1 <= rule.interval <= 1000 and (rule.count is None or 1 <= rule.count <= 500)
        assert not (rule.count is not None and rule.until is not None)
        assert "\r" not in rule.text and "\n" not in rule.text


@FUZZ
@given(RULE_TEXT)
@example("freq=weekly;byday=tu,mo,tu;count=20;wkst=mo")
@example("RRULE:FREQ=YEARLY;UNTIL=20270101;BYMONTH=3,1;BYDAY=-1SU;")
def test_a_rule_survives_its_canonical_text(text: str) -> None:
    rule = accepted(text)
    if rule is None:
        return
    again = parse_rrule(str(rule))
    assert again == rule and str(again) == str(rule)
    names = [part.split("=", 1)[0] for part in str(rule).split(";")]
    assert names == sorted(names, key=ORDER.index) and names[0] == "FREQ"


STARTS = st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2093, 12, 31))


@FUZZ
@given(RULE_TEXT, STARTS, st.booleans())
@example("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;UNTIL=20270101T000000Z", datetime(2026, 3, 1), False)
@example("FREQ=DAILY;COUNT=500", datetime(2026, 12, 1, 19), True)
@example("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=2", datetime(2024, 2, 29), False)
def test_any_accepted_rule_expands_to_at_most_the_limit(
    text: str, start: datetime, all_day: bool
) -> None:
    rule = accepted(text)
    if rule is None:
        return
    starts = wall_starts(rule, start, CPH, timedelta(days=6 * 366), 50)
    assert 1 <= len(starts) <= 50 and starts == sorted(set(starts))
    try:
        event = Event(
            id="urn:uuid:fuzz",
            title="Fuzz",
            updated=utc_now(),
            start=start.date() if all_day else start.replace(tzinfo=CPH),
            all_day=all_day,
            rrule=rule,
        )
    except ValidationError as e:
        assert set(e.fields) == {"rrule"}, e.fields  # only the series can be refused here
        return
    window = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 12, 31, tzinfo=UTC))
    found = occurrences(event, *window)
    assert 1 <= len(found) <= DEFAULT_LIMIT
    assert event.series_end() >= found[-1].start if not all_day else True


@pytest.mark.parametrize("year", [1900, 2097, 2100, 2199])
def test_a_rule_without_dates_ends_near_a_skipped_leap_day(year: int) -> None:
    # Spans across 1900, 2100 or 2200 have their twin years furthest from 9999 (about 300
    # years: under a second of dateutil's search, measured); still the series is just DTSTART.
    rule = parse_rrule("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=5")
    start = datetime(year, 3, 1, 10)
    assert wall_starts(rule, start, CPH, timedelta(days=5 * 366), 500) == [start]


def test_twin_years_keep_weekdays_and_leap_days_across_2100() -> None:
    # Every 29 February and every Monday of a span across the skipped leap day of 2100.
    rule = parse_rrule("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;UNTIL=21100101")
    leap_days = wall_starts(rule, date(2096, 2, 29), None, timedelta(days=5000), 10)
    assert [d.year for d in leap_days] == [2096, 2104, 2108]
    mondays = wall_starts(parse_rrule("FREQ=WEEKLY;BYDAY=MO;COUNT=300"), date(2098, 1, 6), None,
                          timedelta(days=5 * 366), 300)  # fmt: skip
    assert all(d.weekday() == 0 for d in mondays) and len(mondays) == 262
    assert [b - a for a, b in itertools.pairwise(mondays)] == [timedelta(7)] * 261
