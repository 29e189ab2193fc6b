"""The volunteers' rough edges found in use (issue 16), each on the real node app."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from clock_support import local_today, utc_now
from lxml import html as lxml_html
from node_support import NodeDir, auth, make_node
from test_node_pages import SOON, ClientFactory, csrf, event_form, hidden_fields, login

from klynge.i18n import date_short, time_short
from klynge.model import zone
from node.app import create_app
from node.keys import PINGER, STORE
from node.ping import PingStatus

Client = TestClient[Any, Any]
PAST = local_today() - timedelta(days=3)


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    return make_node(tmp_path)


@pytest.fixture
async def client(node_dir: NodeDir, aiohttp_client: ClientFactory) -> Client:
    config = replace(node_dir.config(), public_url="http://osterby.test")
    return await aiohttp_client(create_app(config, housekeeping=False))


def doc(page: str) -> Any:
    return lxml_html.fromstring(page)


async def test_the_api_reports_every_fields_error_at_once(
    client: Client, node_dir: NodeDir
) -> None:
    response = await client.post("/api/events", headers=auth(node_dir.token), json={"title": ""})
    assert response.status == 422
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"title", "start"}, fields
    bad = {"title": "", "start": "i morgen", "url": "ftp://x", "timezone": "Mars/Base"}
    response = await client.post("/api/events", headers=auth(node_dir.token), json=bad)
    assert set((await response.json())["error"]["fields"]) == {"title", "start", "url", "timezone"}
    notice = {"title": "", "expires": "snart"}
    response = await client.post("/api/notices", headers=auth(node_dir.token), json=notice)
    assert set((await response.json())["error"]["fields"]) == {"title", "expires"}


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("www.example.dk", "https://www.example.dk"),
        ("example.dk/julefrokost?x=1", "https://example.dk/julefrokost?x=1"),
        ("http://example.dk", "http://example.dk"),
    ],
)
async def test_a_web_address_without_https_is_completed(
    client: Client, node_dir: NodeDir, typed: str, stored: str
) -> None:
    body = {"title": "Loppemarked", "start": f"{SOON}T10:00", "url": typed}
    response = await client.post("/api/events", headers=auth(node_dir.token), json=body)
    assert response.status == 201, await response.text()
    assert (await response.json())["url"] == stored


async def test_the_form_takes_a_web_address_without_https(client: Client) -> None:
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/events/new")
    form = await (await client.get("/admin/events/new")).text()
    assert doc(form).xpath("//input[@name='url']/@type") == ["text"], "type=url refuses it"
    page = await (await client.post("/admin/events/new", data=event_form(
        token, url="www.osterby-if.dk"))).text()  # fmt: skip
    assert hidden_fields(page)["url"] == "www.osterby-if.dk"
    assert 'href="https://www.osterby-if.dk"' in page


async def test_a_past_event_and_an_expired_notice_are_published_with_a_warning(
    client: Client, node_dir: NodeDir
) -> None:
    past = {"title": "Høstfest", "start": f"{PAST}T18:00"}
    response = await client.post("/api/events", headers=auth(node_dir.token), json=past)
    assert response.status == 201, "warn, never block"
    warnings = (await response.json())["warnings"]
    assert [w["code"] for w in warnings] == ["node.past_event"]
    assert "overstået" in warnings[0]["message"]
    soon = {"title": "Julefest", "start": f"{SOON}T18:00"}
    response = await client.post("/api/events", headers=auth(node_dir.token), json=soon)
    assert "warnings" not in await response.json()
    expired = {"title": "Cykel fundet", "expires": f"{PAST}"}
    response = await client.post("/api/notices", headers=auth(node_dir.token), json=expired)
    assert response.status == 201
    assert [w["code"] for w in (await response.json())["warnings"]] == ["node.expired_notice"]
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/events/new")
    preview = await client.post("/admin/events/new", data=event_form(token, date=str(PAST)))
    page = await preview.text()
    warning = doc(page).xpath("string(//p[@class='warning'])")
    assert "allerede overstået" in warning
    assert 'value="publish"' in page
    fresh = await client.post("/admin/events/new", data=event_form(token))
    assert not doc(await fresh.text()).xpath("//p[@class='warning']")


async def test_a_place_typed_in_the_form_is_offered_next_time(client: Client) -> None:
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/events/new")
    page = await (await client.post("/admin/events/new", data=event_form(token))).text()
    published = await client.post("/admin/events/new", allow_redirects=False,
                                  data={**hidden_fields(page), "action": "publish"})  # fmt: skip
    assert published.status == 303
    form = doc(await (await client.get("/admin/events/new")).text())
    options = form.xpath("//select[@name='place']/option/@value")
    assert "Gadekæret" in options, options
    saved = [p.name for p in client.app[STORE].places()]
    assert saved == ["Gadekæret"]


async def test_the_admin_menu_is_the_same_on_every_admin_page(client: Client) -> None:
    assert await login(client, "anna") == 303
    menus = {}
    for path in ("/admin", "/admin/events/new", "/admin/tokens", "/admin/users",
                 "/admin/places", "/admin/status"):  # fmt: skip
        page = doc(await (await client.get(path)).text())
        menus[path] = page.xpath("//nav[contains(@class, 'site-nav')]//a/@href")
    first = menus["/admin"]
    assert "/admin/status" in first and "/admin/places" in first
    assert all(menu == first for menu in menus.values()), menus


async def test_the_status_page_says_times_in_words(client: Client) -> None:
    assert await login(client, "anna") == 303
    stamp = (utc_now() - timedelta(hours=1)).replace(microsecond=0)
    url = "https://klynge.example.dk/ping"
    client.app[PINGER].status[url] = PingStatus(url, last_ok=stamp.isoformat())
    await client.app[STORE].record_ping({"at": stamp.isoformat(), "url": url, "ok": True})
    page = await (await client.get("/admin/status")).text()
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", re.sub(r'datetime="[^"]*"', "", page))
    local = stamp.astimezone(zone("Europe/Copenhagen"))
    times = doc(page).xpath("//main//time")
    assert [t.get("datetime") for t in times] == [local.isoformat()] * 2
    words = f"{date_short(local, 'da')} {time_short(local)}"
    assert [t.text_content() for t in times] == [words] * 2
