"""Map feedparser's entry dicts to validated Events and Notices, with a Problem per bad field.

Everything read from a feed is untrusted: feedparser does not sanitise values of unknown
namespaces (design.md), so text goes through `plain_text`, HTML through the model's nh3
allowlist, and every value through the model's validation.
"""

from __future__ import annotations

import html
import re
from calendar import timegm
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import nh3

from klynge.errors import ValidationError
from klynge.feed_xml import Problem, parse_instant
from klynge.model import CATEGORIES, Event, FeedSource, Item, Notice, Place, parse_when, zone

_TAG_LIKE = re.compile(r"<[A-Za-z/!?]")
_TITLE_FROM_BODY = 100


@dataclass(frozen=True)
class Context:
    """What entry mapping needs to know about the feed as a whole."""

    klynge_keys: tuple[str, ...]  # feedparser key prefixes of the Klynge namespace, e.g. "k_"
    default_timezone: str
    feed_updated: datetime | None
    base_url: str


def plain_text(value: str) -> str:
    """Return text with anything that looks like an HTML tag removed (scripts with content)."""
    text = value
    for _ in range(3):  # entity-escaped markup can hide one level deeper each round
        if not _TAG_LIKE.search(text):
            return text
        text = html.unescape(nh3.clean(text, tags=set()))
    return text.replace("<", "")


def read_entry(
    entry: Mapping[str, Any], ctx: Context, source: FeedSource | None
) -> tuple[Item | None, list[Problem]]:
    """Return the entry as an Event or Notice (or None when dropped) and its problems."""
    entry_id = str(entry.get("id") or "").strip()
    if not ctx.klynge_keys or not _has_klynge(entry, ctx):
        return _plain_notice(entry, ctx, source)
    problems: list[Problem] = []
    fields, errors = _common(entry, ctx, entry_id, problems)
    fields["source"] = source
    kind = _k(entry, ctx, "kind") or ("event" if _k(entry, ctx, "start") else "notice")
    if kind == "event":
        builder: type[Event] | type[Notice] = Event
        errors.update(_event_fields(entry, ctx, fields))
    elif kind == "notice":
        builder = Notice
        errors.update(_notice_fields(entry, ctx, fields))
    else:
        message = f"Unknown kind {kind!r}; a Klynge entry is an event or a notice."
        return None, [*problems, Problem(entry_id, "kind", message)]
    return _build(builder, fields, errors, entry_id, problems)


def _build(
    builder: type[Event] | type[Notice],
    fields: dict[str, Any],
    errors: dict[str, str],
    entry_id: str,
    problems: list[Problem],
) -> tuple[Item | None, list[Problem]]:
    try:
        item: Item = builder(**fields)
    except ValidationError as e:
        errors = {**e.fields, **errors}
    if errors:
        problems.extend(Problem(entry_id, name, message) for name, message in errors.items())
        return None, problems
    return item, problems


def _has_klynge(entry: Mapping[str, Any], ctx: Context) -> bool:
    return any(f"{prefix}kind" in entry or f"{prefix}start" in entry for prefix in ctx.klynge_keys)


def _k(entry: Mapping[str, Any], ctx: Context, name: str) -> str:
    """Return the text of a Klynge element, whatever prefix the publisher chose."""
    for prefix in ctx.klynge_keys:
        value = entry.get(prefix + name)
        if isinstance(value, str):
            return value.strip()
    return ""


def _common(
    entry: Mapping[str, Any], ctx: Context, entry_id: str, problems: list[Problem]
) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    author = entry.get("author_detail") or {}
    fields: dict[str, Any] = {
        "id": entry_id,
        "title": plain_text(str(entry.get("title") or "")),
        "updated": _updated(entry, ctx, entry_id, problems),
        "created": entry_date(entry, "published"),
        "category": _category(entry),
        "organizer": plain_text(_k(entry, ctx, "organizer") or str(author.get("name") or "")),
        "organizer_url": _k(entry, ctx, "organizerurl") or str(author.get("href") or ""),
        "link": _link(entry, "alternate"),
        "url": _link(entry, "related"),
    }
    sequence = _k(entry, ctx, "sequence")
    if sequence:
        try:
            fields["sequence"] = int(sequence)
        except ValueError:
            errors["sequence"] = "The sequence must be a whole number."
    return fields, errors


def _event_fields(entry: Mapping[str, Any], ctx: Context, fields: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    tz = _k(entry, ctx, "tzid") or ctx.default_timezone
    fields["timezone"] = tz
    try:
        zone(tz)
    except ValueError as e:
        errors["timezone"] = str(e)
        tz = ctx.default_timezone
    all_day_text = _k(entry, ctx, "allday").lower() or "false"
    if all_day_text not in ("true", "false", "1", "0"):
        errors["all_day"] = "allday must be true or false."
    all_day = all_day_text in ("true", "1")
    fields["all_day"] = all_day
    for name in ("start", "end"):
        value = _k(entry, ctx, name)
        if value:
            try:
                fields[name] = parse_when(value, tz=tz, all_day=all_day)
            except ValueError as e:
                errors[name] = str(e)
    fields["status"] = _k(entry, ctx, "status").lower() or "confirmed"
    fields["rrule"] = _k(entry, ctx, "rrule")
    fields["description"] = _html(entry)
    place, place_errors = _place(entry, ctx)
    fields["place"] = place
    errors.update(place_errors)
    return errors


def _notice_fields(
    entry: Mapping[str, Any], ctx: Context, fields: dict[str, Any]
) -> dict[str, str]:
    fields["body"] = _html(entry)
    fields["related"] = _k(entry, ctx, "related")
    expires = _k(entry, ctx, "expires")
    if not expires:
        return {}
    try:
        fields["expires"] = parse_when(expires, tz=ctx.default_timezone, all_day=False)
    except ValueError as e:
        return {"expires": str(e)}
    return {}


def _place(entry: Mapping[str, Any], ctx: Context) -> tuple[Place | None, dict[str, str]]:
    texts = {
        "name": _k(entry, ctx, "location"),
        "street": _k(entry, ctx, "street"),
        "postcode": _k(entry, ctx, "postcode"),
        "locality": _k(entry, ctx, "locality"),
    }
    texts = {name: plain_text(value) for name, value in texts.items()}
    lat, lon = _point(entry)
    if not any(texts.values()) and lat is None:
        return None, {}
    try:
        return Place(**texts, lat=lat, lon=lon), {}
    except ValidationError as e:
        return None, dict(e.fields)


def _point(entry: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """Return (lat, lon) of a georss:point, which feedparser gives as GeoJSON [lon, lat]."""
    where = entry.get("where")
    if not isinstance(where, Mapping) or where.get("type") != "Point":
        return None, None
    coordinates = where.get("coordinates")
    if not isinstance(coordinates, list | tuple) or len(coordinates) != 2:
        return None, None
    lon, lat = coordinates
    if not isinstance(lat, float | int) or not isinstance(lon, float | int):
        return None, None
    return float(lat), float(lon)


def _plain_notice(
    entry: Mapping[str, Any], ctx: Context, source: FeedSource | None
) -> tuple[Item | None, list[Problem]]:
    """Map an entry of a plain Atom or RSS 2.0 feed (no Klynge elements) to a Notice."""
    link = _link(entry, "alternate") or str(entry.get("link") or "")
    if link and ctx.base_url:
        link = urljoin(ctx.base_url, link)
    entry_id = str(entry.get("id") or link).strip()
    problems: list[Problem] = []
    if not entry_id:
        return None, [Problem("", "id", "The entry has no id, guid or link.")]
    body = _html(entry)
    title = plain_text(str(entry.get("title") or ""))
    if not title:  # RSS 2.0 allows items with only a description
        title = plain_text(html.unescape(nh3.clean(body, tags=set())))[:_TITLE_FROM_BODY].strip()
    author = entry.get("author_detail") or {}
    fields: dict[str, Any] = {
        "id": entry_id,
        "title": title,
        "updated": _updated(entry, ctx, entry_id, problems),
        "created": entry_date(entry, "published"),
        "category": _category(entry, known_only=True),
        "organizer": plain_text(str(author.get("name") or "")),
        "link": link,
        "body": body,
        "source": source,
    }
    return _build(Notice, fields, {}, entry_id, problems)


def _updated(
    entry: Mapping[str, Any], ctx: Context, entry_id: str, problems: list[Problem]
) -> datetime:
    updated = entry_date(entry, "updated") or entry_date(entry, "published")
    if updated is not None:
        return updated
    fallback = ctx.feed_updated or datetime.now(UTC).replace(microsecond=0)
    problems.append(
        Problem(entry_id, "updated", "The entry has no updated time; used the feed's.", "warning")
    )
    return fallback


def entry_date(entry: Mapping[str, Any], name: str) -> datetime | None:
    """Return an aware datetime: RFC 3339 keeps its offset, others come via feedparser in UTC."""
    raw = _raw(entry, name)
    if isinstance(raw, str) and raw:
        try:
            return parse_instant(raw)
        except ValueError:
            pass
    parsed = _raw(entry, f"{name}_parsed")
    if parsed is None:
        return None
    return datetime.fromtimestamp(timegm(parsed), UTC)


def _raw(entry: Mapping[str, Any], key: str) -> Any:
    # FeedParserDict.get("updated") falls back to `published` with a DeprecationWarning.
    return dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)


def _category(entry: Mapping[str, Any], *, known_only: bool = False) -> str:
    # Plain feeds use free-form categories ("Nyheder og sport"); keep only our vocabulary.
    for tag in entry.get("tags") or ():
        term = str(tag.get("term") or "").strip().lower()
        if term and (term in CATEGORIES or not known_only):
            return term
    return ""


def _link(entry: Mapping[str, Any], rel: str) -> str:
    for link in entry.get("links") or ():
        if link.get("rel", "alternate") == rel and link.get("type") != "text/calendar":
            return str(link.get("href") or "").strip()
    return ""


def _html(entry: Mapping[str, Any]) -> str:
    """Return the entry's content (or summary) as HTML; the model sanitises it with nh3."""
    detail: Mapping[str, Any] | None = None
    contents = entry.get("content")
    if contents:
        detail = contents[0]
    elif entry.get("summary_detail"):
        detail = entry["summary_detail"]
    if detail is None:
        return ""
    value = str(detail.get("value") or "")
    if detail.get("type") == "text/plain":
        return html.escape(value, quote=False)
    return value
