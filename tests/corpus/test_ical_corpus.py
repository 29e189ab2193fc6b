"""The calendars shipped inside recurring_ical_events and icalendar, imported by Klynge.

For each file Klynge's occurrences (start and end in UTC, title, status) over a window must
agree with `recurring_ical_events.of(cal).between()` (tests/corpus/ical_corpus.py), or Klynge
must refuse in words what the oracle cannot read either, or the file must be one of the
deliberate differences below, each explained in docs/aggregator.md ("ICS sources").
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from ical_corpus import compare, corpus, figures, name_of

ROOT = Path(__file__).parent.parent.parent
# file -> the heading of its explanation in docs/aggregator.md
DELIBERATE = {
    "recurring_ical_events/end_before_start_event.ics": "End before start",
    "recurring_ical_events/issue_132_swapped_start_and_end.ics": "End before start",
    "recurring_ical_events/issue_201_mixed_datetime_and_date.ics": "Mixed dates and times",
    "recurring_ical_events/issue_201_test_matrix.ics": "Mixed dates and times",
    "recurring_ical_events/issue_128_only_first_event.ics": "Rules RFC 5545 forbids",
}
FILES = corpus()


def test_the_corpus_is_there() -> None:
    assert len(FILES) > 150  # both packages ship their calendars in the wheel


@pytest.mark.parametrize("path", FILES, ids=[name_of(p) for p in FILES])
def test_file_agrees_with_the_oracle_or_differs_deliberately(path: Path) -> None:
    outcome = compare(path)
    if outcome.verdict == "differ":
        assert outcome.name in DELIBERATE, (outcome.only_klynge[:5], outcome.only_oracle[:5])
    else:
        assert outcome.name not in DELIBERATE, "agrees now: take it off the list"
    if outcome.verdict in ("refused", "both_refuse"):
        assert outcome.words, "a refusal says why"


def test_figures(capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = [compare(p) for p in FILES]
    counts = Counter(o.verdict for o in outcomes)
    with capsys.disabled():
        print("\nICS corpus:", figures(outcomes))
    assert counts["agree"] >= 170
    assert {o.name for o in outcomes if o.verdict == "differ"} == set(DELIBERATE)


def test_each_deliberate_difference_is_explained_in_the_docs() -> None:
    text = (ROOT / "docs" / "aggregator.md").read_text()
    for name, heading in DELIBERATE.items():
        assert f"**{heading}**" in text, heading
        assert name.split("/", 1)[1] in text, name
