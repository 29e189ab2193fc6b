"""Read Klynge, plain Atom and RSS 2.0 feeds into validated model items.

Two passes: a defusedxml pass (`klynge.feed_xml`) refuses what is not a feed and reads
tombstones, `atom:source` and feed links; feedparser then reads the entries with its own
sanitiser and relative-URI resolution off (measured ≈ 2× faster, design.md), because the model
sanitises HTML with nh3 and validates every field.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import feedparser

from klynge.feed_entries import Context, entry_date, plain_text, read_entry
from klynge.feed_xml import Outline, Problem, XmlEntry, exact_text, not_a_feed, scan
from klynge.feedwriter import ATOM_NS, KLYNGE_NS, FeedMeta
from klynge.model import DEFAULT_TIMEZONE, Item, Tombstone

__all__ = ["FeedMeta", "ParsedFeed", "Problem", "read_feed"]

Flavour = Literal["klynge", "atom", "rss"]

# A publisher may bind the Klynge namespace to any prefix, or make it the default namespace
# (then feedparser gives bare keys such as `start`), see design.md.
_DEFAULT_DECLARATION = re.compile(
    rb"""xmlns\s*=\s*["']""" + re.escape(KLYNGE_NS.encode()) + rb"""/?["']"""
)
_PREFIX_DECLARATION = re.compile(
    rb"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']""" + re.escape(KLYNGE_NS.encode()) + rb"""/?["']"""
)


@dataclass(frozen=True)
class ParsedFeed:
    """A feed read into the model: its meta, valid items, tombstones and problems.

    `complete` is False when the document was not well-formed and only part of it could be
    recovered: then no deletion may be inferred from entries missing in it.
    """

    meta: FeedMeta
    items: tuple[Item, ...]
    tombstones: tuple[Tombstone, ...]
    problems: tuple[Problem, ...]
    flavour: Flavour
    complete: bool = True


def read_feed(
    data: bytes, *, url: str = "", default_timezone: str = DEFAULT_TIMEZONE
) -> ParsedFeed:
    """Read a feed's bytes; raise FeedError when they are not a feed at all."""
    outline = scan(data)
    # A file object, never bytes or str: feedparser would open a path or fetch a URL given as
    # a string, and it must not touch the network or the disk here.
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
    if outline is None and not (parsed.get("version") and (any(parsed.entries) or parsed.feed)):
        raise not_a_feed(data)
    problems = _feed_problems(parsed, outline)
    keys = _klynge_keys(data, parsed.get("namespaces") or {})
    flavour = _flavour(parsed, keys)
    meta = _meta(parsed.feed, outline, url)
    ctx = Context(keys, default_timezone, _feed_updated(parsed.feed), url or meta.self_url)
    xml_entries = outline.entries if outline is not None else []
    items = _items(parsed.entries, ctx, xml_entries, problems)
    tombstones = outline.tombstones if outline is not None else []
    if not _feed_updated(parsed.feed) and items:
        meta = replace(meta, updated=max(item.updated for item in items))
    return ParsedFeed(
        meta=meta,
        items=tuple(items),
        tombstones=tuple(tombstones),
        problems=tuple(problems),
        flavour=flavour,
        complete=outline is not None,
    )


def _feed_problems(parsed: Any, outline: Outline | None) -> list[Problem]:
    problems = list(outline.problems) if outline is not None else []
    if outline is None:
        cause = parsed.get("bozo_exception")
        message = f"The feed is not well-formed XML ({cause}); read what could be recovered."
        problems.append(Problem("", "feed", message, "warning"))
    elif parsed.get("bozo"):
        message = f"feedparser reports: {parsed.get('bozo_exception')}"
        problems.append(Problem("", "feed", message, "warning"))
    return problems


def _klynge_keys(data: bytes, namespaces: Mapping[str, str]) -> tuple[str, ...]:
    """Return the key prefixes under which feedparser stored Klynge elements."""
    prefixes = {p.lower() for p, uri in namespaces.items() if p and _is_klynge(uri)}
    prefixes.update(m.group(1).decode().lower() for m in _PREFIX_DECLARATION.finditer(data))
    keys = [f"{prefix}_" for prefix in sorted(prefixes)]
    if _DEFAULT_DECLARATION.search(data):
        keys.append("")
    return tuple(keys)


def _is_klynge(uri: str) -> bool:
    return uri.rstrip("/") == KLYNGE_NS


def _flavour(parsed: Any, keys: tuple[str, ...]) -> Flavour:
    if keys:
        return "klynge"
    version = str(parsed.get("version") or "")
    return "atom" if version.startswith("atom") else "rss"


def _meta(feed: Mapping[str, Any], outline: Outline | None, url: str) -> FeedMeta:
    self_url = outline.self_url if outline is not None else ""
    alternate = outline.alternate_url if outline is not None else ""
    root = outline.root if outline is not None else None

    def text(key: str) -> str:
        return plain_text(exact_text(str(feed.get(key) or ""), root, f"{{{ATOM_NS}}}{key}"))

    return FeedMeta(
        id=str(feed.get("id") or feed.get("link") or self_url or url).strip(),
        title=text("title").strip(),
        self_url=self_url or url,
        updated=_feed_updated(feed) or datetime.now(UTC).replace(microsecond=0),
        author=plain_text(
            exact_text(
                str(feed.get("author") or ""), root, f"{{{ATOM_NS}}}author/{{{ATOM_NS}}}name"
            )
        ).strip(),
        alternate_url=alternate or _rss_link(feed, outline),
        hub_urls=tuple(outline.hub_urls) if outline is not None else (),
        subtitle=text("subtitle").strip(),
        language=str(feed.get("language") or ""),
    )


def _rss_link(feed: Mapping[str, Any], outline: Outline | None) -> str:
    # In RSS the channel <link> is the site's page; an Atom feed's is in the outline already.
    if outline is not None and outline.kind == "atom":
        return ""
    return str(feed.get("link") or "").strip()


def _feed_updated(feed: Mapping[str, Any]) -> datetime | None:
    return entry_date(feed, "updated") or entry_date(feed, "published")


def _items(
    entries: Sequence[Mapping[str, Any]],
    ctx: Context,
    xml_entries: Sequence[XmlEntry],
    problems: list[Problem],
) -> list[Item]:
    by_id = {xml.id: xml for xml in xml_entries}
    aligned = len(xml_entries) == len(entries)
    items: list[Item] = []
    for index, entry in enumerate(entries):
        entry_id = str(entry.get("id") or "")
        if aligned and xml_entries[index].id == entry_id:
            xml: XmlEntry | None = xml_entries[index]
        else:
            xml = by_id.get(entry_id)
        item, entry_problems = read_entry(entry, ctx, xml)
        problems.extend(entry_problems)
        if item is not None:
            items.append(item)
    return items
