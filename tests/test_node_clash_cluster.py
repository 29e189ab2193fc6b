"""Clash warnings end to end: three real villages and an outsider, one real aggregator.

Østerby plans on the Saturday of Vesterby's flea market: its API answer, its preview page and
the form's JSON endpoint name the flea market; the event itself, a cancelled event, an event
the next day and an event of another cluster never do. Norreby's tentative reservation shows
as "Foreløbig" and keeps its id when confirmed. With the aggregator stopped the form still
works and says how old the copy is; the copy survives a restart.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from clash_support import PASSWORD, Cluster, eventually, running_cluster
from clock_support import local_today
from lxml import html as lxml_html

from node.cluster.copy import ClusterCopy
from node.cluster.web import COPY
from node.config import load_config

pytestmark = pytest.mark.slow


def saturday() -> date:
    today = local_today()
    return today + timedelta(days=(5 - today.weekday()) % 7 or 7)


SAT = saturday()


def at(day: date, hhmm: str) -> str:
    return f"{day.isoformat()}T{hhmm}"


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(
        tmp_path, ("Østerby", "Vesterby", "Norreby"), outsiders=("Fjernby",)
    ) as running:
        await seed(running)
        yield running


async def seed(cluster: Cluster) -> None:
    """Vesterby's flea market, a cancelled event, one the next day; Fjernby's, elsewhere."""
    posts = [
        ("Vesterby", {"title": "Loppemarked", "start": at(SAT, "10:00"), "end": at(SAT, "15:00"),
                      "category": "market"}),
        ("Vesterby", {"title": "Aflyst koncert", "start": at(SAT, "11:00"),
                      "end": at(SAT, "12:00"), "status": "cancelled"}),
        ("Vesterby", {"title": "Søndagscafé", "start": at(SAT + timedelta(days=1), "11:00"),
                      "end": at(SAT + timedelta(days=1), "13:00")}),
        ("Fjernby", {"title": "Fjernt marked", "start": at(SAT, "10:00"),
                     "end": at(SAT, "15:00"), "category": "market"}),
    ]  # fmt: skip
    for village, body in posts:
        await cluster.api(village, "POST", "/api/events", body)

    async def arrived() -> bool:
        rows = await cluster.agg_json(f"/api/events?from={SAT}&to={SAT + timedelta(days=2)}")
        return {"Loppemarked", "Aflyst koncert", "Søndagscafé"} <= {
            r["title"] for r in rows["events"]
        }

    await eventually(arrived, limit=15)
    await cluster.refresh_copy("Østerby")


HARVEST = {"title": "Høstfest", "start": at(SAT, "11:00"), "end": at(SAT, "14:00"),
           "category": "market"}  # fmt: skip


async def test_the_api_answer_lists_the_clash_and_no_false_ones(cluster: Cluster) -> None:
    made = await cluster.api("Østerby", "POST", "/api/events", HARVEST)
    assert [(c["village"], c["title"]) for c in made["clashes"]] == [("Vesterby", "Loppemarked")]
    [clash] = made["clashes"]
    assert clash["heading"] == "Samtidig i klyngen:" and clash["same_category"] is True
    assert clash["text"] == "Vesterby — Loppemarked 10–15 (Marked)"
    assert made["cluster_copy"]["stale"] is False and "siden" in made["cluster_copy"]["text"]
    # Published anyway (a warning never blocks), and once the cluster has it, the event is
    # in the copy too, but it never clashes with itself.
    uid = made["id"].removeprefix("urn:uuid:")

    async def in_copy() -> bool:
        await cluster.refresh_copy("Østerby")
        app = cluster.villages["Østerby"].app
        assert app is not None
        return any(e.id == f"urn:uuid:{uid}" for e in app[COPY].events())

    await eventually(in_copy, limit=15)
    changed = await cluster.api("Østerby", "PATCH", f"/api/events/{uid}", {"end": at(SAT, "15:00")})
    assert [c["title"] for c in changed["clashes"]] == ["Loppemarked"]


async def test_an_event_of_another_cluster_never_clashes(cluster: Cluster) -> None:
    app = cluster.villages["Østerby"].app
    assert app is not None
    assert "Fjernt marked" not in {e.title for e in app[COPY].events()}
    made = await cluster.api("Østerby", "POST", "/api/events", HARVEST)
    assert "Fjernby" not in {c["village"] for c in made["clashes"]}


async def logged_in(cluster: Cluster, name: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    village = cluster.villages[name]
    page = await (await session.get(village.url("/login"))).text()
    token = csrf_of(page)
    form = {"csrf_token": token, "username": "bo", "password": PASSWORD}
    async with session.post(village.url("/login"), data=form) as response:
        assert response.status == 200 and "/logout" in await response.text()
    return session


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def clash_items(page: str) -> list[str]:
    tree = lxml_html.fromstring(page)
    return [" ".join(li.text_content().split()) for li in tree.xpath("//*[@id='clash-box']//li")]


FORM = {"title": "Høstfest", "date": SAT.isoformat(), "start_time": "11:00",
        "end_time": "14:00", "category": "market"}  # fmt: skip


async def test_the_preview_and_the_forms_endpoint_warn(cluster: Cluster) -> None:
    node = cluster.villages["Østerby"]
    async with await logged_in(cluster, "Østerby") as session:
        form_page = await (await session.get(node.url("/admin/events/new"))).text()
        assert "Klyngens kalender er hentet for" in form_page
        assert "clash.js" in form_page
        data = FORM | {"csrf_token": csrf_of(form_page), "action": "preview"}
        async with session.post(node.url("/admin/events/new"), data=data) as response:
            page = await response.text()
        assert response.status == 200
        assert clash_items(page) == ["Samtidig i klyngen: Vesterby — Loppemarked 10–15 (Marked)"]
        assert "Offentliggør" in page  # never blocks
        query = {k: v for k, v in FORM.items() if k != "title"}
        async with session.get(node.url("/admin/cluster/clashes"), params=query) as response:
            answer = await response.json()
        assert [c["title"] for c in answer["clashes"]] == ["Loppemarked"]
        next_day = query | {"date": (SAT + timedelta(days=2)).isoformat()}
        async with session.get(node.url("/admin/cluster/clashes"), params=next_day) as response:
            assert (await response.json())["clashes"] == []
        async with session.get(node.url("/admin/cluster/clashes"), params={"date": "x"}) as r:
            assert r.status == 200 and (await r.json())["clashes"] == []


async def test_the_endpoint_needs_a_login(cluster: Cluster) -> None:
    node = cluster.villages["Østerby"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(node.url("/admin/cluster/clashes?date=2026-12-05"), allow_redirects=False) as r,
    ):
        assert r.status == 303 and r.headers["Location"].startswith("/login")


async def test_a_tentative_reservation_warns_others_and_keeps_its_id_when_confirmed(
    cluster: Cluster,
) -> None:
    body = {"title": "Julemarked (reserveret)", "start": str(SAT), "all_day": True,
            "status": "tentative", "category": "market"}  # fmt: skip
    held = await cluster.api("Norreby", "POST", "/api/events", body)
    assert held["status"] == "tentative" and held["sequence"] == 0

    async def on_plan() -> bool:
        status, page = await cluster.agg_text(f"/plan?from={SAT:%Y-%m}")
        return status == 200 and "Julemarked (reserveret)" in page

    await eventually(on_plan, limit=15)
    status, page = await cluster.agg_text(f"/plan?from={SAT:%Y-%m}")
    assert status == 200
    day = lxml_html.fromstring(page).xpath(f"//li[@id='d-{SAT}']")[0]
    assert "Foreløbig: Julemarked (reserveret) (Norreby)" in " ".join(day.text_content().split())
    assert "plan-tentative" in day.get("class")
    await cluster.refresh_copy("Østerby")
    made = await cluster.api("Østerby", "POST", "/api/events", HARVEST)
    tentative = [c for c in made["clashes"] if c["village"] == "Norreby"]
    assert [c["tentative"] for c in tentative] == [True]
    assert tentative[0]["heading"] == "Samme dag i klyngen:"
    assert tentative[0]["text"].endswith("(Marked) · Foreløbig")
    # One click on Norreby's list page: "Bekræft datoen".
    node = cluster.villages["Norreby"]
    uid = held["id"].removeprefix("urn:uuid:")
    async with await logged_in(cluster, "Norreby") as session:
        listing = await (await session.get(node.url("/admin"))).text()
        assert "Bekræft datoen" in listing
        action = node.url(f"/admin/events/{uid}/confirm")
        async with session.post(action, data={"csrf_token": csrf_of(listing)}) as response:
            assert response.status == 200
    confirmed = await cluster.api("Norreby", "GET", f"/api/events/{uid}")
    assert confirmed["id"] == held["id"] and confirmed["status"] == "confirmed"
    assert confirmed["sequence"] == 1


async def test_with_the_aggregator_stopped_the_form_works_and_says_how_old(
    cluster: Cluster,
) -> None:
    await cluster.stop_aggregator()
    node = cluster.villages["Østerby"]
    await cluster.refresh_copy("Østerby")  # fails: connection refused
    async with await logged_in(cluster, "Østerby") as session:
        async with session.get(node.url("/admin/events/new")) as response:
            page = await response.text()
        assert response.status == 200
        assert "kan ikke nås lige nu; viser kalenderen, som den var for" in page
        data = FORM | {"csrf_token": csrf_of(page), "action": "preview"}
        async with session.post(node.url("/admin/events/new"), data=data) as response:
            preview = await response.text()
        assert clash_items(preview) == ["Samtidig i klyngen: Vesterby — Loppemarked 10–15 (Marked)"]
    made = await cluster.api("Østerby", "POST", "/api/events", HARVEST)
    assert made["cluster_copy"]["stale"] is True and made["clashes"]


async def test_the_copy_survives_a_restart(cluster: Cluster) -> None:
    node = cluster.villages["Østerby"]
    assert (node.data_dir / "cluster.json").exists()
    again = ClusterCopy(load_config(node.data_dir, env={}))
    titles = {e.title for e in again.events()}
    assert {"Loppemarked", "Søndagscafé"} <= titles and "Fjernt marked" not in titles
    assert again.fetched() is not None
    await again.close()


async def test_a_damaged_copy_file_is_ignored(tmp_path: Path, cluster: Cluster) -> None:
    node = cluster.villages["Østerby"]
    (node.data_dir / "cluster.json").write_text('{"aggregators": [1, 2', encoding="utf-8")
    again = ClusterCopy(load_config(node.data_dir, env={}))
    assert again.events() == [] and again.fetched() is None
    await again.close()


async def test_a_second_fetch_is_conditional(cluster: Cluster) -> None:
    app = cluster.villages["Vesterby"].app
    assert app is not None
    copy = app[COPY]
    await copy.refresh()
    [part] = copy.parts.values()
    assert part.etag, "the aggregator's /api/events gave no ETag"
    before = len(part.events)
    await copy.refresh()
    assert len(part.events) == before and part.error is None


def _pairs(answer: dict[str, Any]) -> set[tuple[str, str]]:
    return {tuple(sorted(e["title"] for e in p["events"])) for p in answer["clashes"]}  # type: ignore[misc]


async def test_api_clashes_lists_pairs_across_villages(cluster: Cluster) -> None:
    await cluster.api("Østerby", "POST", "/api/events", HARVEST)

    async def listed() -> bool:
        answer = await cluster.agg_json(f"/api/clashes?from={SAT}&to={SAT}")
        return ("Høstfest", "Loppemarked") in _pairs(answer)

    await eventually(listed, limit=15)
    answer = await cluster.agg_json(f"/api/clashes?from={SAT}&to={SAT + timedelta(days=1)}")
    assert _pairs(answer) == {("Høstfest", "Loppemarked")}  # no cancelled, no next day
    [pair] = answer["clashes"]
    assert pair["kind"] == "overlap" and pair["same_category"] is True
    status, page = await cluster.agg_text(f"/plan?from={SAT:%Y-%m}")
    assert status == 200
    day = lxml_html.fromstring(page).xpath(f"//li[@id='d-{SAT}']")[0]
    assert "plan-clash" in day.get("class")
    assert "Samme kategori: Marked" in " ".join(day.text_content().split())


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("from=someday", "Skriv datoen som"),
        ("from=2026-12-10&to=2026-12-01", "Til-datoen er før fra-datoen."),
        ("from=2026-01-01&to=2027-06-01", "højst 366 dage"),
        ("from=0001-01-01&to=0001-01-02", "Skriv datoen som"),
    ],
)
async def test_api_clashes_refuses_bad_ranges(cluster: Cluster, query: str, words: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{cluster.aggregator}/api/clashes?{query}", headers={"Accept-Language": "da"}
        ) as r,
    ):
        assert r.status == 400
        assert words in (await r.text())


def picker_labels(page: str) -> dict[str, str]:
    tree = lxml_html.fromstring(page)
    return {
        o.get("value"): o.text_content() for o in tree.xpath("//select[@name='related']//option")
    }


async def test_the_notice_forms_picker_offers_the_clusters_events(cluster: Cluster) -> None:
    """A carpool notice on Østerby can be tied to Vesterby's flea market (issue 14 item 5)."""
    node = cluster.villages["Østerby"]
    async with await logged_in(cluster, "Østerby") as session:
        page = await (await session.get(node.url("/admin/notices/new"))).text()
    labels = list(picker_labels(page).values())
    assert any("Loppemarked (Vesterby)" in label for label in labels), labels
    assert any("Søndagscafé (Vesterby)" in label for label in labels), labels
    assert not any("Aflyst koncert" in label for label in labels)  # cancelled: nothing to tie
    assert not any("Fjernt marked" in label for label in labels)  # another cluster
