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
from xml.etree.ElementTree import Element

import nh3

from klynge.errors import ValidationError
from klynge.feed_xml import Problem, XmlEntry, exact_text, parse_instant
from klynge.feedwriter import ATOM_NS, KLYNGE_NS
from klynge.model import CATEGORIES, Event, FeedSource, Item, Notice, Place, parse_when, zone

_A = f"{{{ATOM_NS}}}"
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


@dataclass(frozen=True)
class View:
    """One entry as feedparser read it, with its element from the XML pass (Atom only)."""

    entry: Mapping[str, Any]
    ctx: Context
    element: Element | None

    def k(self, name: str) -> str:
        """Return the text of a Klynge element, whatever prefix the publisher chose."""
        for prefix in self.ctx.klynge_keys:
            value = _raw(self.entry, prefix + name)
            if isinstance(value, str):
                return exact_text(value.strip(), self.element, f"{{{KLYNGE_NS}}}{name}")
        return ""

    def text(self, key: str) -> str:
        """Return an Atom text (title) as plain text."""
        value = str(self.entry.get(key) or "")
        return plain_text(exact_text(value, self.element, f"{_A}{key}"))

    def author(self) -> tuple[str, str]:
        """Return the author's name and URI."""
        author = self.entry.get("author_detail") or {}
        name = exact_text(str(author.get("name") or ""), self.element, f"{_A}author/{_A}name")
        return plain_text(name), str(author.get("href") or "")


def read_entry(
    entry: Mapping[str, Any], ctx: Context, xml: XmlEntry | None
) -> tuple[Item | None, list[Problem]]:
    """Return the entry as an Event or Notice (or None when dropped) and its problems."""
    view = View(entry, ctx, xml.element if xml is not None else None)
    source = xml.source if xml is not None else None
    entry_id = str(entry.get("id") or "").strip()
    if not ctx.klynge_keys or not _has_klynge(entry, ctx):
        return _plain_notice(view, source)
    problems: list[Problem] = []
    fields, errors = _common(view, entry_id, problems)
    fields["source"] = source
    kind = view.k("kind") or ("event" if view.k("start") else "notice")
    if kind == "event":
        builder: type[Event] | type[Notice] = Event
        errors.update(_event_fields(view, fields))
    elif kind == "notice":
        builder = Notice
        errors.update(_notice_fields(view, fields))
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
    return any(
        _raw(entry, f"{prefix}kind") is not None or _raw(entry, f"{prefix}start") is not None
        for prefix in ctx.klynge_keys
    )


def _common(
    view: View, entry_id: str, problems: list[Problem]
) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    author, author_url = view.author()
    fields: dict[str, Any] = {
        "id": entry_id,
        "title": view.text("title"),
        "updated": _updated(view, entry_id, problems),
        "created": entry_date(view.entry, "published"),
        "category": _category(view.entry),
        "organizer": plain_text(view.k("organizer")) or author,
        "organizer_url": view.k("organizerurl") or author_url,
        "link": _link(view.entry, "alternate"),
        "url": _link(view.entry, "related"),
    }
    sequence = view.k("sequence")
    if sequence:
        try:
            fields["sequence"] = int(sequence)
        except ValueError:
            errors["sequence"] = "The sequence must be a whole number."
    return fields, errors


def _event_fields(view: View, fields: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    ctx = view.ctx
    tz = view.k("tzid") or ctx.default_timezone
    fields["timezone"] = tz
    try:
        zone(tz)
    except ValueError as e:
        errors["timezone"] = str(e)
        tz = ctx.default_timezone
    all_day_text = view.k("allday").lower() or "false"
    if all_day_text not in ("true", "false", "1", "0"):
        errors["all_day"] = "allday must be true or false."
    all_day = all_day_text in ("true", "1")
    fields["all_day"] = all_day
    for name in ("start", "end"):
        value = view.k(name)
        if value:
            try:
                fields[name] = parse_when(value, tz=tz, all_day=all_day)
            except ValueError as e:
                errors[name] = str(e)
    fields["status"] = view.k("status").lower() or "confirmed"
    fields["rrule"] = view.k("rrule")
    fields["description"] = _html(view)
    place, place_errors = _place(view)
    fields["place"] = place
    errors.update(place_errors)
    return errors


def _notice_fields(view: View, fields: dict[str, Any]) -> dict[str, str]:
    fields["body"] = _html(view)
    fields["related"] = view.k("related")
    expires = view.k("expires")
    if not expires:
        return {}
    try:
        fields["expires"] = parse_when(expires, tz=view.ctx.default_timezone, all_day=False)
    except ValueError as e:
        return {"expires": str(e)}
    return {}


def _place(view: View) -> tuple[Place | None, dict[str, str]]:
    texts = {
        "name": view.k("location"),
        "street": view.k("street"),
        "postcode": view.k("postcode"),
        "locality": view.k("locality"),
    }
    texts = {name: plain_text(value) for name, value in texts.items()}
    lat, lon = _point(view.entry)
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


def _plain_notice(view: View, source: FeedSource | None) -> tuple[Item | None, list[Problem]]:
    """Map an entry of a plain Atom or RSS 2.0 feed (no Klynge elements) to a Notice."""
    entry = view.entry
    link = _link(entry, "alternate") or str(entry.get("link") or "")
    if link and view.ctx.base_url:
        link = urljoin(view.ctx.base_url, link)
    entry_id = str(entry.get("id") or link).strip()
    problems: list[Problem] = []
    if not entry_id:
        return None, [Problem("", "id", "The entry has no id, guid or link.")]
    body = _html(view)
    title = view.text("title")
    if not title:  # RSS 2.0 allows items with only a description
        title = plain_text(html.unescape(nh3.clean(body, tags=set())))[:_TITLE_FROM_BODY].strip()
    fields: dict[str, Any] = {
        "id": entry_id,
        "title": title,
        "updated": _updated(view, entry_id, problems),
        "created": entry_date(entry, "published"),
        "category": _category(entry, known_only=True),
        "organizer": view.author()[0],
        "link": link,
        "body": body,
        "source": source,
    }
    return _build(Notice, fields, {}, entry_id, problems)


def _updated(view: View, entry_id: str, problems: list[Problem]) -> datetime:
    updated = entry_date(view.entry, "updated") or entry_date(view.entry, "published")
    if updated is not None:
        return updated
    fallback = view.ctx.feed_updated or datetime.now(UTC).replace(microsecond=0)
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
    # FeedParserDict.get("updated") falls back to `published` with a DeprecationWarning, and
    # its key mapping makes every lookup slow: read the plain dict.
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


def _html(view: View) -> str:
    """Return the entry's content (or summary) as HTML; the model sanitises it with nh3."""
    detail: Mapping[str, Any] | None = None
    path = f"{_A}content"
    contents = view.entry.get("content")
    if contents:
        detail = contents[0]
    elif view.entry.get("summary_detail"):
        detail, path = view.entry["summary_detail"], f"{_A}summary"
    if detail is None:
        return ""
    value = exact_text(str(detail.get("value") or ""), view.element, path)
    if detail.get("type") == "text/plain":
        return html.escape(value, quote=False)
    return value
