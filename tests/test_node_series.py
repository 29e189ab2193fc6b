"""Single dates of a node's series through the JSON API and the volunteer's forms, and the same
dates on the node's page, in its ICS (icalendar + recurring_ical_events, ical.js) and on the
cluster's page, across the start of summer time (28 March 2027).
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aggregator_support as support
import icalendar
import node_support
import pytest
import recurring_ical_events
from aggregator_support import FeedServer, config_for, refresher_of, start_aggregator
from node_support import NodeDir, auth
from test_aggregator_series import DATES
from test_ical_clients import khal_rows
from test_ical_series import icaljs_reader
from test_node_pages import Client, csrf, event_form, login

from aggregator.config import Source
from klynge.atom.reader import read_feed
from klynge.model import Event
from node.app import create_app

feed_server = support.feed_server  # a fixture
node_dir, client = node_support.node_dir, node_support.client  # fixtures
WINDOW = (datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 5, 1, tzinfo=UTC))
SERIES = {
    "title": "Fodbold for oldboys",
    "start": "2027-03-14T19:00",
    "end": "2027-03-14T21:00",
    "rrule": "FREQ=WEEKLY;COUNT=6",
    "location": {"name": "Stadion"},
}


async def _series(client: Client, node_dir: NodeDir) -> str:
    response = await client.post("/api/events", json=SERIES, headers=auth(node_dir.token))
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def _date(client: Client, node_dir: NodeDir, uid: str, **body: Any) -> Any:
    return await client.post(f"/api/events/{uid}/dates", json=body, headers=auth(node_dir.token))


async def _changed_series(client: Client, node_dir: NodeDir) -> str:
    uid = await _series(client, node_dir)
    skip = await client.patch(
        f"/api/events/{uid}", json={"exdates": ["2027-03-21T19:00"]}, headers=auth(node_dir.token)
    )
    assert skip.status == 200, await skip.text()
    for body in (
        {"action": "move", "original": "2027-03-28T19:00", "start": "2027-03-30T20:00",
         "location": {"name": "Hallen"}},
        {"action": "edit", "original": "2027-04-04T19:00", "title": "Fodbold: påsketurnering"},
        {"action": "cancel", "original": "2027-04-11T19:00+02:00"},
    ):  # fmt: skip
        response = await _date(client, node_dir, uid, **body)
        assert response.status == 200, await response.text()
    return uid


def _from_ics(data: bytes) -> list[tuple[str, str, str]]:
    cal = icalendar.Calendar.from_ical(data)
    return sorted(
        (
            c["DTSTART"].dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            str(c["SUMMARY"]).removeprefix("AFLYST: "),
            str(c["STATUS"]).lower(),
        )
        for c in recurring_ical_events.of(cal).between(*WINDOW)
    )


async def test_api_changes_single_dates(client: Client, node_dir: NodeDir) -> None:
    uid = await _changed_series(client, node_dir)
    event = await (await client.get(f"/api/events/{uid}", headers=auth(node_dir.token))).json()
    assert event["exdates"] == ["2027-03-21T19:00:00+01:00"]
    assert event["changes"] == [
        {"original": "2027-03-28T19:00:00+02:00", "start": "2027-03-30T20:00:00+02:00",
         "location": {"name": "Hallen"}, "sequence": 2},
        {"original": "2027-04-04T19:00:00+02:00", "title": "Fodbold: påsketurnering",
         "sequence": 3},
        {"original": "2027-04-11T19:00:00+02:00", "cancelled": True, "sequence": 4},
    ]  # fmt: skip
    assert event["sequence"] == 4


async def test_api_refusals_name_the_field(client: Client, node_dir: NodeDir) -> None:
    uid = await _series(client, node_dir)
    cases = [
        ({"action": "cancel", "original": "2027-03-15T19:00"}, "original"),
        ({"action": "fly", "original": "2027-03-21T19:00"}, "action"),
        ({"action": "move", "original": "2027-03-21T19:00", "start": "i morgen"}, "start"),
        ({"action": "move", "original": "2027-03-21T19:00"}, "start"),
        ({"action": "end", "original": "2027-03-14T19:00"}, "original"),
        ({"action": "cancel", "original": "2027-03-21T19:00", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        response = await _date(client, node_dir, uid, **body)
        assert response.status == 422, body
        assert field in (await response.json())["error"]["fields"], body
    far = await client.patch(
        f"/api/events/{uid}", json={"changes": [{"original": "2030-01-01T19:00"}]},
        headers=auth(node_dir.token),
    )  # fmt: skip
    assert far.status == 422
    assert (await far.json())["error"]["field_details"]["changes"]["code"] == "series.not_a_date"
    other = await client.post(
        f"/api/events/{uid}/dates", json={"action": "cancel", "original": "2027-03-21T19:00"},
        headers=auth(node_dir.other_token),
    )  # fmt: skip
    assert other.status == 403


async def test_end_the_rest_of_the_series(client: Client, node_dir: NodeDir) -> None:
    uid = await _changed_series(client, node_dir)
    response = await _date(client, node_dir, uid, action="end", original="2027-04-04T19:00")
    event = await response.json()
    assert response.status == 200
    assert event["rrule"] == "FREQ=WEEKLY;UNTIL=20270404T165959Z"
    assert [c["original"] for c in event["changes"]] == ["2027-03-28T19:00:00+02:00"]
    ics = await (await client.get("/calendar.ics")).read()
    assert [start for start, _, _ in _from_ics(ics)] == [
        "2027-03-14T18:00:00Z",
        "2027-03-30T18:00:00Z",
    ]


async def test_node_page_ics_feed_and_cluster_agree(
    client: Client,
    node_dir: NodeDir,
    feed_server: FeedServer,
    tmp_path: Path,
    aiohttp_client: Any,
) -> None:
    uid = await _changed_series(client, node_dir)
    ics = await (await client.get("/calendar.ics")).read()
    assert _from_ics(ics) == DATES
    path = tmp_path / "node.ics"
    path.write_bytes(ics)
    assert [(s, t, st.lower()) for s, _, t, st in icaljs_reader(path, WINDOW)] == DATES
    (tmp_path / "khal").mkdir()
    khal = khal_rows(ics, tmp_path / "khal", "2027-03-01", "2027-05-01")
    assert [(s, t, st.lower()) for s, _, t, st in khal] == DATES
    page = html.unescape(await (await client.get(f"/events/{uid}")).text())
    dates = page[
        page.index('class="series-dates"') : page.index(
            "</section>", page.index('class="series-dates"')
        )
    ]
    assert "<p>5 datoer; den sidste søndag 18. april 2027.</p>" in dates
    assert "30. marts 2027 kl. 20:00" in dates and "Flyttet" in dates and "Hallen" in dates
    assert "Fodbold: påsketurnering" in dates and 'class="cancelled"' in dates
    assert "21. marts" not in dates
    data = await (await client.get("/feed.atom")).read()
    (event,) = [i for i in read_feed(data).items if isinstance(i, Event)]
    assert len(event.changes) == 3 and len(event.exdates) == 1
    url = feed_server.set("/osterby.atom", data)
    cluster = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url)]))
    await refresher_of(cluster).refresh_all()
    found = await (
        await cluster.get("/api/events", params={"from": "2027-03-01", "to": "2027-05-01"})
    ).json()
    got = [
        (datetime.fromisoformat(e["start"]).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
         e["title"], e["status"])
        for e in found["events"]
    ]  # fmt: skip
    assert got == DATES
    cluster_page = await (await cluster.get(f"/events/{uid}")).text()
    assert "Flyttet" in cluster_page and "Fodbold: påsketurnering" in cluster_page


@pytest.fixture
async def web_client(node_dir: NodeDir, aiohttp_client: Any) -> Client:
    """The node over plain http, so the test client sends the session cookie back."""
    config = replace(node_dir.config(), public_url="http://osterby.test")
    return await aiohttp_client(create_app(config, housekeeping=False))  # type: ignore[no-any-return]


async def test_volunteer_forms_change_one_date(web_client: Client, node_dir: NodeDir) -> None:
    client = web_client
    uid = await _series(client, node_dir)
    assert await login(client, "bo") in (302, 303)
    page = await (await client.get(f"/admin/events/{uid}/dates")).text()
    for words in ("Aflys denne dato", "Flyt denne dato", "Ret kun denne dato",
                  "Aflys resten af serien fra denne dato"):  # fmt: skip
        assert words in page
    assert f'href="/admin/events/{uid}/dates"' in await (await client.get("/admin")).text()
    token = await csrf(client, f"/admin/events/{uid}/dates")
    bad = {"csrf_token": token, "original": "2027-03-28T19:00:00+02:00", "start": "i morgen"}
    refused = await client.post(f"/admin/events/{uid}/dates/move", data=bad)
    text = await refused.text()
    assert refused.status == 422
    field = re.search(r'<div class="field has-error"><label for="m\d+-start">.*?</div>', text, re.S)
    assert field is not None and 'value="i morgen"' in field.group(0)
    assert "aria-invalid" in field.group(0) and 'class="error"' in field.group(0)
    moved = {**bad, "start": "2027-03-30T20:00", "location": "Hallen"}
    done = await client.post(f"/admin/events/{uid}/dates/move", data=moved, allow_redirects=False)
    assert done.status == 303, await done.text()
    cancel = {"csrf_token": token, "original": "2027-04-11T19:00:00+02:00"}
    await client.post(f"/admin/events/{uid}/dates/cancel", data=cancel)
    after = await (await client.get(f"/admin/events/{uid}/dates")).text()
    assert "Flyttet" in after and "Aflyst" in after
    english = await (await client.get(f"/admin/events/{uid}/dates?lang=en")).text()
    assert "Cancel this date" in english and "Move this date" in english
    end = {"csrf_token": token, "original": "2027-04-11T19:00:00+02:00"}
    await client.post(f"/admin/events/{uid}/dates/end", data=end)
    event = await (await client.get(f"/api/events/{uid}", headers=auth(node_dir.token))).json()
    assert event["rrule"] == "FREQ=WEEKLY;UNTIL=20270411T165959Z"
    assert [c["original"] for c in event["changes"]] == ["2027-03-28T19:00:00+02:00"]


async def test_preview_of_a_series_shows_its_dates_and_end(web_client: Client) -> None:
    assert await login(web_client, "bo") in (302, 303)
    token = await csrf(web_client, "/admin/events/new")
    # Sundays from 18 October 2026 until 8 November: over the end of summer time.
    form = event_form(token, date="2026-10-18", start_time="19:00", end_time="21:00",
                      repeat_until="2026-11-08")  # fmt: skip
    preview = await web_client.post("/admin/events/new", data=form)
    page = await preview.text()
    assert preview.status == 200
    assert "<p>4 datoer; den sidste søndag 8. november 2026.</p>" in page
    assert (
        "søndag 25. oktober 2026 kl. 19:00" in page and "søndag 1. november 2026 kl. 19:00" in page
    )
