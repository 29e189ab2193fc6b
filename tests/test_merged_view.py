"""MergedView: told of new content, it merges again off the loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aggregator_support import event

from aggregator.publish.merged import MergedView
from aggregator.reader.merge import Content
from klynge.model import FeedSource, Item

A = FeedSource(id="urn:klynge:a", title="Østerby", self_url="http://a.example/feed.atom")
B = FeedSource(id="urn:klynge:b", title="Vesterby", self_url="http://b.example/feed.atom")


def content(origin: FeedSource, *titles: str) -> Content:
    """Return a source's content of upcoming events with these titles."""
    items: list[Item] = [event(t, source=origin) for t in titles]
    return Content(origin, {i.id: i for i in items})


def titles(view_items: tuple[Item, ...]) -> list[str]:
    return sorted(i.title for i in view_items)


@pytest.fixture
async def view() -> AsyncIterator[MergedView]:
    made = MergedView()
    yield made
    made.close()


async def test_a_change_merges_again_and_tells_the_documents(view: MergedView) -> None:
    told: list[str] = []
    view.on_change = lambda: told.append("stale")
    view.changed(A.self_url, content(A, "Loppemarked"))
    view.changed(B.self_url, content(B, "Fodbold"))
    assert titles((await view.current()).items) == ["Fodbold", "Loppemarked"]
    assert await view.current() is await view.current()  # merged once, then served
    view.changed(A.self_url, content(A, "Juletræ"))
    assert titles((await view.current()).items) == ["Fodbold", "Juletræ"]
    assert view.merged() is await view.current()
    assert told == ["stale"] * 3


async def test_a_merge_of_older_contents_is_not_kept(view: MergedView) -> None:
    view.changed(A.self_url, content(A, "Loppemarked"))
    first = asyncio.ensure_future(view.current())
    await asyncio.sleep(0)  # the merge of the old contents is under way (or done)
    view.changed(A.self_url, content(A, "Juletræ"))
    assert titles((await first).items) == ["Loppemarked"]  # what was asked for
    assert titles((await view.current()).items) == ["Juletræ"]


async def test_reading_waits_until_the_stored_contents_are_loaded() -> None:
    loaded = asyncio.Event()
    view = MergedView(ready=loaded.wait)
    try:
        reading = asyncio.ensure_future(view.current())
        await asyncio.sleep(0.05)
        assert not reading.done()
        view.changed(A.self_url, content(A, "Loppemarked"))
        loaded.set()
        assert titles((await reading).items) == ["Loppemarked"]
    finally:
        view.close()
