"""The residents' pages of the aggregator, served by the real app over real feeds."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aggregator_support as support
import pytest
from aggregator_support import FeedServer, config_for, feed, refresher_of, start_aggregator
from clock_support import hostile_dates, local_today, utc_now
from icalendar import Calendar

from aggregator.config import Source
from aggregator.web.calendar import LIST_DAYS
from klynge.i18n import date_long, month_label, week_label
from klynge.ical.writer import html_to_text as ical_text
from klynge.model import Event, Notice, Place, new_id, zone

feed_server = support.feed_server  # a fixture

TZ = zone("Europe/Copenhagen")


def at(day: date, hour: int) -> datetime:
    """Return a wall-clock time in Copenhagen."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=TZ)


def make_event(title: str, day: date, hour: int = 19, **kwargs: Any) -> Event:
    """Return an event on a local day, two hours long."""
    values: dict[str, Any] = {
        "id": new_id(),
        "title": title,
        "updated": utc_now() - timedelta(hours=2),
        "start": at(day, hour),
        "end": at(day, hour + 2),
        "category": "community",
    }
    return Event(**(values | kwargs))


def make_notice(title: str, **kwargs: Any) -> Notice:
    """Return a notice that expires in ten days."""
    values: dict[str, Any] = {
        "id": new_id(),
        "title": title,
        "updated": utc_now() - timedelta(hours=2),
        "body": "<p>Ring til Anna</p>",
        "category": "volunteers",
        "expires": at(local_today() + timedelta(days=10), 0),
    }
    return Notice(**(values | kwargs))


HALL = Place(
    name="Østerby Forsamlingshus",
    street="Skolevej 4",
    postcode="8500",
    locality="Østerby",
    lat=56.41,
    lon=10.88,
)


class World:
    """The pages' feeds, dated from the instant a test runs at (the `now` fixture)."""

    def __init__(self, now: datetime) -> None:
        self.TODAY = now.astimezone(TZ).date()
        self.MONDAY = self.TODAY - timedelta(days=self.TODAY.weekday())
        self.NEXT_MONDAY = self.MONDAY + timedelta(days=7)
        self.UPDATED = now.astimezone(UTC) - timedelta(hours=2)
        self.FEAST = make_event(
            "Fællesspisning",
            self.NEXT_MONDAY,
            18,
            category="food",
            place=HALL,
            organizer="Lokalrådet",
            organizer_url="https://osterby.example/lokalraad",
            description="<p>Tag en ret med.</p><script>alert(1)</script>",
        )
        self.KNITTING = make_event(
            "Strikkeklub",
            self.NEXT_MONDAY + timedelta(days=1),
            rrule="FREQ=WEEKLY;COUNT=4",
            category="culture",
        )
        self.FAR = make_event("Nytårskur", self.NEXT_MONDAY + timedelta(days=7), category="meeting")
        self.FOOTBALL = make_event("Fodbold", self.TODAY + timedelta(days=1), 10, category="sport")
        self.CANCELLED = make_event(
            "Juletræstænding", self.TODAY + timedelta(days=1), 16, status="cancelled"
        )
        self.POSTPONED = make_event(
            "Koncert",
            self.TODAY + timedelta(days=1),
            20,
            status="postponed",
            description="<p>Ingen &lt;/script&gt;&lt;!-- her</p>",
        )
        self.LIFT_EXPIRES = at(self.NEXT_MONDAY, 0)
        self.LIFT = make_notice(
            "Samkørsel fra kirken",
            category="carpool",
            related=self.FEAST.id,
            expires=self.LIFT_EXPIRES,
        )
        self.HELPERS = make_notice("Hjælpere søges", updated=self.UPDATED - timedelta(days=1))
        self.MORE_HELPERS = make_notice("Flere hjælpere søges")
        self.ROADWORKS = make_notice("Vejarbejde på Skolevej", category="roadworks")
        self.OSTERBY = [
            self.FEAST,
            self.KNITTING,
            self.FAR,
            self.LIFT,
            self.HELPERS,
            self.MORE_HELPERS,
        ]
        self.VESTERBY = [self.FOOTBALL, self.CANCELLED, self.POSTPONED, self.ROADWORKS]


@pytest.fixture
def w(now: datetime) -> World:
    """Return the test data dated from `now`."""
    return World(now)


def path_of(item: Event | Notice) -> str:
    """Return the aggregator's page of an event."""
    return f"/events/{item.id.removeprefix('urn:uuid:')}"


@pytest.fixture
async def client(w: World, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any) -> Any:
    """An aggregator over Østerby and Vesterby, refreshed once."""
    a = feed_server.set("/osterby.atom", feed("Østerby", w.OSTERBY))
    b = feed_server.set("/vesterby.atom", feed("Vesterby", w.VESTERBY))
    config = config_for(tmp_path, [Source(a, "Østerby"), Source(b, "Vesterby")])
    app_client = await start_aggregator(aiohttp_client, config)
    await refresher_of(app_client).refresh_all()
    return app_client


async def page(client: Any, path: str, status: int = 200, **params: str) -> str:
    """Return the HTML of a page, asserting its status."""
    resp = await client.get(path, params=params)
    text = await resp.text()
    assert resp.status == status, text[:2000]
    return text


def section(html: str, marker: str, end: str = "</section>") -> str:
    """Return the HTML from `marker` to the next `end`."""
    start = html.index(marker)
    return html[start : html.index(end, start)]


def main_of(html: str) -> str:
    """Return the <main> element's HTML."""
    return section(html, "<main", "</main>")


# --- the front page -----------------------------------------------------------------------


@hostile_dates
async def test_front_page_shows_this_and_next_calendar_week_by_day(w: World, client: Any) -> None:
    html = main_of(await page(client, "/"))
    nxt = section(html, 'id="s-next"', 'id="s-notices"')
    assert week_label(w.NEXT_MONDAY, "da") in nxt  # "uge 49"
    assert date_long(w.NEXT_MONDAY, "da") in nxt  # "mandag 7. december"
    assert "Fællesspisning" in nxt and "Strikkeklub" in nxt
    assert "Nytårskur" not in html  # the week after next is the calendar's
    row = section(html, "Fællesspisning", "</li>")
    assert "Østerby" in row and "Skolevej 4, 8500 Østerby" in row and "Spisning" in row
    monday = section(html, date_long(w.NEXT_MONDAY, "da"), "</ul>")
    assert ">18:00</time>" in monday[monday.rindex("<li", 0, monday.index("Fællesspisning")) :]
    where = "s-today" if w.FOOTBALL.start.date() == w.TODAY else "s-week"
    if w.TODAY.weekday() == 6:  # on a Sunday "tomorrow" is next week
        where = "s-next"
    assert "Fodbold" in section(html, f'id="{where}"', "</section>")


@hostile_dates
async def test_cancelled_and_postponed_are_struck_and_worded(client: Any) -> None:
    html = await page(client, "/")
    cancelled = html[html.rindex("<li", 0, html.index("Juletræstænding")) :]
    assert cancelled.startswith('<li class="occurrence cancelled">')
    assert '<strong class="status">Aflyst</strong>' in section(cancelled, "<li", "</li>")
    assert "Udsat" in section(html, "Koncert", "</li>")
    english = await page(client, "/", lang="en")
    assert ">Cancelled</strong>" in english and ">Postponed</strong>" in english


async def test_front_page_teases_notices_and_links_to_filters(client: Any) -> None:
    html = main_of(await page(client, "/"))
    assert "Vejarbejde på Skolevej" in section(html, 'id="s-notices"')
    assert 'href="/noticeboard"' in html
    assert '<a href="/calendar?village=osterby">Østerby</a>' in html
    assert '<a href="/calendar?category=sport">Sport</a>' in html


# --- the calendar -------------------------------------------------------------------------


async def test_calendar_list_filters_by_village_and_category_links(client: Any) -> None:
    html = main_of(await page(client, "/calendar", village="vesterby", category="sport"))
    assert "Fodbold" in html
    assert "Juletræstænding" not in html and "Fællesspisning" not in html
    active = section(html, 'class="active-filter"', "</p>")
    assert "Vesterby" in active and "Sport" in active and ">vis alle</a>" in active
    assert 'href="/calendar"' in active
    assert '<a href="/calendar?village=vesterby&amp;category=sport" aria-current="true">' in html
    assert 'href="/calendar?village=osterby&amp;category=sport"' in html  # switch village
    selection = "webcal://syd.example/calendar.ics?village=vesterby&amp;category=sport"
    assert f'<a href="{selection}">Abonnér på netop dette udvalg</a>' in html
    whole = main_of(await page(client, "/calendar"))
    assert "Fodbold" in whole and "Fællesspisning" in whole and "Juletræstænding" in whole


@hostile_dates
async def test_calendar_list_expands_recurring_events(w: World, client: Any) -> None:
    html = main_of(await page(client, "/calendar", village="osterby", category="culture"))
    dates = [w.KNITTING.start.date() + timedelta(weeks=n) for n in range(4)]  # weekly, COUNT=4
    shown = [d for d in dates if d < w.TODAY + timedelta(days=LIST_DAYS)]  # the list's 4 weeks
    assert len(shown) >= 3 and html.count(">Strikkeklub</a>") == len(shown)
    later = main_of(await page(client, "/calendar", village="osterby", **{"from": str(dates[0])}))
    assert later.count(">Strikkeklub</a>") == 4


@hostile_dates
async def test_month_view_is_a_grid_of_whole_weeks(w: World, client: Any) -> None:
    month = w.NEXT_MONDAY.replace(day=1)
    key = month.strftime("%Y-%m")
    html = main_of(await page(client, "/calendar", view="month", month=key))
    assert month_label(month, "da") in section(html, "<h1", "</h1>")  # "december 2026"
    assert html.count('<div class="cell') % 7 == 0
    assert html.count('class="month-week') == html.count('<div class="cell') // 7
    cell = section(html, f'datetime="{w.NEXT_MONDAY.isoformat()}"', "</div>")
    assert "Fællesspisning" in cell and ">18:00</time>" in cell
    prev = (month - timedelta(days=1)).strftime("%Y-%m")
    nxt = (month + timedelta(days=32)).strftime("%Y-%m")
    assert f'href="/calendar?view=month&amp;month={prev}"' in html
    assert f'href="/calendar?view=month&amp;month={nxt}"' in html
    filtered = await page(client, "/calendar", view="month", month=key, village="vesterby")
    assert "Fællesspisning" not in main_of(filtered)


async def test_bad_month_and_date_are_refused_in_words(client: Any) -> None:
    html = await page(client, "/calendar", 400, view="month", month="december")
    assert "Skriv måneden som ÅÅÅÅ-MM, fx 2026-12." in html
    html = await page(client, "/calendar", 400, view="month", month="2026-13", lang="en")
    assert "Give the month as YYYY-MM, for example 2026-12." in html
    assert "Skriv datoen" in await page(client, "/calendar", 400, **{"from": "i morgen"})
    for far in ("9999-12-31", "0001-01-01"):  # past what date arithmetic can reach: no 500
        assert "Skriv datoen" in await page(client, "/calendar", 400, **{"from": far})


# --- the event page -----------------------------------------------------------------------


async def test_event_page_shows_place_map_organiser_and_village(w: World, client: Any) -> None:
    html = main_of(await page(client, path_of(w.FEAST)))
    assert "<h1" in html and "Fællesspisning" in section(html, "<h1", "</h1>")
    assert date_long(w.NEXT_MONDAY, "da", year=True) in html and "kl. 18:00–20:00" in html
    assert "Skolevej 4, 8500 Østerby" in html
    osm = "https://www.openstreetmap.org/?mlat=56.41&amp;mlon=10.88#map=16/56.41/10.88"
    assert f'href="{osm}"' in html
    assert (
        '<a href="https://osterby.example/lokalraad" rel="nofollow noopener">Lokalrådet</a>' in html
    )
    assert '<a href="/calendar?village=osterby">Østerby</a>' in html
    assert "<p>Tag en ret med.</p>" in html and "<script>alert" not in html


@hostile_dates
async def test_event_page_describes_recurrence_in_words(w: World, client: Any) -> None:
    html = main_of(await page(client, path_of(w.KNITTING)))
    last = w.NEXT_MONDAY + timedelta(days=1 + 21)
    until = f"{last.day}. {month_label(last, 'da').split()[0]}"
    assert f"Gentages hver tirsdag indtil {until}" in html
    assert html.count("<li><time") == 4
    english = main_of(await page(client, path_of(w.KNITTING), lang="en"))
    assert "Repeats every Tuesday until" in english


async def test_event_page_status_word(w: World, client: Any) -> None:
    html = main_of(await page(client, path_of(w.CANCELLED)))
    assert 'class="event-page cancelled"' in html
    assert "Aflyst</strong> Begivenheden bliver ikke til noget." in html


async def test_event_ics_is_one_parsable_vevent(w: World, client: Any) -> None:
    html = main_of(await page(client, path_of(w.KNITTING)))
    href = f"{path_of(w.KNITTING)}.ics"
    assert f'href="{href}"' in html and "Tilføj til min kalender" in html
    resp = await client.get(href)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/calendar")
    calendar = Calendar.from_ical(await resp.read())
    [vevent] = calendar.walk("VEVENT")
    assert str(vevent["SUMMARY"]) == "Strikkeklub" and str(vevent["UID"]) == w.KNITTING.id
    assert "COUNT=4" in vevent["RRULE"].to_ical().decode()
    missing = await client.get("/events/00000000-0000-4000-8000-000000000000.ics")
    assert missing.status == 404


async def test_event_json_ld_is_valid_and_cannot_end_its_script(w: World, client: Any) -> None:
    for item in (w.FEAST, w.POSTPONED):
        html = await page(client, path_of(item))
        script = section(html, '<script type="application/ld+json">', "</script>")
        text = script.removeprefix('<script type="application/ld+json">')
        assert "<" not in text
        data = json.loads(text)
        assert data["description"] == ical_text(item.description)
        assert data["@type"] == "Event" and data["name"] == item.title
    assert data["eventStatus"] == "https://schema.org/EventPostponed"
    feast = json.loads(
        section(await page(client, path_of(w.FEAST)), "{", "</script>")
    )  # the first "{" of the page is the JSON-LD's
    assert feast["location"]["address"]["streetAddress"] == "Skolevej 4"
    assert feast["location"]["geo"]["latitude"] == 56.41


# --- carpools and the noticeboard -----------------------------------------------------


async def test_carpool_offer_is_shown_beside_its_event(w: World, client: Any) -> None:
    html = main_of(await page(client, path_of(w.FEAST)))
    carpools = section(html, 'class="carpools"')
    assert "Samkørsel til denne begivenhed" in carpools and "Samkørsel fra kirken" in carpools
    assert "Samkørsel" not in main_of(await page(client, path_of(w.FOOTBALL)))
    board = main_of(await page(client, "/noticeboard"))
    offer = section(board, "Samkørsel fra kirken", "</li>")
    assert f'<a href="{path_of(w.FEAST)}">Fællesspisning</a>' in offer


@hostile_dates
async def test_noticeboard_groups_by_category_newest_first_with_expiry(
    w: World, client: Any
) -> None:
    board = main_of(await page(client, "/noticeboard"))
    headings = re.findall(r'<h2 id="h-[^"]+">([^<]+)</h2>', board)
    assert headings == ["Samkørsel", "Frivillige søges", "Vejarbejde"]
    volunteers = section(board, 'id="c-volunteers"')
    assert volunteers.index("Flere hjælpere søges") < volunteers.index(">Hjælpere søges")
    last_day = date_long(w.NEXT_MONDAY - timedelta(days=1), "da")  # expires at midnight
    assert f"vises til {last_day}" in section(board, "Samkørsel fra kirken", "</li>")
    english = main_of(await page(client, "/noticeboard", lang="en"))
    assert ">Volunteers wanted</h2>" in english and "shown until" in english


# --- subscribe, status, poster ----------------------------------------------------------


async def test_subscribe_offers_webcal_https_and_google_per_village_and_category(
    client: Any,
) -> None:
    html = main_of(await page(client, "/subscribe"))
    base = "http://syd.example/calendar.ics"
    for url in (base, f"{base}?village=osterby", f"{base}?category=sport"):
        webcal = "webcal://" + url.removeprefix("http://")
        assert f">{url}</code>" in html.replace("&amp;", "&")
        assert f'href="{webcal}"' in html.replace("&amp;", "&")
        assert f"cid={quote(webcal, safe='')}" in html
    assert "https://calendar.google.com/calendar/r?cid=" in html
    assert "http://syd.example/feed.atom" in html
    assert html.count('class="copy-button"') >= 4 and "data-copy=" in html
    assert "iPhone" in html and "Android" in html and "Outlook" in html


async def test_status_names_each_source_state_in_words(
    client: Any, feed_server: FeedServer
) -> None:
    html = main_of(await page(client, "/status"))
    assert "Østerby" in html and "Vesterby" in html and 'class="state-word">ok<' in html
    feed_server.set("/vesterby.atom", b"gone", status=500)
    await refresher_of(client).refresh_all()
    html = main_of(await page(client, "/status"))
    vesterby = section(html, "Vesterby <span", "</li>")
    assert "fejler" in vesterby and "Seneste fejl" in vesterby and "500" in vesterby
    assert "1 fejl i træk" in vesterby and "4 i alt" in vesterby


@hostile_dates
async def test_poster_names_the_week_and_links_to_subscribe(w: World, client: Any) -> None:
    html = main_of(await page(client, "/poster", week="2026-W49", weeks="1"))
    assert "Klynge Syd" in html
    assert "Uge 49 · 30. november – 6. december 2026" in html
    assert '<svg role="img"' in html and "http://syd.example/subscribe" in html
    english = main_of(await page(client, "/poster", week="2026-W49", weeks="1", lang="en"))
    assert "Week 49 · 30 November – 6 December 2026" in english
    this_week = main_of(await page(client, "/poster", weeks="1"))
    assert f"Uge {w.TODAY.isocalendar().week} ·" in this_week


@hostile_dates
async def test_poster_shows_the_week_grouped_by_day(w: World, client: Any) -> None:
    year, week, _ = w.NEXT_MONDAY.isocalendar()
    html = main_of(await page(client, "/poster", week=f"{year}-W{week:02d}", weeks="1"))
    monday = section(html, f'id="p-{w.NEXT_MONDAY.isoformat()}"')
    assert "Fællesspisning" in monday and "18:00" in monday
    assert "Strikkeklub" in section(html, f'id="p-{(w.NEXT_MONDAY + timedelta(1)).isoformat()}"')
    assert "Nytårskur" not in html
    assert f"?week={year}-W{week + 1:02d}" in html or "W01" in html  # next week's link


@pytest.mark.parametrize(
    "week", ["49", "2026-49", "2025-W53", "2026-W00", "2026-W1x", "9999-W52", "0001-W01"]
)
async def test_poster_refuses_a_bad_week_in_words(client: Any, week: str) -> None:
    html = await page(client, "/poster", 400, week=week)
    assert "Skriv ugen som ÅÅÅÅ-Wuu, fx 2026-W49" in html


async def busy_poster(w: World, client_for: Any, count: int) -> str:
    """Return the poster of next week holding `count` events spread over its seven days."""
    busy = [
        make_event(f"Arrangement {n}", w.NEXT_MONDAY + timedelta(days=n % 7), 8 + n % 12)
        for n in range(count)
    ]
    client = await client_for(busy)
    year, week, _ = w.NEXT_MONDAY.isocalendar()
    return main_of(await page(client, "/poster", week=f"{year}-W{week:02d}"))


@pytest.fixture
def client_for(feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any) -> Any:
    """Return a factory of aggregators over one village feed of the given events."""

    async def make(events: list[Event]) -> Any:
        url = feed_server.set("/busy.atom", feed("Travlby", events))
        app_client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url)]))
        await refresher_of(app_client).refresh_all()
        return app_client

    return make


async def test_poster_holds_a_week_of_twenty_events(w: World, client_for: Any) -> None:
    html = await busy_poster(w, client_for, 20)
    assert html.count('<span class="what">') == 20 and "flere på" not in html


@hostile_dates
async def test_busy_poster_caps_each_day_and_says_how_many_more(w: World, client_for: Any) -> None:
    html = await busy_poster(w, client_for, 90)
    shown = html.count('<span class="what">')
    more = [int(n) for n in re.findall(r"\+ (\d+) flere på syd.example/calendar", html)]
    assert 0 < shown < 90 and len(more) == 7 and shown + sum(more) == 90


@hostile_dates
async def test_api_events_default_window_is_the_clusters_today(w: World, client_for: Any) -> None:
    yesterday, today = w.TODAY - timedelta(days=1), w.TODAY
    late_start, early_start = at(yesterday, 23), at(today, 0)
    late = make_event(
        "Sen aftensang", yesterday, start=late_start, end=late_start + timedelta(minutes=30)
    )
    early = make_event("Natløb", today, start=early_start, end=early_start + timedelta(minutes=20))
    client = await client_for([late, early])
    body = await (await client.get("/api/events")).json()
    assert datetime.fromisoformat(body["from"]) == at(today, 0)  # local midnight, DST or not
    assert [e["title"] for e in body["events"]] == ["Natløb"]
    dated = await (await client.get("/api/events", params={"from": str(yesterday)})).json()
    assert [e["title"] for e in dated["events"]] == ["Sen aftensang", "Natløb"]


@hostile_dates
async def test_busy_pages_stay_under_100_kb(w: World, client_for: Any) -> None:
    # 400 events in four weeks: a busy cluster of fifteen villages.
    busy = [
        make_event(
            f"Fællesspisning med musik og lotteri nr. {n}",
            w.TODAY + timedelta(days=n % 28),
            8 + n % 12,
            place=HALL,
            category=("sport", "culture", "food", "market")[n % 4],
        )
        for n in range(400)
    ]
    client = await client_for(busy)
    assets = 0  # the page's CSS and JavaScript count towards the 100 KB too
    for name in ("klynge.css", "aggregator.css", "klynge.js"):
        assets += len(await (await client.get(f"/static/{name}")).read())
    month = {"view": "month", "month": w.TODAY.strftime("%Y-%m")}
    for path, params in (("/", {}), ("/calendar", {}), ("/calendar", month)):
        size = len((await page(client, path, **params)).encode()) + assets
        assert size <= 100 * 1024, (path, params, size)
    assert "flere" in await page(client, "/calendar", **month)  # days capped in the grid
    listed = await page(client, "/calendar")
    assert listed.count('<li class="occurrence') <= 120 and "Senere" in listed


def _slow_day_cap(days: Any, lines: int) -> int:
    """The poster's first, quadratic day cap: the reference for the linear one."""
    from aggregator.web.poster import poster_lines

    cap = max((len(items) for _, items in days), default=0)
    while cap > 1 and poster_lines(days, cap) > lines:
        cap -= 1
    return cap


def test_poster_day_cap_is_the_largest_cap_that_fits() -> None:
    import random

    from aggregator.web.poster import day_cap
    from klynge.recurrence import Occurrence

    rng = random.Random(7)
    start = utc_now()
    for _ in range(300):
        days = []
        for d in range(rng.randint(0, 7)):
            items = [
                Occurrence(support.event("x" * rng.randint(1, 90)), start, start)
                for _ in range(rng.choice([0, 1, 2, 5, 12, 40]))
            ]
            days.append((date(2026, 12, 1 + d), items))
        lines = rng.choice([10, 30, 68, 200])
        assert day_cap(days, lines) == _slow_day_cap(days, lines), (lines, days)
