"""Map entries to validated Events and Notices, with a Problem per bad field.

An entry is read through an `EntryView`: feedparser's dict (`ParsedView`), or for a strict
Klynge feed the element itself (`klynge.atom.scan.XmlView`); the mapping below is shared, so
both readers give the same items.

Everything read from a feed is untrusted: feedparser does not sanitise values of unknown
namespaces (design.md), so text goes through `plain_text`, HTML through the model's nh3
allowlist, and every value through the model's validation.
"""

from __future__ import annotations

import html
import re
from calendar import timegm
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urljoin
from xml.etree.ElementTree import Element

import nh3

from klynge.atom.carpools import read_carpool
from klynge.atom.names import ATOM_NS, KLYNGE_NS
from klynge.atom.scan import Problem, exact_text, parse_instant
from klynge.errors import ValidationError, problem_of
from klynge.messages import Message, define
from klynge.model import (
    BAD_SEQUENCE,
    CATEGORIES,
    Event,
    FeedSource,
    Item,
    Notice,
    Place,
    parse_when,
    zone,
)
from klynge.repeat_rule import optional_rule
from klynge.series import Change, Problems, sift
from klynge.series_text import read_changes, read_dates

_A = f"{{{ATOM_NS}}}"
_TAG_LIKE = re.compile(r"<[A-Za-z/!?]")
_TITLE_FROM_BODY = 100

UNKNOWN_KIND = define(
    "entry.unknown_kind", "Unknown kind '%(kind)s'; a Klynge entry is an event or a notice."
)
BAD_ALLDAY = define("entry.bad_allday", "allday must be true or false.")
NO_ID = define("entry.no_id", "The entry has no id, guid or link.")
NO_UPDATED = define("entry.no_updated", "The entry has no updated time; used the feed's.")


@dataclass(frozen=True)
class Context:
    """What entry mapping needs to know about the feed as a whole."""

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


class EntryView(Protocol):
    """One entry as a reader sees it: feedparser's dict, or the element of a strict feed."""

    def entry_id(self) -> str:
        """Return the atom:id (or RSS guid), stripped."""

    def k(self, name: str) -> str:
        """Return the text of a Klynge element, whatever prefix the publisher chose."""

    def has_klynge(self) -> bool:
        """Tell whether the entry carries a Klynge kind or start."""

    def title(self) -> str:
        """Return the title as plain text."""

    def author(self) -> tuple[str, str]:
        """Return the author's name (plain text) and URI."""

    def date(self, name: str) -> datetime | None:
        """Return `updated` or `published` as an aware datetime, if given."""

    def category(self, *, known_only: bool = False) -> str:
        """Return the first category term (lower case), or only one of our vocabulary."""

    def link(self, rel: str) -> str:
        """Return the href of the first link with this rel that is not the ICS link."""

    def fallback_link(self) -> str:
        """Return the link a plain RSS item gives instead of an atom:link."""

    def point(self) -> tuple[float | None, float | None]:
        """Return the georss:point as (lat, lon)."""

    def content(self) -> tuple[str, str]:
        """Return the content (or summary) and its MIME type; ("", "") when there is none."""


@dataclass(frozen=True)
class ParsedView:
    """One entry as feedparser read it, with its element from the XML pass (Atom only)."""

    entry: Mapping[str, Any]
    klynge_keys: tuple[str, ...]  # feedparser key prefixes of the Klynge namespace, e.g. "k_"
    element: Element | None

    def entry_id(self) -> str:
        """Return the id feedparser read."""
        return str(self.entry.get("id") or "").strip()

    def k(self, name: str) -> str:
        """Return the text of a Klynge element, whatever prefix the publisher chose."""
        for prefix in self.klynge_keys:
            value = _raw(self.entry, prefix + name)
            if isinstance(value, str):
                return exact_text(value.strip(), self.element, f"{{{KLYNGE_NS}}}{name}")
        return ""

    def has_klynge(self) -> bool:
        """Tell whether the entry carries a Klynge kind or start."""
        return any(
            _raw(self.entry, f"{prefix}kind") is not None
            or _raw(self.entry, f"{prefix}start") is not None
            for prefix in self.klynge_keys
        )

    def title(self) -> str:
        """Return an Atom text (title) as plain text."""
        value = str(self.entry.get("title") or "")
        return plain_text(exact_text(value, self.element, f"{_A}title"))

    def author(self) -> tuple[str, str]:
        """Return the author's name and URI."""
        author = self.entry.get("author_detail") or {}
        name = exact_text(str(author.get("name") or ""), self.element, f"{_A}author/{_A}name")
        return plain_text(name), str(author.get("href") or "")

    def date(self, name: str) -> datetime | None:
        """Return an entry date."""
        return entry_date(self.entry, name)

    def category(self, *, known_only: bool = False) -> str:
        """Return the first category term."""
        # Plain feeds use free-form categories ("Nyheder og sport"); keep only our vocabulary.
        for tag in self.entry.get("tags") or ():
            term = str(tag.get("term") or "").strip().lower()
            if term and (term in CATEGORIES or not known_only):
                return term
        return ""

    def link(self, rel: str) -> str:
        """Return the first matching link."""
        for link in self.entry.get("links") or ():
            if link.get("rel", "alternate") == rel and link.get("type") != "text/calendar":
                return str(link.get("href") or "").strip()
        return ""

    def fallback_link(self) -> str:
        """Return feedparser's `link` (an RSS item's <link>, or the guid)."""
        return str(self.entry.get("link") or "")

    def point(self) -> tuple[float | None, float | None]:
        """Return (lat, lon) of a georss:point, which feedparser gives as GeoJSON [lon, lat]."""
        where = self.entry.get("where")
        if not isinstance(where, Mapping) or where.get("type") != "Point":
            return None, None
        coordinates = where.get("coordinates")
        if not isinstance(coordinates, list | tuple) or len(coordinates) != 2:
            return None, None
        lon, lat = coordinates
        if not isinstance(lat, float | int) or not isinstance(lon, float | int):
            return None, None
        return float(lat), float(lon)

    def content(self) -> tuple[str, str]:
        """Return the content (or summary) and its MIME type."""
        detail: Mapping[str, Any] | None = None
        path = f"{_A}content"
        contents = self.entry.get("content")
        if contents:
            detail = contents[0]
        elif self.entry.get("summary_detail"):
            detail, path = self.entry["summary_detail"], f"{_A}summary"
        if detail is None:
            return "", ""
        value = exact_text(str(detail.get("value") or ""), self.element, path)
        return value, str(detail.get("type") or "")


def read_entry(
    view: EntryView, ctx: Context, source: FeedSource | None
) -> tuple[Item | None, list[Problem]]:
    """Return the entry as an Event or Notice (or None when dropped) and its problems."""
    entry_id = view.entry_id()
    if not view.has_klynge():
        return _plain_notice(view, ctx, source)
    problems: list[Problem] = []
    fields, errors = _common(view, ctx, entry_id, problems)
    fields["source"] = source
    kind = view.k("kind") or ("event" if view.k("start") else "notice")
    if kind == "event":
        builder: type[Event] | type[Notice] = Event
        errors.update(_event_fields(view, ctx, fields))
    elif kind == "notice":
        builder = Notice
        errors.update(_notice_fields(view, ctx, fields))
    else:
        message = Message(UNKNOWN_KIND, {"kind": kind[:60]})
        return None, [*problems, Problem(entry_id, "kind", message)]
    item, problems = _build(builder, fields, errors, entry_id, problems)
    if isinstance(item, Event):
        item, found = _with_exceptions(view, item)
        problems.extend(Problem(entry_id, name, message) for name, message in found)
    return item, problems


def _with_exceptions(view: EntryView, event: Event) -> tuple[Event, Problems]:
    """Add the series' exceptions to a valid event; a bad one is dropped with a problem."""
    texts = {name: view.k(name) for name in ("exdate", "rdate", "changes")}
    if not any(texts.values()):
        return event, []
    tz, all_day = event.timezone, event.all_day
    exdates, problems = read_dates(texts["exdate"], tz=tz, all_day=all_day, name="exdates")
    rdates, found = read_dates(texts["rdate"], tz=tz, all_day=all_day, name="rdates")
    changes: list[Change] = []
    more: Problems = []
    if texts["changes"]:
        changes, more = read_changes(texts["changes"], tz=tz, all_day=all_day)
    try:
        fixed, sifted = sift(event, exdates, rdates, [_plain_change(c) for c in changes])
    except ValidationError as e:  # sift keeps only valid ones; this guards the whole feed
        return event, [*problems, *found, *more, *e.fields.items()]
    return fixed, [*problems, *found, *more, *sifted]


def _plain_change(change: Change) -> Change:
    """Return the change with its one-line texts read as the series' own (tags stripped)."""
    place = change.place
    if place is not None:
        place = replace(
            place,
            name=plain_text(place.name),
            street=plain_text(place.street),
            postcode=plain_text(place.postcode),
            locality=plain_text(place.locality),
        )
    return replace(change, title=plain_text(change.title), place=place)


def _build(
    builder: type[Event] | type[Notice],
    fields: dict[str, Any],
    errors: dict[str, Message],
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


def _common(
    view: EntryView, ctx: Context, entry_id: str, problems: list[Problem]
) -> tuple[dict[str, Any], dict[str, Message]]:
    errors: dict[str, Message] = {}
    author, author_url = view.author()
    fields: dict[str, Any] = {
        "id": entry_id,
        "title": view.title(),
        "updated": _updated(view, ctx, entry_id, problems),
        "created": view.date("published"),
        "category": view.category(),
        "organizer": plain_text(view.k("organizer")) or author,
        "organizer_url": view.k("organizerurl") or author_url,
        "link": view.link("alternate"),
        "url": view.link("related"),
    }
    sequence = view.k("sequence")
    if sequence:
        try:
            fields["sequence"] = int(sequence)
        except ValueError:
            errors["sequence"] = Message(BAD_SEQUENCE)
    return fields, errors


def _event_fields(view: EntryView, ctx: Context, fields: dict[str, Any]) -> dict[str, Message]:
    errors: dict[str, Message] = {}
    tz = view.k("tzid") or ctx.default_timezone
    fields["timezone"] = tz
    try:
        zone(tz)
    except ValueError as e:
        errors["timezone"] = problem_of(e)
        tz = ctx.default_timezone
    all_day_text = view.k("allday").lower() or "false"
    if all_day_text not in ("true", "false", "1", "0"):
        errors["all_day"] = Message(BAD_ALLDAY)
    all_day = all_day_text in ("true", "1")
    fields["all_day"] = all_day
    for name in ("start", "end"):
        value = view.k(name)
        if value:
            try:
                fields[name] = parse_when(value, tz=tz, all_day=all_day)
            except ValueError as e:
                errors[name] = problem_of(e)
    fields["status"] = view.k("status").lower() or "confirmed"
    fields["carpooling"] = view.k("carpooling").lower() in ("true", "1")
    try:  # parsed here, at the edge: an entry with a bad rule is refused in words
        fields["rrule"] = optional_rule(view.k("rrule"))
    except ValidationError as e:
        errors.update(e.fields)
    fields["description"] = _html(view)
    place, place_errors = _place(view)
    fields["place"] = place
    errors.update(place_errors)
    return errors


def _notice_fields(view: EntryView, ctx: Context, fields: dict[str, Any]) -> dict[str, Message]:
    fields["body"] = _html(view)
    fields["related"] = view.k("related")
    fields["carpool"], errors = read_carpool(view.k, ctx.default_timezone)
    expires = view.k("expires")
    if not expires:
        return errors
    try:
        fields["expires"] = parse_when(expires, tz=ctx.default_timezone, all_day=False)
    except ValueError as e:
        return {**errors, "expires": problem_of(e)}
    return errors


def _place(view: EntryView) -> tuple[Place | None, dict[str, Message]]:
    texts = {
        "name": view.k("location"),
        "street": view.k("street"),
        "postcode": view.k("postcode"),
        "locality": view.k("locality"),
    }
    texts = {name: plain_text(value) for name, value in texts.items()}
    lat, lon = view.point()
    if not any(texts.values()) and lat is None:
        return None, {}
    try:
        return Place(**texts, lat=lat, lon=lon), {}
    except ValidationError as e:
        return None, dict(e.fields)


def _plain_notice(
    view: EntryView, ctx: Context, source: FeedSource | None
) -> tuple[Item | None, list[Problem]]:
    """Map an entry of a plain Atom or RSS 2.0 feed (no Klynge elements) to a Notice."""
    link = view.link("alternate") or view.fallback_link()
    if link and ctx.base_url:
        link = urljoin(ctx.base_url, link)
    entry_id = view.entry_id() or link.strip()
    problems: list[Problem] = []
    if not entry_id:
        return None, [Problem("", "id", Message(NO_ID))]
    body = _html(view)
    title = view.title()
    if not title:  # RSS 2.0 allows items with only a description
        title = plain_text(html.unescape(nh3.clean(body, tags=set())))[:_TITLE_FROM_BODY].strip()
    fields: dict[str, Any] = {
        "id": entry_id,
        "title": title,
        "updated": _updated(view, ctx, entry_id, problems),
        "created": view.date("published"),
        "category": view.category(known_only=True),
        "organizer": view.author()[0],
        "link": link,
        "body": body,
        "source": source,
    }
    return _build(Notice, fields, {}, entry_id, problems)


def _updated(view: EntryView, ctx: Context, entry_id: str, problems: list[Problem]) -> datetime:
    updated = view.date("updated") or view.date("published")
    if updated is not None:
        return updated
    fallback = ctx.feed_updated or datetime.now(UTC).replace(microsecond=0)
    problems.append(Problem(entry_id, "updated", Message(NO_UPDATED), "warning"))
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


def _html(view: EntryView) -> str:
    """Return the entry's content (or summary) as HTML; the model sanitises it with nh3."""
    value, mime = view.content()
    if mime == "text/plain":
        return html.escape(value, quote=False)
    return value


# --- strict Klynge feeds, read from the XML pass alone ------------------------------------


class NotStrict(Exception):
    """The feed uses something outside docs/feed-format.md: read it with feedparser instead."""


_KLYNGE_TAG = f"{{{KLYNGE_NS}}}"  # the URI with a trailing slash is for feedparser to read
_GEORSS_POINT = "{http://www.georss.org/georss}point"
# Atom children of an entry that feedparser reads into keys we use, or ignores; any other
# child (Atom 0.3 names, Dublin Core, content:encoded, …) may change what feedparser reports.
_ATOM_SINGLE = {"id", "title", "updated", "published", "content", "summary", "author"}
_ATOM_IGNORED = {"source", "rights"}
_TEXT_TYPES = {None: "text/plain", "text": "text/plain", "html": "text/html"}
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# feedparser's URI fix-up for ids and links (feedparser.urls._urljoin with an empty base).
_URI_FIXER = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*://)(/*)")


def fix_uri(value: str) -> str:
    """Return an id or href as feedparser gives it: extra slashes after `scheme://` dropped."""
    return _URI_FIXER.sub(r"\1", value)


def strict_text(element: Element) -> str:
    """Return the stripped text of an element that must have no child elements."""
    if len(element):
        raise NotStrict(f"{element.tag} has child elements")
    return (element.text or "").strip()


def text_construct(element: Element) -> tuple[str, str]:
    """Return an Atom text construct's text and MIME type (only `text` and `html` types)."""
    for name in element.attrib:
        if name not in ("type", _XML_LANG):
            raise NotStrict(f"{element.tag} has the attribute {name}")
    kind = element.get("type")
    mime = _TEXT_TYPES.get(kind.lower() if kind is not None else None)
    if mime is None:
        raise NotStrict(f"{element.tag} has type {kind!r}")
    return strict_text(element), mime


class XmlView:
    """An entry of a strict Klynge feed, read from its element: what feedparser would give.

    Built by `xml_view`, which raises NotStrict for anything whose feedparser reading this
    class does not reproduce exactly (tests/test_feed_strict.py compares the two readers).
    """

    __slots__ = ("_klynge", "_links", "_point", "_single", "_terms")

    def __init__(self, entry: Element) -> None:
        self._single: dict[str, Element] = {}
        self._klynge: dict[str, str] = {}
        self._links: list[tuple[str, str, str]] = []  # rel, type, href
        self._terms: list[str] = []
        self._point: tuple[float | None, float | None] = (None, None)
        seen_point = False
        for child in entry:
            tag = child.tag
            if tag.startswith(_A):
                self._atom(tag[len(_A) :], child)
            elif tag.startswith(_KLYNGE_TAG):
                name = tag.rsplit("}", 1)[1]
                if name in self._klynge or child.attrib:
                    raise NotStrict(f"klynge:{name} repeated or with attributes")
                self._klynge[name] = strict_text(child)
            elif tag == _GEORSS_POINT and not seen_point:
                seen_point = True
                self._point = _strict_point(strict_text(child))
            else:
                raise NotStrict(f"the entry has a {tag} element")
        if "kind" not in self._klynge and "start" not in self._klynge:
            raise NotStrict("an entry without Klynge elements")

    def _atom(self, name: str, child: Element) -> None:
        if name == "link":
            href = child.get("href")
            if href is None:
                raise NotStrict("a link without href")
            rel = (child.get("rel") or "alternate").lower()
            default = "application/atom+xml" if rel == "self" else "text/html"
            kind = (child.get("type") or default).lower()
            self._links.append((rel, kind, fix_uri(href)))
        elif name == "category":
            if (child.text or "").strip() or len(child):
                raise NotStrict("a category with content")
            term = (child.get("term") or "").strip().lower()
            if term:
                self._terms.append(term)
        elif name in _ATOM_SINGLE:
            if name in self._single:
                raise NotStrict(f"atom:{name} repeated")
            self._single[name] = child
        elif name not in _ATOM_IGNORED:
            raise NotStrict(f"the entry has atom:{name}")

    def _text(self, name: str) -> str:
        element = self._single.get(name)
        return strict_text(element) if element is not None else ""

    def entry_id(self) -> str:
        """Return the atom:id."""
        return fix_uri(self._text("id"))

    def k(self, name: str) -> str:
        """Return the text of a Klynge element."""
        return self._klynge.get(name, "")

    def has_klynge(self) -> bool:
        """Tell whether the entry carries a Klynge kind or start (always, once built)."""
        return True

    def title(self) -> str:
        """Return the title as plain text."""
        element = self._single.get("title")
        return plain_text(text_construct(element)[0]) if element is not None else ""

    def author(self) -> tuple[str, str]:
        """Return the author's name and URI."""
        author = self._single.get("author")
        if author is None:
            return "", ""
        name = uri = ""
        seen: set[str] = set()
        for child in author:
            local = child.tag[len(_A) :] if child.tag.startswith(_A) else ""
            if local not in ("name", "uri", "email") or local in seen:
                raise NotStrict(f"the author has a {child.tag} element")
            seen.add(local)
            if local == "name":
                name = strict_text(child)
            elif local == "uri":
                uri = fix_uri(strict_text(child))
        return plain_text(name), uri

    def date(self, name: str) -> datetime | None:
        """Return `updated` or `published`; a non-RFC 3339 date is for feedparser to read."""
        text = self._text(name)
        if not text:
            return None
        try:
            return parse_instant(text)
        except ValueError as e:
            raise NotStrict(f"atom:{name} is not RFC 3339") from e

    def category(self, *, known_only: bool = False) -> str:
        """Return the first category term."""
        for term in self._terms:
            if term in CATEGORIES or not known_only:
                return term
        return ""

    def link(self, rel: str) -> str:
        """Return the first matching link."""
        for link_rel, kind, href in self._links:
            if link_rel == rel and kind != "text/calendar":
                return href.strip()
        return ""

    def fallback_link(self) -> str:
        """Return "" (only plain entries use it, and those are never strict)."""
        return ""

    def point(self) -> tuple[float | None, float | None]:
        """Return the georss:point as (lat, lon)."""
        return self._point

    def content(self) -> tuple[str, str]:
        """Return the content (or summary) and its MIME type."""
        element = self._single.get("content")
        if element is None:
            element = self._single.get("summary")
        if element is None:
            return "", ""
        return text_construct(element)


def _strict_point(text: str) -> tuple[float | None, float | None]:
    parts = text.replace(",", " ").split()
    if len(parts) != 2:
        raise NotStrict("a georss:point that is not two numbers")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError as e:
        raise NotStrict("a georss:point that is not two numbers") from e
