"""The ugeseddel: the week ahead as plain text (for the bulletin and the paper) and as HTML.

Built once from the merged view into a `Digest` (the days, the lines, a few notices), then
written out as text or HTML in the reader's language; the web page, the PDF and the e-mail
all start from the same `Digest`, so they never disagree. The text wraps at 72 characters
(RFC 5322 §2.1.1 asks for at most 78 in a line of mail; 72 leaves room for quoting).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from markupsafe import Markup, escape

from aggregator.publish import outputs
from aggregator.reader.merge import Merged
from klynge import i18n
from klynge.i18n import N_
from klynge.model import as_utc, zone
from klynge.recurrence import Occurrence

WIDTH = 72
DIGEST_CAP = 250  # lines in one ugeseddel; the rest is behind the calendar's address
NOTICES = 5
PACKAGES = ("aggregator", "klynge")
TITLE = N_("The week ahead – %(site)s")
WEEK = N_("Week %(week)s: %(first)s – %(last)s")
ALL_DAY = N_("All day")
CANCELLED = N_("Cancelled")
POSTPONED = N_("Postponed")
NOTHING = N_("Nothing planned this week yet.")
NOTICES_HEADING = N_("Noticeboard")
MORE = N_("+ %(n)s more in the calendar")
WHOLE = N_("The whole calendar, always up to date:")
UNSUBSCRIBE = N_("Unsubscribe from the ugeseddel:")


@dataclass(frozen=True)
class Line:
    """One event in the ugeseddel: its time, title, status, place and village, and its page."""

    time: str  # "19:00", or "" for all day
    title: str
    status: str
    place: str
    village: str
    url: str


@dataclass(frozen=True)
class Digest:
    """The week ahead of one cluster, ready to be written out in any form."""

    site: str
    monday: date
    days: list[tuple[date, list[Line]]]
    notices: list[tuple[str, str]]  # (title, village)
    calendar_url: str
    more: int = 0  # events left out past DIGEST_CAP
    unsubscribe_url: str = field(default="", compare=False)

    @property
    def sunday(self) -> date:
        """Return the week's last day."""
        return self.monday + timedelta(days=6)

    @property
    def count(self) -> int:
        """Return how many events the ugeseddel lists."""
        return sum(len(lines) for _, lines in self.days)


def week_ahead(today: date) -> date:
    """Return the Monday of the week ahead: today on a Monday, else the next Monday."""
    return today + timedelta(days=(7 - today.weekday()) % 7)


def build_digest(
    merged: Merged, monday: date, now: datetime, tz: str, site: str, base_url: str
) -> Digest:
    """Gather one week's events (Monday to Sunday) and the current notices."""
    base = base_url.rstrip("/")
    lo, hi = as_utc(monday, tz), as_utc(monday + timedelta(days=7), tz)
    found = outputs.occurrences(merged, lo, hi)
    days: dict[date, list[Line]] = {}
    for occurrence in found[:DIGEST_CAP]:
        day = _local_day(occurrence, tz)
        days.setdefault(day, []).append(_line(occurrence, tz, base))
    notices = [
        (n.title, n.source.title if n.source else "")
        for n in outputs.current_notices(merged, now)[:NOTICES]
    ]
    more = max(0, len(found) - DIGEST_CAP)
    return Digest(site, monday, sorted(days.items()), notices, f"{base}/calendar", more)


def _local_day(occurrence: Occurrence, tz: str) -> date:
    start = occurrence.start
    return start.astimezone(zone(tz)).date() if isinstance(start, datetime) else start


def _line(occurrence: Occurrence, tz: str, base: str) -> Line:
    event, start = occurrence.event, occurrence.start
    time = i18n.time_short(start.astimezone(zone(tz))) if isinstance(start, datetime) else ""
    place = occurrence.place.name if occurrence.place and occurrence.place.name else ""
    village = event.source.title if event.source else ""
    url = f"{base}/events/{event.id.removeprefix('urn:uuid:')}"
    return Line(time, occurrence.title, occurrence.status, place, village, url)


def tr(lang: str, msgid: str, **params: object) -> str:
    """Translate a msgid of the ugeseddel into `lang` and fill its placeholders."""
    text = i18n.catalogue(i18n.normalise_lang(lang) or i18n.DEFAULT_LANG, PACKAGES).gettext(msgid)
    return i18n.format_message(text, dict(params))


def heading(digest: Digest, lang: str) -> str:
    """Return "Week 49: 30 November – 6 December 2026" in `lang`."""
    week = digest.monday.isocalendar()[1]
    first = i18n.date_long(digest.monday, lang)
    return tr(lang, WEEK, week=week, first=first, last=i18n.date_long(digest.sunday, lang, True))


def title(digest: Digest, lang: str) -> str:
    """Return the ugeseddel's title (the e-mail's subject)."""
    return tr(lang, TITLE, site=digest.site)


def status_word(line: Line, lang: str) -> str:
    """Return CANCELLED / POSTPONED (in `lang`) for such a line, else nothing."""
    words = {"cancelled": CANCELLED, "postponed": POSTPONED}
    return tr(lang, words[line.status]).upper() if line.status in words else ""


def where_of(line: Line) -> str:
    """Return "place, village" of a line."""
    return ", ".join(part for part in (line.place, line.village) if part)


def digest_text(digest: Digest, lang: str) -> str:
    """Return the ugeseddel as plain text, wrapped at 72 characters."""
    out = [title(digest, lang), heading(digest, lang), ""]
    for day, lines in digest.days:
        out += [i18n.date_long(day, lang).upper()]
        out += [_text_line(line, lang) for line in lines] + [""]
    if not digest.days:
        out += [tr(lang, NOTHING), ""]
    if digest.more:
        out += [tr(lang, MORE, n=digest.more), ""]
    if digest.notices:
        out.append(tr(lang, NOTICES_HEADING).upper())
        for text, village in digest.notices:
            out.append(_wrap(f"* {text}" + (f" ({village})" if village else ""), "  "))
        out.append("")
    out += [tr(lang, WHOLE), digest.calendar_url]
    if digest.unsubscribe_url:
        out += ["", tr(lang, UNSUBSCRIBE), digest.unsubscribe_url]
    return "\n".join(out) + "\n"


def _text_line(line: Line, lang: str) -> str:
    return _wrap(plain_line(line, lang, pad=5), " " * 7)


def plain_line(line: Line, lang: str, pad: int = 0) -> str:
    """Return one event as a line of text: time, status, title, place and village."""
    when = line.time or tr(lang, ALL_DAY).lower()
    status = status_word(line, lang)
    what = f"{status}: {line.title}" if status else line.title
    where = where_of(line)
    return f"{when:>{pad}}  {what}" + (f" – {where}" if where else "")


def _wrap(text: str, indent: str) -> str:
    return "\n".join(textwrap.wrap(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False))


def digest_html(digest: Digest, lang: str) -> Markup:
    """Return the ugeseddel's body as HTML (escaped, inline-styled for mail programs)."""
    parts = [
        Markup('<h1 style="font-size:1.5em;margin:0 0 .2em">{}</h1>').format(title(digest, lang)),
        Markup('<p style="margin:0 0 1em">{}</p>').format(heading(digest, lang)),
    ]
    for day, lines in digest.days:
        parts.append(Markup('<h2 style="font-size:1.15em;margin:1em 0 .3em">{}</h2>').format(
            i18n.date_long(day, lang)))  # fmt: skip
        items = Markup("").join(_html_line(line, lang) for line in lines)
        parts.append(Markup('<ul style="padding-left:1.2em;margin:0">{}</ul>').format(items))
    if not digest.days:
        parts.append(Markup("<p>{}</p>").format(tr(lang, NOTHING)))
    if digest.more:
        parts.append(Markup("<p>{}</p>").format(tr(lang, MORE, n=digest.more)))
    parts += _html_notices(digest, lang)
    link = Markup('<a href="{0}">{0}</a>').format(digest.calendar_url)
    parts.append(Markup('<p style="margin-top:1.5em">{} {}</p>').format(tr(lang, WHOLE), link))
    if digest.unsubscribe_url:
        off = Markup('<a href="{0}">{0}</a>').format(digest.unsubscribe_url)
        parts.append(Markup("<p>{} {}</p>").format(tr(lang, UNSUBSCRIBE), off))
    return Markup("\n").join(parts)


def _html_line(line: Line, lang: str) -> Markup:
    when = line.time or tr(lang, ALL_DAY)
    status = status_word(line, lang)
    title_ = Markup('<a href="{}">{}</a>').format(line.url, line.title)
    if line.status == "cancelled":
        title_ = Markup("<s>{}</s>").format(title_)
    words = Markup(" <strong>{}</strong>").format(status) if status else Markup("")
    where = where_of(line)
    place = Markup(" – {}").format(where) if where else Markup("")
    return Markup("<li><strong>{}</strong> {}{}{}</li>").format(when, title_, words, place)


def _html_notices(digest: Digest, lang: str) -> list[Markup]:
    if not digest.notices:
        return []
    items = Markup("").join(
        Markup("<li>{}{}</li>").format(text, f" ({village})" if village else "")
        for text, village in digest.notices
    )
    return [
        Markup('<h2 style="font-size:1.15em;margin:1em 0 .3em">{}</h2>').format(
            tr(lang, NOTICES_HEADING)
        ),
        Markup("<ul>{}</ul>").format(items),
    ]


def html_document(digest: Digest, lang: str) -> str:
    """Return the ugeseddel as a whole HTML document (the e-mail's HTML part)."""
    body = digest_html(digest, lang)
    return (
        f'<!doctype html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        f"<title>{escape(title(digest, lang))}</title></head>"
        '<body style="font-family:sans-serif;line-height:1.45;max-width:40em;margin:1em">'
        f"{body}</body></html>"
    )
