"""The node's reading of an aggregator's /api/sources (node.cluster): untrusted JSON, checked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.cluster import MAX_PROBLEMS, MAX_TEXT, NOT_LISTED, base_of, view_of

FEED = "https://osterby.example.dk/feed.atom"
AGG = "https://syd.example.dk"
ROW = {
    "url": FEED,
    "health": "ok",
    "last_attempt": "2026-12-01T09:00:00+00:00",
    "last_success": "2026-12-01T09:00:00+00:00",
    "failures": 0,
    "last_error": "",
    "summary": "OK: 3 entries.",
    "problems": ["entry urn:uuid:1 (end): The end is before the start."],
}

CASES = {
    "accepted with a problem": ([ROW], True, ROW["problems"]),
    "matched with a trailing slash": ([ROW | {"url": FEED + "/"}], True, ROW["problems"]),
    "failing": ([ROW | {"failures": 2, "last_error": "HTTP 500"}], False, ROW["problems"]),
    "never fetched": ([ROW | {"last_success": None, "problems": []}], False, ()),
    "problems not a list": ([ROW | {"problems": "oops"}], True, ()),
    "problems of other types": ([ROW | {"problems": [1, None, "x"]}], True, ("x",)),
}


@pytest.mark.parametrize(("rows", "accepted", "problems"), CASES.values(), ids=CASES.keys())
def test_our_row_is_read(rows: list[Any], accepted: bool, problems: tuple[str, ...]) -> None:
    view = view_of(AGG, rows, FEED, "Europe/Copenhagen")
    assert view.listed and view.error is None
    assert view.accepted is accepted
    assert view.problems == tuple(problems)


def test_times_are_shown_in_the_nodes_zone_and_bad_ones_are_dropped() -> None:
    view = view_of(AGG, [ROW | {"last_success": "yesterday"}], FEED, "Europe/Copenhagen")
    assert view.last_attempt == datetime.fromisoformat("2026-12-01T10:00:00+01:00")
    assert view.last_attempt is not None and view.last_attempt.utcoffset() is not None
    assert str(view.last_attempt.tzinfo) == "Europe/Copenhagen"
    assert view.last_success is None


def test_a_feed_the_aggregator_does_not_list_says_so() -> None:
    other = ROW | {"url": "https://vesterby.example.dk/feed.atom"}
    view = view_of(AGG, [other, "junk", None], FEED, "Europe/Copenhagen")
    assert not view.listed and view.error is not None and view.error.code == NOT_LISTED
    assert view.error.english() == f"this aggregator does not list our feed {FEED}"


def test_long_answers_are_cut() -> None:
    rows = [ROW | {"summary": "x" * 10_000, "problems": ["p"] * 1000}]
    view = view_of(AGG, rows, FEED, "Europe/Copenhagen")
    assert len(view.summary) == MAX_TEXT and len(view.problems) == MAX_PROBLEMS


def test_the_base_url_comes_from_either_form() -> None:
    assert base_of("https://syd.example.dk/") == base_of("https://syd.example.dk/ping") == AGG


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=30,
)


# Rows of any JSON, and rows that match our feed with any JSON in the other fields.
OURS = st.fixed_dictionaries({"url": st.just(FEED)}, optional={k: JSON for k in ROW if k != "url"})


@given(rows=st.lists(JSON | OURS, max_size=5))
def test_any_answer_gives_a_view(rows: list[Any]) -> None:
    view = view_of(AGG, rows, FEED, "Europe/Copenhagen")
    assert view.aggregator == AGG and all(isinstance(p, str) for p in view.problems)
