"""The rough edges found in use (issue 16), each pinned on the real aggregator over real feeds."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
from aggregator_support import FeedServer, config_for, feed, refresher_of, start_aggregator
from clock_support import local_today, utc_now
from lxml import html as lxml_html

from aggregator.config import Source, from_mapping
from klynge.errors import ConfigError
from klynge.model import Event, Notice, new_id, zone
from klynge.phone import tel_links

feed_server = support.feed_server  # a fixture

TZ = zone("Europe/Copenhagen")


def event(title: str, days: int, **kwargs: Any) -> Event:
    """Return an event `days` after today at 19:00 local time."""
    day = local_today() + timedelta(days=days)
    start = datetime(day.year, day.month, day.day, 19, tzinfo=TZ)
    values: dict[str, Any] = {"id": new_id(), "title": title, "updated": utc_now(),
                              "start": start, "end": start + timedelta(hours=2)}  # fmt: skip
    return Event(**(values | kwargs))


def notice(title: str, body: str) -> Notice:
    """Return a notice that expires in ten days."""
    return Notice(id=new_id(), title=title, updated=utc_now(), body=body,
                  expires=utc_now() + timedelta(days=10))  # fmt: skip


CANCELLED = event("Juletræstænding", 1, status="cancelled")
CONCERT = event("Koncert", 2, description="<p>Billetter: ring 12 34 56 78 eller +45 2030 4050.</p>")
LIFT = notice("Samkørsel til byen", "<p>Ring 40 50 60 70</p>")
ROADWORKS = notice("Vejarbejde på Skolevej", "<p>Spærret i uge 49.</p>")


@pytest.fixture
async def client(feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any) -> Any:
    """An aggregator over Østerby and Vesterby, refreshed once."""
    a = feed_server.set("/osterby.atom", feed("Østerby", [CANCELLED, CONCERT, LIFT]))
    b = feed_server.set("/vesterby.atom", feed("Vesterby", [ROADWORKS]))
    config = config_for(tmp_path, [Source(a, "Østerby"), Source(b, "Vesterby")])
    app_client = await start_aggregator(aiohttp_client, config)
    await refresher_of(app_client).refresh_all()
    return app_client


async def text(client: Any, path: str, **headers: str) -> str:
    response = await client.get(path, headers=headers)
    body = await response.text()
    assert response.status == 200, body[:1000]
    return str(body)


def path_of(item: Event) -> str:
    return f"/events/{item.id.removeprefix('urn:uuid:')}"


async def test_a_cancelled_event_offers_no_add_to_calendar(client: Any) -> None:
    cancelled = await text(client, path_of(CANCELLED))
    assert "Aflyst" in cancelled or "aflyst" in cancelled
    assert "Tilføj til min kalender" not in cancelled
    assert f'href="{path_of(CANCELLED)}.ics"' not in cancelled
    assert "Tilføj til min kalender" in await text(client, path_of(CONCERT))


async def test_the_noticeboard_filters_by_village(client: Any) -> None:
    board = lxml_html.fromstring(await text(client, "/noticeboard"))
    nav = board.xpath("//nav[@class='filter-links']//a")
    links = {a.text_content(): a.get("href") for a in nav}
    assert links["Vesterby"] == "/noticeboard?village=vesterby"
    titles = board.xpath("//li[@class='notice']/h3/text()")
    assert sorted(titles) == ["Samkørsel til byen", "Vejarbejde på Skolevej"]
    only = lxml_html.fromstring(await text(client, "/noticeboard?village=vesterby"))
    assert only.xpath("//li[@class='notice']/h3/text()") == ["Vejarbejde på Skolevej"]
    assert "Vesterby" in only.xpath("string(//p[@class='active-filter'])")


async def test_phone_numbers_are_tel_links(client: Any) -> None:
    page = lxml_html.fromstring(await text(client, path_of(CONCERT)))
    tel = {a.text_content(): a.get("href") for a in page.xpath("//a[starts-with(@href, 'tel:')]")}
    assert tel == {"12 34 56 78": "tel:+4512345678", "+45 2030 4050": "tel:+4520304050"}
    board = lxml_html.fromstring(await text(client, "/noticeboard"))
    lift = board.xpath("//li[@class='notice']//a[@href='tel:+4540506070']/text()")
    assert lift == ["40 50 60 70"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Ring 12345678.", 'Ring <a href="tel:+4512345678">12345678</a>.'),
        ("den 05-12-2026 kl. 19.00", "den 05-12-2026 kl. 19.00"),
        ("CVR 123456789", "CVR 123456789"),
        (
            '<a href="https://x.dk/12345678">1234 5678</a>',
            '<a href="https://x.dk/12345678">1234 5678</a>',
        ),
        ('<img alt="12345678">', '<img alt="12345678">'),
        ("0045 22334455", '<a href="tel:+4522334455">0045 22334455</a>'),
        ("Sæsonen 2026 2027 starter", "Sæsonen 2026 2027 starter"),
        (
            "Ring 2026 2027 eller 20262027",
            'Ring 2026 2027 eller <a href="tel:+4520262027">20262027</a>',
        ),
    ],
)
def test_tel_links_leave_dates_tags_and_links_alone(given: str, expected: str) -> None:
    assert str(tel_links(given)) == expected


async def test_the_configured_language_wins_over_the_phones(client: Any) -> None:
    """A phone set to English gets the Danish cluster; ?lang=en and the cookie still choose."""
    english_phone = await text(client, "/", **{"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="da">' in english_phone
    assert '<html lang="en">' in await text(client, "/?lang=en")
    await client.get("/lang/en?next=/")
    assert '<html lang="en">' in await text(client, "/", **{"Accept-Language": "da"})


async def test_an_english_cluster_speaks_english(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    config = config_for(tmp_path, [], language="en")
    client = await start_aggregator(aiohttp_client, config)
    assert '<html lang="en">' in await text(client, "/", **{"Accept-Language": "da"})


def test_the_language_setting_is_checked(tmp_path: Path) -> None:
    raw = {"name": "Syd", "url": "https://syd.example", "language": "en"}
    assert from_mapping(tmp_path, raw).language == "en"
    assert from_mapping(tmp_path, raw | {"language": ""}).language == "da"
    with pytest.raises(ConfigError, match="language"):
        from_mapping(tmp_path, raw | {"language": "fr"})
