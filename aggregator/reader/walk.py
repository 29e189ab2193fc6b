"""Reading a paged source (RFC 5005 §3): walk the `next` links while pages hold news.

An aggregator's merged feed is paged, newest change first (aggregator.publish.paging). The
first read of such a source finds only news on every page and so walks them all; a later read
takes the first page, and the next one only while every change on the page before was news (an
entry not stored, or newer than the stored copy; a tombstone not stored): a page that holds a
change already seen holds the place where the last read stopped. A walk is all or
nothing: a page that fails, loops, leaves the source's host or passes the bounds fails the
fetch, and the source keeps what it had, so that the changes not seen yet stay at the front of
the walk for the next try. A page is never taken as complete: its entries and tombstones are
applied on top of the stored content (aggregator.reader.absence.apply_page).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

from aggregator.reader.fetcher import FetchError, FetchResult
from aggregator.reader.merge import Content
from klynge.messages import Message, define
from klynge.model import Item, Tombstone

# A first walk over a region of 50,000 entries is 500 pages of the publisher's 100 changes
# (aggregator.publish.paging); twice that is a publisher gone wrong.
MAX_PAGES = 1000
MAX_WALK_BYTES = 200_000_000  # all pages of one walk, decompressed (each page is capped too)
# Pages run in the order of `atom:updated`: an edit that reached the publisher late, with an
# `updated` older than what a reader has already read, sits behind the place where the reader
# stops (docs/feed-format.md, "Paged merged feeds"). Once a day a read walks every page, so
# such an edit arrives within a day; at 1,000 entries that is ten pages.
WHOLE_WALK_EVERY = timedelta(days=1)

TOO_MANY_PAGES = define(
    "walk.too_many_pages",
    "the paged feed has more than %(limit)s pages, so this fetch was not used",
)
TOO_MANY_BYTES = define(
    "walk.too_many_bytes",
    "the paged feed's pages hold more than %(mb)s MB, so this fetch was not used",
)
PAGE_LOOP = define(
    "walk.loop", "the paged feed's next link leads back to page %(url)s, so this fetch was not used"
)
OTHER_HOST = define(
    "walk.other_host",
    "the paged feed's next link %(url)s leaves the feed's host, so this fetch was not used",
)
PAGE_FAILED = define("walk.page_failed", "page %(page)s of the paged feed (%(url)s) failed")
NOT_A_PAGE = define(
    "walk.not_a_page",
    "page %(page)s (%(url)s) is not a page of a paged feed, so this fetch was not used",
)


class Page(Protocol):
    """What the walk needs of a parsed page (refresh.Parsed)."""

    @property
    def items(self) -> tuple[Item, ...]: ...
    @property
    def tombstones(self) -> tuple[Tombstone, ...]: ...
    @property
    def paged(self) -> bool: ...
    @property
    def next_url(self) -> str: ...


P = TypeVar("P", bound=Page)
Fetch = Callable[[str], Awaitable[FetchResult]]


async def walk(
    first: P,
    first_url: str,
    old: Content,
    fetch: Fetch,
    parse: Callable[[bytes], Awaitable[P]],
    *,
    whole: bool = False,
) -> list[P]:
    """Return the first page and the pages after it that the walk reads; raise FetchError.

    `whole` walks every page, news or not (the daily walk, WHOLE_WALK_EVERY).
    """
    pages, seen, size = [first], {first_url}, 0
    url, page = first_url, first
    while page.next_url and (whole or all_news(page, old)):
        url = next_page(url, page.next_url, first_url, seen, len(pages))
        try:
            result = await fetch(url)
        except FetchError as e:
            where: dict[str, str | int] = {"page": len(pages) + 1, "url": url[:200]}
            raise FetchError(Message(PAGE_FAILED, dict(where), e.detail)) from e
        size += len(result.body)
        if size > MAX_WALK_BYTES:
            raise FetchError(Message(TOO_MANY_BYTES, {"mb": MAX_WALK_BYTES // 1_000_000}))
        page = await parse(result.body)
        if not page.paged:
            raise FetchError(Message(NOT_A_PAGE, {"page": len(pages) + 1, "url": url}))
        pages.append(page)
    return pages


def next_page(url: str, link: str, first_url: str, seen: set[str], read: int) -> str:
    """Return the absolute URL of the next page, or raise FetchError for a link not followed."""
    target = urljoin(url, link).split("#", 1)[0]
    if _origin(target) != _origin(first_url):
        raise FetchError(Message(OTHER_HOST, {"url": target[:200]}))
    if target in seen:
        raise FetchError(Message(PAGE_LOOP, {"url": target[:200]}))
    if read >= MAX_PAGES:
        raise FetchError(Message(TOO_MANY_PAGES, {"limit": MAX_PAGES}))
    seen.add(target)
    return target


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def all_news(page: Page, old: Content) -> bool:
    """Tell whether every change on a page is one the stored content does not have yet."""
    return all(_new_entry(i, old) for i in page.items) and all(
        _new_tombstone(t, old) for t in page.tombstones
    )


def _new_entry(item: Item, old: Content) -> bool:
    stored = old.entries.get(item.id)
    return stored is None or (item.updated, item.sequence) > (stored.updated, stored.sequence)


def _new_tombstone(tomb: Tombstone, old: Content) -> bool:
    kept = old.tombstones.get(tomb.id)
    return kept is None or tomb.deleted > kept.deleted


def joined(pages: Sequence[P]) -> P:
    """Return the first page carrying the entries and tombstones of all pages read."""
    items = tuple(i for p in pages for i in p.items)
    tombs = tuple(t for p in pages for t in p.tombstones)
    return replace(pages[0], items=items, tombstones=tombs)  # type: ignore[type-var]
