"""The year plan (/plan) and /api/clashes of the aggregator, over real feeds on loopback."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
from aggregator_support import FeedServer, config_for, feed, refresher_of, start_aggregator
from clock_support import hostile_dates, utc_now
from lxml import html as lxml_html

from aggregator.config import Source
from klynge.model import Event, new_id, zone

feed_server = support.feed_server  # a fixture
TZ = zone("Europe/Copenhagen")


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=TZ)


def event(title: str, day: date, hour: int | None = 19, **extra: Any) -> Event:
    values: dict[str, Any] = {"id": new_id(), "title": title, "category": "sport"}
    values["updated"] = utc_now() - timedelta(hours=1)
    if hour is None:
        values |= {"start": day, "end": day + timedelta(days=1), "all_day": True}
    else:
        values |= {"start": at(day, hour), "end": at(day, hour + 2)}
    return Event(**(values | extra))


def next_weekday(now: datetime, weekday: int, weeks: int = 1) -> date:
    today = now.astimezone(TZ).date()
    return today + timedelta(days=(weekday - today.weekday()) % 7 + 7 * weeks)


async def aggregator(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any, villages: dict[str, list[Event]]
) -> Any:
    sources = [
        Source(feed_server.set(f"/{name}.atom", feed(name, events)), name)
        for name, events in villages.items()
    ]
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, sources))
    await refresher_of(client).refresh_all()
    return client


def day_cell(page: str, day: date) -> Any:
    [cell] = lxml_html.fromstring(page).xpath(f"//li[@id='d-{day.isoformat()}']")
    return cell


def words(cell: Any) -> str:
    return " ".join(cell.text_content().split())


async def get(client: Any, path: str, status: int = 200) -> str:
    response = await client.get(path, headers={"Accept-Language": "da"})
    text = await response.text()
    assert response.status == status, text[:500]
    return text


@hostile_dates
async def test_weekend_and_evening_clashes_are_marked(
    now: datetime, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    saturday = next_weekday(now, 5)
    wednesday = next_weekday(now, 2)
    thursday = wednesday + timedelta(days=1)
    villages = {
        "Østerby": [
            event("Håndbold", saturday, 10),
            event("Aftenløb", wednesday, 19),
            event("Formiddagsgymnastik", thursday, 9),
        ],
        "Vesterby": [
            event("Fodbold", saturday, 14),
            event("Badminton", wednesday, 20),
            event("Seniorgymnastik", thursday, 10),
            event("Koncert", saturday + timedelta(days=1), 15, category="culture"),
        ],
        "Norreby": [event("Sommerfest", saturday + timedelta(days=1), None, category="community")],
    }
    client = await aggregator(feed_server, tmp_path, aiohttp_client, villages)
    months = {saturday.strftime("%Y-%m"), thursday.strftime("%Y-%m")}
    first = min(months)
    page = await get(client, f"/plan?from={first}&months=2")
    sat = day_cell(page, saturday)
    assert "plan-clash" in sat.get("class") and "weekend" in sat.get("class")
    assert "Samme kategori: Sport" in words(sat)
    assert "Vesterby 1" in words(sat) and "Østerby 1" in words(sat)
    assert "plan-clash" in day_cell(page, wednesday).get("class")  # two evenings of sport
    assert "plan-clash" not in day_cell(page, thursday).get("class")  # mornings: no mark
    sunday = day_cell(page, saturday + timedelta(days=1))
    assert "plan-clash" not in sunday.get("class")  # two villages, different categories
    assert "Norreby 1" in words(sunday) and "Vesterby 1" in words(sunday)
    [link] = sat.xpath(".//a/@href")
    assert link == f"/calendar?from={saturday.isoformat()}"
    calendar = await get(client, link)
    assert "Håndbold" in calendar and "Fodbold" in calendar


async def test_filters_narrow_the_plan(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    saturday = next_weekday(utc_now(), 5)
    villages = {
        "Østerby": [event("Håndbold", saturday, 10)],
        "Vesterby": [event("Fodbold", saturday, 14), event("Banko", saturday, 19,
                                                          category="community")],
    }  # fmt: skip
    client = await aggregator(feed_server, tmp_path, aiohttp_client, villages)
    month = saturday.strftime("%Y-%m")
    one = await get(client, f"/plan?from={month}&village=vesterby")
    assert words(day_cell(one, saturday)).endswith("Vesterby 2")
    assert "Østerby" not in words(day_cell(one, saturday))
    sport = await get(client, f"/plan?from={month}&category=community")
    assert "Vesterby 1" in words(day_cell(sport, saturday))
    assert "Østerby" not in words(day_cell(sport, saturday))
    [link] = day_cell(sport, saturday).xpath(".//a/@href")
    assert link == f"/calendar?category=community&from={saturday.isoformat()}"


async def test_a_leap_february_has_29_days_and_a_cancelled_event_is_not_counted(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    leap = date(2028, 2, 29)
    villages = {
        "Østerby": [event("Skudårsfest", leap, 19)],
        "Vesterby": [event("Aflyst", leap, 19, status="cancelled")],
    }
    client = await aggregator(feed_server, tmp_path, aiohttp_client, villages)
    page = await get(client, "/plan?from=2028-02&months=1")
    tree = lxml_html.fromstring(page)
    assert len(tree.xpath("//section[@class='plan-month']//li")) == 29
    assert words(day_cell(page, leap)).endswith("Østerby 1")
    assert "plan-clash" not in day_cell(page, leap).get("class")


@pytest.mark.parametrize("query", ["months=0", "months=13", "months=x", "from=2026-13", "from=x"])
async def test_bad_plan_parameters_are_a_400(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any, query: str
) -> None:
    client = await aggregator(feed_server, tmp_path, aiohttp_client, {"Østerby": []})
    await get(client, f"/plan?{query}", status=400)


async def test_the_plan_in_english_and_twelve_months(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await aggregator(feed_server, tmp_path, aiohttp_client, {"Østerby": []})
    response = await client.get("/plan?months=12&lang=en")
    page = await response.text()
    assert response.status == 200 and "Year plan" in page
    assert len(lxml_html.fromstring(page).xpath("//section[@class='plan-month']")) == 12


async def test_api_clashes_pairs_only_across_villages(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    saturday = next_weekday(utc_now(), 5)
    villages = {
        "Østerby": [event("Håndbold", saturday, 10), event("Banko", saturday, 11)],
        "Vesterby": [event("Fodbold", saturday, 11), event("Aften", saturday, 19)],
        "Norreby": [event("Marked", saturday, None, category="market")],
    }
    client = await aggregator(feed_server, tmp_path, aiohttp_client, villages)
    answer = await (await client.get(f"/api/clashes?from={saturday}&to={saturday}")).json()
    found = {(tuple(sorted(e["title"] for e in p["events"])), p["kind"]) for p in answer["clashes"]}
    assert found == {
        (("Fodbold", "Håndbold"), "overlap"),
        (("Banko", "Fodbold"), "overlap"),
        (("Håndbold", "Marked"), "same_day"),
        (("Banko", "Marked"), "same_day"),
        (("Fodbold", "Marked"), "same_day"),
        (("Aften", "Marked"), "same_day"),
    }  # never Håndbold-Banko (one village), never Fodbold-Aften (no overlap)
    assert answer["from"] == answer["to"] == saturday.isoformat()
