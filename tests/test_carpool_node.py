"""Carpools on a node (issue 14): the public form, the private link, limits, removal, expiry."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import time_machine
from carpool_support import (
    CSRF_RE,
    PHONE,
    Client,
    away_match,
    match_start,
    offer,
    private_link,
    request_seat,
)
from node_support import PASSWORD, NodeDir, auth, make_node

from klynge.atom.reader import read_feed
from klynge.model import Notice
from node.app import create_app
from node.carpool import posts
from node.carpool.limits import OPEN_PER_EVENT
from node.carpool.views import LIMITER
from node.housekeeping import tidy
from node.keys import STORE

ClientFactory = Callable[..., Coroutine[Any, Any, Client]]


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    return make_node(tmp_path)


@pytest.fixture
async def client(node_dir: NodeDir, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    # Plain http so the test client sends the session cookie back; 127.0.0.1 is the proxy, so
    # X-Forwarded-For names the resident's address (as behind the Pi's reverse proxy).
    config = replace(
        node_dir.config(),
        public_url="http://osterby.test",
        trusted_proxies=(ip_network("127.0.0.1/32"),),
    )
    yield await aiohttp_client(create_app(config, housekeeping=False))


def store_text(node_dir: NodeDir) -> str:
    """Return the node's store file and its backup, as text."""
    paths = [node_dir.path / "node.json", node_dir.path / "node.json.bak"]
    return "".join(p.read_text(encoding="utf-8") for p in paths if p.exists())


def from_address(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"192.0.2.{n}"}


async def post(client: Client, uid: str, form: dict[str, str], address: int = 1) -> Any:
    return await client.post(f"/events/{uid}/carpool", data=form, headers=from_address(address))


async def login(client: Client, username: str) -> str:
    """Log in; return a CSRF token of the new session."""
    page = await (await client.get("/login")).text()
    token = CSRF_RE.search(page)
    assert token
    form = {"csrf_token": token.group(1), "username": username, "password": PASSWORD}
    response = await client.post("/login", data=form, allow_redirects=False)
    assert response.status == 303
    page = await (await client.get("/admin/carpools")).text()
    found = CSRF_RE.search(page)
    assert found
    return found.group(1)


async def test_carpooling_is_on_by_default_for_sport_and_away_matches(
    client: Client, node_dir: NodeDir
) -> None:
    sport = await away_match(client, node_dir.token)
    culture = await away_match(client, node_dir.token, title="Koncert", category="culture")
    away = await away_match(client, node_dir.token, category="", title="Udebane: Vesterlund")
    off = await away_match(client, node_dir.token, carpooling=False)
    assert [e["carpooling"] for e in (sport, culture, away, off)] == [True, False, True, False]
    assert (await client.get(f"/events/{culture['id']}/carpool")).status == 404
    refused = await client.get(f"/events/{off['id']}/carpool")
    assert "tager ikke (længere) imod opslag om samkørsel" in await refused.text()


async def test_offer_and_request_show_on_the_event_page_and_in_the_feed(
    client: Client, node_dir: NodeDir
) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    form_page = await (await client.get(f"/events/{uid}/carpool")).text()
    assert "Vises for alle:" in form_page and 'name="website"' in form_page
    posted = await post(client, uid, offer())
    page = await posted.text()
    assert posted.status == 201 and "Gem dette link" in page
    assert posted.headers["Referrer-Policy"] == "no-referrer"
    assert (await post(client, uid, request_seat(), address=2)).status == 201
    event_page = html.unescape(await (await client.get(f"/events/{uid}")).text())
    assert "Tilbyder 3 pladser fra Østerby Kirke kl. 09:15 — ring til Mette" in event_page
    assert '<a href="tel:+4520123456">20 12 34 56</a>' in event_page
    assert "Søger 1 plads fra Nørrevang — skriv til Jens" in event_page
    assert event_page.index("Tilbyder 3") < event_page.index("Søger 1")
    parsed = read_feed(await (await client.get("/feed.atom")).read())
    pools = [i for i in parsed.items if isinstance(i, Notice) and i.carpool is not None]
    assert {
        (n.carpool.direction, n.carpool.seats, n.carpool.origin) for n in pools if n.carpool
    } == {
        ("offer", 3, "Østerby Kirke"),
        ("request", 1, "Nørrevang"),
    }
    assert {n.related for n in pools} == {f"urn:uuid:{uid}"}
    assert {n.organizer for n in pools} == {"Østerby IF"}  # the event's association answers
    village = await (await client.get("/")).text()
    assert "Tilbyder 3 pladser" not in village  # on the event's page, not among the notices


async def test_the_private_link_changes_and_withdraws_and_only_its_hash_is_stored(
    client: Client, node_dir: NodeDir
) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    link = private_link(await (await post(client, uid, offer())).text())
    secret = link.rsplit("/", 1)[1]
    assert secret not in store_text(node_dir)
    assert posts.secret_hash(secret) in store_text(node_dir)
    wrong = link[: -len(secret)] + ("A" if secret[0] != "A" else "B") + secret[1:]
    assert (await client.get(wrong)).status == 404
    assert (await client.post(wrong, data={"action": "withdraw"})).status == 404
    changed = await client.post(link, data=offer(seats="2", action="save"))
    assert changed.status == 200 and "Dit opslag er ændret." in await changed.text()
    event_page = html.unescape(await (await client.get(f"/events/{uid}")).text())
    assert "Tilbyder 2 pladser fra Østerby Kirke" in event_page and "Tilbyder 3" not in event_page
    gone = await client.post(link, data={"action": "withdraw"})
    assert gone.status == 200 and "trukket tilbage" in await gone.text()
    assert "Tilbyder 2" not in await (await client.get(f"/events/{uid}")).text()
    parsed = read_feed(await (await client.get("/feed.atom")).read())
    assert not [i for i in parsed.items if isinstance(i, Notice)]
    assert len(parsed.tombstones) == 1 and PHONE not in store_text(node_dir)
    assert (await client.get(link)).status == 404


async def test_thirty_posts_from_one_address_in_a_minute(client: Client, node_dir: NodeDir) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    statuses = []
    for n in range(30):
        if n == 5:
            before = store_text(node_dir)
        response = await post(client, uid, offer(name=f"Mette{n}"))
        statuses.append(response.status)
    assert statuses == [201] * 5 + [429] * 25
    assert "For mange opslag om samkørsel fra din adresse" in await response.text()
    assert store_text(node_dir) == before  # nothing else changed
    assert len(posts.open_posts(client.server.app[STORE], f"urn:uuid:{uid}")) == 5
    assert (await post(client, uid, offer(), address=9)).status == 201  # others still post


async def test_the_limit_per_event_and_the_cap_on_open_posts(
    client: Client, node_dir: NodeDir
) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    limiter = client.server.app[LIMITER]
    limiter.per_address, limiter.per_event = 100, 3
    assert [(await post(client, uid, offer(), address=n)).status for n in range(4)] == [201] * 3 + [
        429
    ]
    limiter.per_address = limiter.per_event = 1000
    for n in range(OPEN_PER_EVENT - 3):
        assert (await post(client, uid, offer(), address=n % 200)).status == 201
    full = await post(client, uid, offer(), address=250)
    assert full.status == 409 and f"har {OPEN_PER_EVENT} åbne opslag" in await full.text()


async def test_the_honeypot_publishes_nothing(client: Client, node_dir: NodeDir) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    before = store_text(node_dir)
    response = await post(client, uid, offer(website="http://spam.example"))
    assert response.status == 400
    assert "blev ikke offentliggjort" in await response.text()
    assert store_text(node_dir) == before
    assert "Mette" not in await (await client.get(f"/events/{uid}")).text()


async def test_bad_fields_are_named_in_words(client: Client, node_dir: NodeDir) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    form = offer(seats="99", phone="123", departure="25:99", name="")
    form["from"] = "<script>alert(1)</script>" * 10
    response = await post(client, uid, form)
    page = html.unescape(await response.text())
    assert response.status == 422
    for words in ("fra 1 til 8", "8 cifre", "Afgangen skal have", "Skriv et fornavn", "højst 80"):
        assert words in page, words
    assert "<script>alert" not in await response.text()


async def test_the_association_removes_a_post_and_another_cannot(
    client: Client, node_dir: NodeDir, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    await post(client, uid, offer())
    notice_id = posts.open_posts(client.server.app[STORE], f"urn:uuid:{uid}")[0].id
    short = notice_id.removeprefix("urn:uuid:")
    # Another association of this village (Østerby Kirke) may not.
    token = await login(client, "carl")
    refused = await client.post(f"/admin/carpools/{short}/remove", data={"csrf_token": token})
    assert refused.status == 403 and "Kun foreningen" in await refused.text()
    assert "Mette" in await (await client.get(f"/events/{uid}")).text()
    # Nor a volunteer of another village: their node's session means nothing here.
    other = make_node(tmp_path / "vesterlund")
    other_client = await aiohttp_client(
        create_app(replace(other.config(), public_url="http://v.test"), housekeeping=False)
    )
    await login(other_client, "bo")
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies(
        other_client.session.cookie_jar.filter_cookies(other_client.make_url("/"))
    )
    stranger = await client.post(
        f"/admin/carpools/{short}/remove", data={"csrf_token": token}, allow_redirects=False
    )
    assert stranger.status in (303, 403)
    assert (await client.delete(f"/api/notices/{short}", headers=auth(other.token))).status == 401
    assert "Mette" in await (await client.get(f"/events/{uid}")).text()
    # The event's own association (bo, Østerby IF) removes it.
    client.session.cookie_jar.clear()
    token = await login(client, "bo")
    listed = await (await client.get("/admin/carpools")).text()
    assert "Mette" in listed and PHONE in listed
    removed = await client.post(
        f"/admin/carpools/{short}/remove", data={"csrf_token": token}, allow_redirects=False
    )
    assert removed.status == 303
    assert "Mette" not in await (await client.get(f"/events/{uid}")).text()
    assert PHONE not in store_text(node_dir)


async def test_after_the_event_the_posts_and_contacts_are_gone(
    client: Client, node_dir: NodeDir
) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    await post(client, uid, offer())
    await post(client, uid, request_seat(phone="30 40 50 60"), address=2)
    assert PHONE in store_text(node_dir)
    store = client.server.app[STORE]
    with time_machine.travel(match_start() + timedelta(hours=2, minutes=1), tick=True):
        assert (await client.get(f"/events/{uid}/carpool")).status == 404
        assert "Mette" not in await (await client.get(f"/events/{uid}")).text()
        await tidy(store)
        feed = await (await client.get("/feed.atom")).read()
    parsed = read_feed(feed)
    assert not [i for i in parsed.items if isinstance(i, Notice)]
    assert len(parsed.tombstones) == 2
    for secret_data in (PHONE, "30 40 50 60", "Mette", "jens@example.dk", "Jens"):
        assert secret_data.encode() not in feed
        assert secret_data not in store_text(node_dir), secret_data
    assert store.table(posts.KEYS) == {}


HOSTILE_BODIES = [
    (b"seats=3&seats=4&direction=offer&direction=request", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00garbage=%ZZ&&==", "application/x-www-form-urlencoded; charset=utf-8"),
    (b"name=Mette", "application/x-www-form-urlencoded; charset=klingon"),
    (
        b'--x\r\nContent-Disposition: form-data; name="seats"\r\n\r\n3\r\n--x--',
        "multipart/form-data; boundary=x",
    ),
    (b'{"seats": 3}', "application/json"),
    (b"from=" + b"%C3%98" * 50_000, "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize(("body", "content_type"), HOSTILE_BODIES)
async def test_hostile_bodies_are_refused_in_words(
    client: Client, node_dir: NodeDir, body: bytes, content_type: str
) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    before = store_text(node_dir)
    response = await client.post(
        f"/events/{uid}/carpool", data=body, headers={"Content-Type": content_type}
    )
    assert response.status in (400, 413, 422), response.status
    page = await response.text()
    assert "Traceback" not in page and ('role="alert"' in page or "<h1" in page)
    assert store_text(node_dir) == before


async def test_the_notice_form_ties_a_notice_to_a_coming_event(
    client: Client, node_dir: NodeDir
) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    concert = await away_match(client, node_dir.other_token, title="Koncert", category="culture")
    token = await login(client, "bo")
    page = await (await client.get("/admin/notices/new")).text()
    options = re.findall(r'<option value="(urn:uuid:[^"]+)"', page)
    assert options == [f"urn:uuid:{uid}", f"urn:uuid:{concert['id']}"]  # ours first
    form = {
        "csrf_token": token,
        "title": "Samkørsel: vi mødes ved kirken",
        "body": "Kl. 9",
        "category": "carpool",
        "expires": "",
        "url": "",
        "related": f"urn:uuid:{uid}",
    }
    preview = await client.post("/admin/notices/new", data=form)
    fields = dict(
        re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', await preview.text())
    )
    assert fields["related"] == f"urn:uuid:{uid}"
    done = await client.post(
        "/admin/notices/new", data={**fields, "action": "publish"}, allow_redirects=False
    )
    assert done.status == 303
    (notice,) = [n for n in client.server.app[STORE].notices() if n.title.startswith("Samkørsel:")]
    assert notice.related == f"urn:uuid:{uid}"
    # The editing form shows the tie selected.
    edit = await (
        await client.get(f"/admin/notices/{notice.id.removeprefix('urn:uuid:')}/edit")
    ).text()
    assert f'<option value="urn:uuid:{uid}" selected>' in edit


async def test_a_moved_event_takes_its_posts_along(client: Client, node_dir: NodeDir) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    await post(client, uid, offer())
    later = match_start() + timedelta(days=1)
    body = {"start": later.strftime("%Y-%m-%dT%H:%M"),
            "end": (later + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")}  # fmt: skip
    moved = await client.patch(f"/api/events/{uid}", json=body, headers=auth(node_dir.token))
    assert moved.status == 200, await moved.text()
    store = client.server.app[STORE]
    with time_machine.travel(match_start() + timedelta(hours=3), tick=True):
        await tidy(store)  # the old end has passed, the new one has not
        (kept,) = posts.open_posts(store, f"urn:uuid:{uid}")
        assert kept.expires == later + timedelta(hours=2)
        assert "ring til Mette" in await (await client.get(f"/events/{uid}")).text()


async def test_changes_through_the_private_link_count_towards_the_limit(
    client: Client, node_dir: NodeDir
) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    link = private_link(await (await post(client, uid, offer())).text())
    statuses = []
    for n in range(6):
        response = await client.post(
            link, data=offer(seats=str(n % 3 + 1), action="save"), headers=from_address(1)
        )
        statuses.append(response.status)
    assert statuses == [200] * 4 + [429] * 2  # 5 in the hour with the post itself
    assert "For mange opslag" in await response.text()


async def test_a_patch_through_the_api_cannot_strip_a_post_of_its_seats_and_contact(
    client: Client, node_dir: NodeDir
) -> None:
    uid = (await away_match(client, node_dir.token))["id"]
    await post(client, uid, offer())
    notice = posts.open_posts(client.server.app[STORE], f"urn:uuid:{uid}")[0]
    short = notice.id.removeprefix("urn:uuid:")
    before = store_text(node_dir)
    # bo's association (Østerby IF) owns the event, and so may remove the post, not rewrite it.
    body = {"title": "Samkørsel", "body": "ændret"}
    headers = {**auth(node_dir.token), "Accept-Language": "en"}
    refused = await client.patch(f"/api/notices/{short}", json=body, headers=headers)
    assert refused.status == 409
    error = (await refused.json())["error"]
    assert error["code"] == "conflict" and "private link" in error["message"]
    assert store_text(node_dir) == before
    kept = client.server.app[STORE].get(notice.id, "notice")
    assert kept is not None and kept.carpool == notice.carpool
