"""Klynge's ICS import against `recurring_ical_events` as the oracle, over a corpus of calendars.

usage: python tests/corpus/ical_corpus.py [PATH ...]
Without a path the corpus is the calendars shipped inside the installed `recurring_ical_events`
(test/calendars/) and `icalendar` (tests/calendars/) packages. For each file the import's
"now" is 30 days after the file's earliest start, and occurrences are compared over
[now - 60 days, now + 365 days]: start and end in UTC (dates for all-day events), title and
status. tests/corpus/test_ical_corpus.py runs it and holds the list of deliberate differences.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import icalendar
import recurring_ical_events

from klynge.errors import FeedError
from klynge.ical.reader import CANCELLED_MARK, POSTPONED_MARK, UNTITLED, read_calendar
from klynge.model import DEFAULT_TIMEZONE, TITLE_MAX, localize, zone
from klynge.recurrence import expand

Row = tuple[str, str, str, str]  # start, end, title, status
Verdict = Literal["agree", "refused", "differ", "both_refuse", "no_oracle"]
BEFORE = timedelta(days=60)
AFTER = timedelta(days=365)
EDGE = timedelta(days=2)
LIMIT = 5000  # occurrences per file compared, more than any corpus file has in its window


@dataclass
class Outcome:
    """One file's comparison: the verdict, the rows only one side has, and the import's words."""

    name: str
    verdict: Verdict
    only_klynge: list[Row] = field(default_factory=list)
    only_oracle: list[Row] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


def corpus() -> list[Path]:
    """Return the calendars shipped inside the installed packages, in a stable order."""
    roots = [
        Path(recurring_ical_events.__file__).parent / "test" / "calendars",
        Path(icalendar.__file__).parent / "tests" / "calendars",
    ]
    return sorted(p for root in roots for p in root.glob("*.ics"))


def name_of(path: Path) -> str:
    """Return the file's name as the list of differences spells it (package/file)."""
    package = "icalendar" if path.parts[-4:-3] == ("icalendar",) else "recurring_ical_events"
    return f"{package}/{path.name}"


def compare(path: Path) -> Outcome:
    """Compare one file's occurrences as Klynge imports them with the oracle's."""
    data = path.read_bytes()
    name = name_of(path)
    try:
        with warnings.catch_warnings():  # icalendar's GloballyUniqueTZIDGuessed, as in Klynge
            warnings.simplefilter("ignore")
            cal = icalendar.Calendar.from_ical(data)
            now = _now_for(cal)
    except Exception:  # the oracle cannot read it, so there is no "now" from it
        cal, now = None, datetime(2026, 12, 1, tzinfo=UTC)
    lo, hi = now - BEFORE, now + AFTER
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            query = recurring_ical_events.of(cal, skip_bad_series=True)
            oracle = sorted(_oracle_rows(query.between(lo, hi)))
    except Exception:  # the oracle cannot read it either
        oracle = None
    try:
        events, words = read_calendar(data, now=now)
    except FeedError as e:
        verdict: Verdict = "both_refuse" if oracle is None else "refused"
        return Outcome(name, verdict, words=[e.message])
    ours = sorted(_row(o.start, o.end, o.title, o.status) for o in _expand(events, lo, hi))
    said = [w.english() for w in words]
    if oracle is None:  # Klynge reads what the oracle cannot (or refuses it in words)
        return Outcome(name, "refused" if not ours else "no_oracle", only_klynge=ours, words=said)
    # Compared are the rows that start two days inside the window: at its edges, an all-day
    # date counts in the zone of the source for Klynge and as floating for the oracle.
    inner = (_show(lo + EDGE)[:10], _show(hi - EDGE)[:10])
    ours = [r for r in ours if inner[0] <= r[0][:10] <= inner[1]]
    oracle = [r for r in oracle if inner[0] <= r[0][:10] <= inner[1]]
    only_klynge = list((Counter(ours) - Counter(oracle)).elements())
    only_oracle = list((Counter(oracle) - Counter(ours)).elements())
    verdict = "agree" if not (only_klynge or only_oracle) else "differ"
    return Outcome(name, verdict, only_klynge, only_oracle, said)


def _expand(events: list[Any], lo: datetime, hi: datetime) -> list[Any]:
    return expand(events, lo, hi, limit=LIMIT)


def _now_for(cal: icalendar.Calendar) -> datetime:
    starts = []
    for component in cal.walk("VEVENT"):
        prop = component.get("DTSTART")
        prop = prop[0] if isinstance(prop, list) and prop else prop
        try:
            starts.append(_utc(prop.dt))
        except Exception:  # no start, or a broken one
            continue
    first = min((s for s in starts if datetime(1971, 1, 1, tzinfo=UTC) < s), default=None)
    if first is None or first.year > 2190:
        first = datetime(2026, 12, 1, tzinfo=UTC)
    return first.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=30)


def _oracle_rows(components: Iterable[icalendar.Component]) -> list[Row]:
    rows = []
    for c in components:
        start = c["DTSTART"].dt
        if "DTEND" in c:
            end = c["DTEND"].dt
        elif "DURATION" in c:
            end = start + c["DURATION"].dt
        else:
            end = start
        if end == start and not isinstance(start, datetime):
            # recurring_ical_events writes DTEND = DTSTART for a date event without DTEND;
            # RFC 5545 §3.6.1 says it lasts one day, as Klynge reads it: the same thing.
            end = start + timedelta(days=1)
        status = str(c.get("STATUS", "CONFIRMED")).upper()
        title = str(c.get("SUMMARY", "")).strip()
        kind = "confirmed"
        if status == "CANCELLED":
            kind, title = "cancelled", title.removeprefix(CANCELLED_MARK)
        elif status == "TENTATIVE" and title.startswith(POSTPONED_MARK):
            kind, title = "postponed", title.removeprefix(POSTPONED_MARK)
        elif status == "TENTATIVE":
            kind = "tentative"
        rows.append(_row(start, end, (title or UNTITLED)[:TITLE_MAX], kind))
    return rows


def _row(start: date, end: date, title: str, status: str) -> Row:
    return (_show(start), _show(end), " ".join(title.split()), status)


def _show(value: date) -> str:
    if isinstance(value, datetime):
        return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def _utc(value: date) -> datetime:
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:  # floating: read in the source's zone, as the import does
        return localize(value, zone(DEFAULT_TIMEZONE)).astimezone(UTC)
    return value.astimezone(UTC)


def figures(outcomes: list[Outcome]) -> str:
    """Return the corpus figures as one line."""
    counts = Counter(o.verdict for o in outcomes)
    read = len(outcomes) - counts["refused"] - counts["both_refuse"]
    return (
        f"files={len(outcomes)} read={read} agree={counts['agree']} "
        f"read_where_the_oracle_fails={counts['no_oracle']} "
        f"refused_in_words={counts['refused'] + counts['both_refuse']} "
        f"(both_refuse={counts['both_refuse']}) differ={counts['differ']}"
    )


def main(argv: list[str]) -> int:
    """Compare the files (default: the shipped corpus); print each difference and the figures."""
    paths = [Path(a) for a in argv] or corpus()
    outcomes = [compare(p) for p in paths]
    for o in outcomes:
        if o.verdict == "agree":
            continue
        print(f"{o.verdict:8} {o.name}")
        for row in o.only_klynge[:4]:
            print("   klynge only", row)
        for row in o.only_oracle[:4]:
            print("   oracle only", row)
        for word in o.words[:3]:
            print("   says", word[:150])
    print(figures(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
