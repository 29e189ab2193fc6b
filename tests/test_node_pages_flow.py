"""The volunteer's way through the node's pages on the real server, without JavaScript:
form -> preview -> publish -> confirmation; "Change" back to the form; errors kept next to
their fields; delete -> undo; and the public pages residents see (status words, dates,
subscribe links, no foreign hosts, light pages)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from babel.messages.pofile import read_po
from clock_support import utc_now
from lxml import html as lxml_html
from node_support import PASSWORD, NodeDir, auth, make_node
from test_node_pages import SOON, ClientFactory, csrf, event_form, hidden_fields, login

from aggregator.reader.merge import Content, apply_fetch, bind, merge_entries
from klynge.atom.reader import read_feed
from klynge.i18n import date_long, package_msgids
from klynge.model import Event, FeedSource
from node.app import create_app
from node.keys import STORE
from node.undo import UNDO

Client = TestClient[Any, Any]
CONFIRMED = "Gemt. Det står nu på landsbyens side og i klyngens kalender."
PREVIEW_HEADING = "Sådan kommer det til at se ud"


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    return make_node(tmp_path)


@pytest.fixture
async def client(node_dir: NodeDir, aiohttp_client: ClientFactory) -> Client:
    config = replace(node_dir.config(), public_url="http://osterby.test")
    return await aiohttp_client(create_app(config, housekeeping=False))


async def as_bo(client: Client) -> str:
    """Log in as bo (Østerby IF) and return a CSRF token for the forms."""
    assert await login(client, "bo") == 303
    return await csrf(client, "/admin/events/new")


def doc(page: str) -> Any:
    return lxml_html.fromstring(page)


def text_of(page: str, xpath: str) -> str:
    found = doc(page).xpath(xpath)
    assert found, xpath
    return " ".join(" ".join(e.text_content().split()) for e in found)


async def preview(client: Client, path: str, form: dict[str, str]) -> str:
    response = await client.post(path, data=form)
    page = await response.text()
    assert response.status == 200, page
    return page


async def press(client: Client, path: str, page: str, action: str) -> Any:
    """Press a button of the preview page: its hidden fields plus the button's action."""
    return await client.post(path, data={**hidden_fields(page), "action": action},
                             allow_redirects=False)  # fmt: skip


async def test_preview_then_publish_stores_exactly_once(client: Client) -> None:
    token = await as_bo(client)
    page = await preview(client, "/admin/events/new", event_form(token))
    assert PREVIEW_HEADING in page and client.server.app[STORE].items() == []
    shown = text_of(page, "//div[@class='preview']")
    assert "Juletræstænding" in shown and "Gadekæret" in shown and "Vi tænder træet." in shown
    assert f"{date_long(SOON, 'da', year=True)} kl. 16:00–18:00" in shown
    buttons = doc(page).xpath("//main//form//button")
    assert [(b.get("value"), b.text_content()) for b in buttons] == [
        ("publish", "Offentliggør"), ("edit", "Ret")]  # fmt: skip

    first = await press(client, "/admin/events/new", page, "publish")
    again = await press(client, "/admin/events/new", page, "publish")  # pressed twice
    [event] = client.server.app[STORE].events()
    uid = event.id.removeprefix("urn:uuid:")
    assert first.status == again.status == 303
    assert first.headers["Location"] == again.headers["Location"]
    assert first.headers["Location"] == f"/admin?done=created&entry={uid}"
    assert event.title == "Juletræstænding" and event.place is not None
    assert event.description == "<p>Vi tænder træet.</p>"

    listing = await (await client.get(first.headers["Location"])).text()
    status = doc(listing).xpath("//*[@role='status']")
    assert len(status) == 1 and CONFIRMED in status[0].text_content()
    assert status[0].xpath(".//a/@href") == [f"/events/{uid}"]
    assert (await client.get(f"/events/{uid}")).status == 200


async def test_change_from_the_preview_keeps_what_was_typed(client: Client) -> None:
    token = await as_bo(client)
    typed = event_form(token, description="Første afsnit.\nNy linje.\n\nAndet afsnit.",
                       repeat_until=str(SOON + timedelta(weeks=3)))  # fmt: skip
    page = await preview(client, "/admin/events/new", typed)
    response = await press(client, "/admin/events/new", page, "edit")
    form = await response.text()
    assert response.status == 200 and client.server.app[STORE].items() == []
    tree = doc(form)
    for name in ("title", "date", "start_time", "end_time", "place_name", "repeat_until"):
        assert tree.xpath(f"//input[@name='{name}']/@value") == [typed[name]], name
    assert tree.xpath("//textarea[@name='description']")[0].text == typed["description"]
    assert tree.xpath("//select[@name='place']/option[@selected]/@value") == ["__new__"]
    assert tree.xpath("//select[@name='category']/option[@selected]/text()") == ["Fællesskab"]
    # The draft id travels along, so publishing after changes still stores once.
    assert tree.xpath("//input[@name='draft']/@value") == [hidden_fields(page)["draft"]]


async def test_plain_text_with_a_less_than_sign_keeps_its_paragraphs_and_edits_back(
    client: Client,
) -> None:
    token = await as_bo(client)
    typed = "Børn < 12 år gratis.\n\nVoksne 50 kr & kaffe."
    page = await preview(client, "/admin/events/new", event_form(token, description=typed))
    assert (await press(client, "/admin/events/new", page, "publish")).status == 303
    [event] = client.server.app[STORE].events()
    uid = event.id.removeprefix("urn:uuid:")
    shown = doc(await (await client.get(f"/events/{uid}")).text())
    paragraphs = shown.xpath("//div[@class='description']/p/text()")
    assert paragraphs == ["Børn < 12 år gratis.", "Voksne 50 kr & kaffe."]
    form = doc(await (await client.get(f"/admin/events/{uid}/edit")).text())
    assert form.xpath("//textarea[@name='description']")[0].text == typed


async def test_error_keeps_typed_values_and_shows_danish_message_at_the_field(
    client: Client,
) -> None:
    token = await as_bo(client)
    form = event_form(token, title="Min <b>fest</b>", end_time="15:00", url="ikke et link")
    response = await client.post("/admin/events/new", data=form)
    page = await response.text()
    assert response.status == 422 and client.server.app[STORE].items() == []
    tree = doc(page)
    assert tree.xpath("//input[@name='title']/@value") == ["Min <b>fest</b>"]
    assert tree.xpath("//input[@name='end_time']/@value") == ["15:00"]
    [end] = tree.xpath("//input[@name='end_time']")
    assert end.get("aria-invalid") == "true"
    assert "f-end_time-error" in end.get("aria-describedby").split()
    message = text_of(page, "//*[@id='f-end_time-error']")
    assert message == "Fejl: Slutningen er før starten."
    summary = tree.xpath("//div[@class='error-summary']//a")
    links = {a.get("href"): a.text_content() for a in summary}
    assert links["#f-end_time"] == "Slutter kl.: Slutningen er før starten."
    assert "#f-url" in links  # every error is listed and links to its input
    assert all(tree.xpath(f"//*[@id='{href[1:]}']") for href in links)
    assert tree.xpath("//title/text()")[0].startswith("Fejl:")


async def test_empty_form_names_each_missing_field(client: Client) -> None:
    token = await as_bo(client)
    response = await client.post("/admin/events/new", data={"csrf_token": token})
    assert response.status == 422
    tree = doc(await response.text())
    invalid = set(tree.xpath("//*[@aria-invalid='true']/@name"))
    assert {"title", "date"} <= invalid
    assert "Skriv en titel." in text_of(await response.text(), "//*[@id='f-title-error']")


async def test_js_free_form_shows_new_place_fields_and_takes_a_typed_place(
    client: Client,
) -> None:
    token = await as_bo(client)
    page = await (await client.get("/admin/events/new")).text()
    tree = doc(page)
    for name in ("place_name", "place_street", "place_postcode", "place_locality"):
        [field] = tree.xpath(f"//input[@name='{name}']")
        assert field.get("hidden") is None and tree.xpath(f"//label[@for='{field.get('id')}']")
    assert tree.xpath("//div[@id='new-place']/@hidden") == []
    # Without JavaScript nobody has to pick "New place…": typing the place is enough.
    form = event_form(token, place="", start_time="", end_time="")
    page = await preview(client, "/admin/events/new", form)
    response = await press(client, "/admin/events/new", page, "publish")
    assert response.status == 303
    [event] = client.server.app[STORE].events()
    assert event.place is not None and event.place.name == "Gadekæret"
    assert event.all_day  # no times given: the whole day, as the hint says


async def test_edit_with_status_preview_and_publish(client: Client) -> None:
    token = await as_bo(client)
    page = await preview(client, "/admin/events/new", event_form(token))
    await press(client, "/admin/events/new", page, "publish")
    [event] = client.server.app[STORE].events()
    uid = event.id.removeprefix("urn:uuid:")
    form_page = await (await client.get(f"/admin/events/{uid}/edit")).text()
    options = doc(form_page).xpath("//select[@name='status']/option")
    assert [(o.get("value"), o.text) for o in options] == [
        ("confirmed", "Som planlagt"), ("cancelled", "Aflyst"), ("postponed", "Udsat"),
        ("tentative", "Foreløbig")]  # fmt: skip
    form = {**hidden_fields(form_page), **event_form(token), "status": "cancelled"}
    page = await preview(client, f"/admin/events/{uid}/edit", form)
    assert doc(page).xpath("//div[@class='preview']//article[contains(@class, 'cancelled')]")
    assert "Aflyst" in text_of(page, "//div[@class='preview']//strong[@class='status']")
    assert client.server.app[STORE].events()[0].status == "confirmed"  # nothing saved yet
    response = await press(client, f"/admin/events/{uid}/edit", page, "publish")
    assert response.headers["Location"] == f"/admin?done=saved&entry={uid}"
    [changed] = client.server.app[STORE].events()
    assert (changed.id, changed.status, changed.sequence) == (event.id, "cancelled", 1)


async def test_notice_preview_publish_and_confirmation(client: Client) -> None:
    token = await as_bo(client)
    form = {"csrf_token": token, "title": "Kat bortløbet", "body": "Grå og venlig.",
            "expires": str(SOON), "category": "lost-found"}  # fmt: skip
    page = await preview(client, "/admin/notices/new", form)
    shown = text_of(page, "//div[@class='preview']")
    assert "Kat bortløbet" in shown and "Tabt og fundet" in shown
    assert date_long(SOON, "da", year=True) in shown  # the last day shown, not the day after
    response = await press(client, "/admin/notices/new", page, "publish")
    listing = await (await client.get(response.headers["Location"])).text()
    assert CONFIRMED in text_of(listing, "//*[@role='status']")
    assert len(client.server.app[STORE].notices()) == 1


async def published_event(client: Client, token: str) -> Event:
    page = await preview(client, "/admin/events/new", event_form(token))
    await press(client, "/admin/events/new", page, "publish")
    [event] = client.server.app[STORE].events()
    return event


async def aggregator_view(client: Client, before: Content) -> Content:
    """Fetch the node's feed as an aggregator does and apply it to what it had before."""
    feed = read_feed(await (await client.get("/feed.atom")).read())
    origin = FeedSource(id=feed.meta.id, title=feed.meta.title, self_url=feed.meta.self_url)
    items, tombs = bind(feed.items, feed.tombstones, origin=origin, trust_source=False)
    return apply_fetch(before, items, tombs, origin=origin, now=utc_now())


async def test_undo_restores_the_same_entry_and_drops_its_tombstone(
    client: Client, node_dir: NodeDir
) -> None:
    token = await as_bo(client)
    event = await published_event(client, token)
    uid = event.id.removeprefix("urn:uuid:")
    aggregator = await aggregator_view(client, Content())
    response = await client.post(f"/admin/events/{uid}/delete", data={"csrf_token": token},
                                 allow_redirects=False)  # fmt: skip
    assert response.headers["Location"] == f"/admin?done=deleted&entry={uid}"
    assert client.server.app[STORE].events() == []
    feed = read_feed(await (await client.get("/feed.atom")).read())
    [tomb] = feed.tombstones
    assert tomb.id == event.id and feed.items == ()
    aggregator = await aggregator_view(client, aggregator)
    assert merge_entries([aggregator]).items == ()  # the aggregator applied the tombstone

    listing = await (await client.get(response.headers["Location"])).text()
    status = doc(listing).xpath("//*[@role='status']")[0]
    assert "Slettet: Juletræstænding." in status.text_content()
    [undo] = status.xpath(".//form")
    assert undo.get("action") == f"/admin/events/{uid}/restore"
    assert undo.xpath(".//button")[0].text_content() == "Fortryd"
    response = await client.post(undo.get("action"), data={"csrf_token": token},
                                 allow_redirects=False)  # fmt: skip
    assert response.headers["Location"] == f"/admin?done=restored&entry={uid}"

    [back] = client.server.app[STORE].events()
    assert back.id == event.id and back.sequence == event.sequence + 1
    assert back.updated > tomb.deleted  # aggregators that buried it take it back
    assert (back.title, back.start, back.place, back.created) == (
        event.title, event.start, event.place, event.created)  # fmt: skip
    assert client.server.app[STORE].tombstones() == []
    feed = read_feed(await (await client.get("/feed.atom")).read())
    assert feed.tombstones == () and [i.id for i in feed.items] == [event.id]
    assert feed.items[0].sequence == event.sequence + 1
    aggregator = await aggregator_view(client, aggregator)
    assert [i.id for i in merge_entries([aggregator]).items] == [event.id]  # and takes it back
    stored = json.loads((node_dir.path / "node.json").read_text())
    assert event.id not in json.dumps(stored.get("tombstones", {}))  # durable too
    done = await (await client.get(response.headers["Location"])).text()
    assert "Fortrudt: Juletræstænding er tilbage" in text_of(done, "//*[@role='status']")
    # A second press finds it back already and changes nothing.
    again = await client.post(undo.get("action"), data={"csrf_token": token},
                              allow_redirects=False)  # fmt: skip
    assert again.status == 303 and client.server.app[STORE].events() == [back]


async def test_undo_only_for_the_association_and_only_for_ten_minutes(client: Client) -> None:
    token = await as_bo(client)
    event = await published_event(client, token)
    uid = event.id.removeprefix("urn:uuid:")
    await client.post(f"/admin/events/{uid}/delete", data={"csrf_token": token})
    assert await login(client, "carl") == 303
    carl_token = await csrf(client, "/admin")
    listing = await (await client.get(f"/admin?done=deleted&entry={uid}")).text()
    assert "Juletræstænding" not in listing  # no title, no undo for another association
    refused = await client.post(f"/admin/events/{uid}/restore", data={"csrf_token": carl_token})
    assert refused.status == 403 and client.server.app[STORE].events() == []

    token = await as_bo(client)
    shelf = client.server.app[UNDO]
    shelf.clock = lambda: utc_now() + timedelta(minutes=11)
    late = await client.post(f"/admin/events/{uid}/restore", data={"csrf_token": token})
    assert late.status == 404 and "for sent" in await late.text()
    assert client.server.app[STORE].events() == []


async def test_public_pages_show_status_words_dates_and_subscribe_links(
    client: Client, node_dir: NodeDir
) -> None:
    bodies = [
        {"title": "Høstmarked", "start": f"{SOON}T10:00", "end": f"{SOON}T14:00"},
        {"title": "Banko", "start": f"{SOON}T19:00", "status": "cancelled"},
        {"title": "Loppemarked", "start": str(SOON + timedelta(days=1)), "all_day": True,
         "status": "postponed", "location": {"name": "Skolen", "street": "Skolevej 2",
                                              "postcode": "8882", "locality": "Østerby"}},
    ]  # fmt: skip
    ids = []
    for body in bodies:
        created = await client.post("/api/events", json=body, headers=auth(node_dir.token))
        ids.append((await created.json())["id"])
    page = await (await client.get("/")).text()
    tree = doc(page)
    headings = [
        " ".join(h.text_content().split()) for h in tree.xpath("//h3[@class='day-heading']")
    ]
    assert any(date_long(SOON, "da") in h for h in headings)
    [banko] = tree.xpath("//li[contains(@class, 'occurrence')][a[text()='Banko']]")
    assert "cancelled" in banko.get("class") and "Aflyst" in banko.text_content()
    [loppe] = tree.xpath("//li[contains(@class, 'occurrence')][a[text()='Loppemarked']]")
    assert "Udsat" in loppe.text_content() and "Hele dagen" in loppe.text_content()
    [marked] = tree.xpath("//li[contains(@class, 'occurrence')][a[text()='Høstmarked']]")
    assert "10:00–14:00" in marked.text_content()
    hrefs = tree.xpath("//section[@class='subscribe']//a/@href")
    assert "webcal://osterby.test/calendar.ics" in hrefs
    assert "http://osterby.test/calendar.ics" in hrefs and "http://osterby.test/feed.atom" in hrefs

    event_page = await (await client.get(f"/events/{ids[2]}")).text()
    tree = doc(event_page)
    assert tree.xpath("//script[@type='application/ld+json']")
    assert "Udsat" in text_of(event_page, "//article//strong[@class='status']")
    assert "openstreetmap.org/search?query=" in " ".join(tree.xpath("//article//a/@href"))
    english = await (await client.get(f"/events/{ids[1]}?lang=en")).text()
    assert "Cancelled" in text_of(english, "//article//strong[@class='status']")
    assert doc(english).xpath("//html/@lang") == ["en"]


async def test_pages_are_light_accessible_and_stay_home(client: Client) -> None:
    token = await as_bo(client)
    await published_event(client, token)
    uid = client.server.app[STORE].events()[0].id.removeprefix("urn:uuid:")
    paths = ["/", f"/events/{uid}", "/admin", "/admin/events/new", "/admin/notices/new"]
    for path in paths:
        page = await (await client.get(path)).text()
        tree = doc(page)
        assert tree.xpath("//html/@lang") == ["da"], path
        assert tree.xpath("//a[@class='skip-link']/@href") == ["#main"], path
        assert (
            tree.xpath("//main[@id='main']") and tree.xpath("//header") and tree.xpath("//footer")
        )
        loaded = tree.xpath("//link[@rel='stylesheet']/@href | //script/@src | //img/@src")
        assert all(u.startswith("/static/") for u in loaded), (path, loaded)
        size = len(page.encode())
        for url in loaded:
            size += len(await (await client.get(url)).read())
        assert size <= 100 * 1024, (path, size)
        for field in tree.xpath("//input[not(@type='hidden')] | //select | //textarea"):
            assert tree.xpath(f"//label[@for='{field.get('id')}']"), (path, field.get("name"))


async def test_login_page_fields_and_messages(client: Client, node_dir: NodeDir) -> None:
    page = await (await client.get("/login")).text()
    tree = doc(page)
    assert tree.xpath("//input[@name='username']/@autocomplete") == ["username"]
    assert tree.xpath("//input[@name='password']/@autocomplete") == ["current-password"]
    assert tree.xpath("//label[@for='f-username']") and tree.xpath("//label[@for='f-password']")
    token = await csrf(client, "/login")
    form = {"csrf_token": token, "username": "bo", "password": "wrong password!"}
    response = await client.post("/login", data=form)
    page = await response.text()
    assert response.status == 401
    assert "Forkert brugernavn eller adgangskode." in text_of(page, "//*[@role='alert']")
    assert doc(page).xpath("//input[@name='username']/@value") == ["bo"]
    assert doc(page).xpath("//input[@name='password']/@aria-describedby") == ["login-error"]
    for _ in range(5):
        response = await client.post("/login", data=form)
    assert response.status == 429 and response.headers["Retry-After"] == "900"
    assert "Vent 15 minutter" in await response.text()
    form["password"] = PASSWORD
    assert (await client.post("/login", data=form, allow_redirects=False)).status == 429


def test_every_node_msgid_has_danish_and_english() -> None:
    def ids(package: str, lang: str) -> set[str]:
        path = Path(__file__).parents[1] / package / "locale" / lang / "LC_MESSAGES/messages.po"
        with path.open("rb") as f:
            return {m.id for m in read_po(f) if m.id and m.string}

    owned = package_msgids("node") - ids("klynge", "da")  # klynge's own words come from klynge
    assert owned <= ids("node", "da"), sorted(owned - ids("node", "da"))
    assert owned <= ids("node", "en"), sorted(owned - ids("node", "en"))


async def test_the_flow_in_english(client: Client) -> None:
    token = await as_bo(client)
    english = {"Cookie": "lang=en"}  # the volunteer chose English (Accept-Language does not)
    form = await (await client.get("/admin/events/new", headers=english)).text()
    assert doc(form).xpath("//label[@for='f-repeat_until']/text()") == ["Repeats every week until"]
    response = await client.post("/admin/events/new", data=event_form(token), headers=english)
    page = await response.text()
    assert "This is how it will look" in page and "kl." not in text_of(page, "//main")
    buttons = doc(page).xpath("//main//form//button/text()")
    assert buttons == ["Publish", "Change"]
    published = await client.post("/admin/events/new", headers=english, allow_redirects=False,
                                  data={**hidden_fields(page), "action": "publish"})  # fmt: skip
    listing = await (await client.get(published.headers["Location"], headers=english)).text()
    saved = "Saved. It is now on the village page and in the cluster's calendar."
    assert saved in text_of(listing, "//*[@role='status']")
