"""What happens to a source, as one table: SourceState's methods, without a server.

Each case starts from a state, lets one thing happen to the source (a success, a held-back
removal, a 304 or identical body, a failure) and names the whole state after it, and whether
the change is worth writing to the store. In the style of Miniflux's response_handler_test.go
(`TestIsModified`); tests/test_aggregator_refresh.py runs the same against real servers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aggregator_support import event
from clock_support import DEFAULT_NOW

from aggregator.reader.merge import Content
from aggregator.reader.state import Polling, SourceState
from klynge.messages import LEGACY, Message
from klynge.model import FeedSource

NOW = DEFAULT_NOW.astimezone(UTC)
MINUTE = timedelta(minutes=1)
POLLING = Polling(interval=15 * MINUTE, ceiling=timedelta(hours=6))
URL = "http://osterby.example/feed.atom"
ORIGIN = FeedSource(id="urn:klynge:osterby", title="Østerby", self_url=URL)
FIRST, SECOND = event("Loppemarked"), event("Juletræstænding")
L1, L2 = (format_datetime(NOW - timedelta(hours=h), usegmt=True) for h in (2, 1))

GOOD = Content(ORIGIN, {FIRST.id: FIRST}, {FIRST.id: NOW - timedelta(days=1)})
NEWER = Content(ORIGIN, {FIRST.id: FIRST, SECOND.id: SECOND}, {FIRST.id: NOW, SECOND.id: NOW})


def words(text: str) -> Message:
    """Return a message with these words (the table is about what happens, not the wording)."""
    return Message(LEGACY, {"text": text})


HELD = dataclasses.replace(
    GOOD,
    held=frozenset({FIRST.id}),
    flag=words("This fetch would remove 1 of 1 upcoming entries; …"),
)
PROBLEM = words("entry urn:uuid:x (start): Give a start date and time.")
LIMITED = words("The feed has more than 5000 entries; only the first 5000 were read.")

HEALTHY = SourceState(
    URL,
    etag='"v1"',
    last_modified=L1,
    body_hash="h1",
    last_success=NOW - 15 * MINUTE,
    last_attempt=NOW,  # the refresher marks the attempt before the fetch
    next_check=NOW,
    content=GOOD,
)
FAILING = dataclasses.replace(
    HEALTHY, last_success=NOW - 45 * MINUTE, last_error=words("HTTP 500"), failures=2
)
HOLDING = dataclasses.replace(HEALTHY, etag="", last_modified="", body_hash="", content=HELD)


@dataclass(frozen=True)
class Case:
    """One thing that happens to a source, and what the state is after it."""

    before: SourceState
    happens: Callable[[SourceState], bool]
    after: dict[str, Any]  # the fields that change; all others must stay as they were
    write: bool  # whether the change is worth writing to the store


def succeeded(
    content: Content, validators: tuple[str, str, str] = ('"v1"', L1, "h1"), **found: Any
) -> Any:
    """Return a good fetch of `content` (by default with the validators HEALTHY holds)."""
    etag, last_modified, body_hash = validators
    found |= {"etag": etag, "last_modified": last_modified, "body_hash": body_hash}
    return lambda s: s.succeeded(NOW, POLLING, content=content, **found)


def held_back(content: Content) -> Any:
    """Return a good fetch whose removal of entries is held back."""
    return lambda s: s.held_back(NOW, POLLING, content=content)


def not_modified(etag: str, last_modified: str) -> Any:
    """Return a 304 (or an identical body) that carries these validators."""
    return lambda s: s.not_modified(NOW, POLLING, etag=etag, last_modified=last_modified)


def failed(error: Message) -> Any:
    """Return a failed fetch (an HTTP error, a refused or overrunning body)."""
    return lambda s: s.failed(error, NOW, POLLING)


GOOD_NOW = {"last_success": NOW, "next_check": NOW + 15 * MINUTE}
RECOVERED = {**GOOD_NOW, "failures": 0, "last_error": None}

CASES: dict[str, Case] = {
    "the first success of a new source takes content and validators": Case(
        SourceState(URL),
        succeeded(GOOD),
        {**GOOD_NOW, "etag": '"v1"', "last_modified": L1, "body_hash": "h1", "content": GOOD},
        write=True,
    ),
    "a success with new content takes it and the new validators": Case(
        HEALTHY,
        succeeded(NEWER, ('"v2"', L2, "h2")),
        {**GOOD_NOW, "etag": '"v2"', "last_modified": L2, "body_hash": "h2", "content": NEWER},
        write=True,
    ),
    "a new body with the same entries stores its new validators": Case(
        HEALTHY,
        succeeded(GOOD, ('"v2"', L2, "h2")),
        {**GOOD_NOW, "etag": '"v2"', "last_modified": L2, "body_hash": "h2"},
        write=True,
    ),
    "a success that changes nothing is not written": Case(
        HEALTHY, succeeded(GOOD), GOOD_NOW, write=False
    ),
    "the problems of a body are written": Case(
        HEALTHY, succeeded(GOOD, problems=(PROBLEM,)), {**GOOD_NOW, "problems": (PROBLEM,)}, True
    ),
    "a body cut at the entry limit says so": Case(
        HEALTHY, succeeded(GOOD, limited=LIMITED), {**GOOD_NOW, "limited": LIMITED}, write=True
    ),
    "a success after failures resets the error counter": Case(
        FAILING, succeeded(GOOD), RECOVERED, write=True
    ),
    "a held-back removal keeps the entries and forgets the validators": Case(
        HEALTHY,
        held_back(HELD),
        {**GOOD_NOW, "etag": "", "last_modified": "", "body_hash": "", "content": HELD},
        write=True,
    ),
    "a held-back removal is a success for the source's health": Case(
        FAILING,
        held_back(HELD),
        {**RECOVERED, "etag": "", "last_modified": "", "body_hash": "", "content": HELD},
        write=True,
    ),
    "a 304 with the validators sent is not written": Case(
        HEALTHY, not_modified('"v1"', L1), GOOD_NOW, write=False
    ),
    "a 304 keeps the new validators it carries (RFC 9110 §15.4.5)": Case(
        HEALTHY, not_modified('"v2"', L2), {**GOOD_NOW, "etag": '"v2"', "last_modified": L2}, True
    ),
    "a 304 ends a run of failures": Case(FAILING, not_modified('"v1"', L1), RECOVERED, True),
    "a 304 while a removal is held keeps no validators: the next GET confirms it": Case(
        HOLDING, not_modified('"v2"', L2), GOOD_NOW, write=False
    ),
    "a failure keeps the last good entries and waits one interval": Case(
        HEALTHY,
        failed(words("HTTP 500")),
        {"failures": 1, "last_error": words("HTTP 500"), "next_check": NOW + 15 * MINUTE},
        write=True,
    ),
    "the same failure again backs off and is not written": Case(
        FAILING, failed(words("HTTP 500")), {"failures": 3, "next_check": NOW + 60 * MINUTE}, False
    ),
    "another failure is written": Case(
        FAILING,
        failed(words("the feed took too long to read (more than 30 s), so it was ignored")),
        {
            "failures": 3,
            "last_error": words(
                "the feed took too long to read (more than 30 s), so it was ignored"
            ),
            "next_check": NOW + 60 * MINUTE,
        },
        write=True,
    ),
    "a long run of failures waits at most the ceiling": Case(
        dataclasses.replace(FAILING, failures=9),
        failed(words("HTTP 500")),
        {"failures": 10, "next_check": NOW + timedelta(hours=6)},
        write=False,
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_what_happens_to_a_source(case: Case) -> None:
    state = dataclasses.replace(case.before)  # a copy: the table's states stay as written
    write = case.happens(state)
    assert state == dataclasses.replace(case.before, **case.after)
    assert write is case.write


def test_the_next_check_follows_the_failures_in_a_row() -> None:
    state = SourceState(URL)
    checks = []
    for _ in range(6):
        state.schedule_next_check(NOW, POLLING)
        checks.append((state.next_check - NOW) // MINUTE if state.next_check else None)
        state.with_error_message(words("HTTP 503"))
    assert checks == [15, 15, 30, 60, 120, 240]
    assert state.reset_error_counter() and not state.reset_error_counter()
