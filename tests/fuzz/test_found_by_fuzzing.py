"""What the fuzz tests found, pinned as plain tests (each failed before its fix).

Run with the rest of the suite; `make fuzz` runs only the generated tests (marker `fuzz`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from clock_support import service_env
from node_support import PASSWORD, NodeDir, auth, make_node

from aggregator import config as aggregator_config
from aggregator.app import create_app as create_aggregator
from aggregator.config import AggregatorConfig
from klynge import feedcli
from klynge.atom.reader import read_feed
from klynge.config import read_toml
from klynge.errors import ConfigError, FeedError
from klynge.ical.reader import read_calendar
from klynge.ical.writer import write_calendar
from node.app import create_app
from node.config import load_config as node_load_config
from node.forms import event_input
from node.keys import STORE

DATA = Path(__file__).parent.parent / "data"
VILLAGE = (DATA / "village.atom").read_text(encoding="utf-8")
DEFAULT_NS = (DATA / "default-ns.atom").read_text(encoding="utf-8")
KLYNGE = [sys.executable, "-m", "klynge.cli", "feed"]
Done = subprocess.CompletedProcess[str]
ClientFactory = Callable[..., Coroutine[Any, Any, TestClient[Any, Any]]]


def declared_as(text: str, encoding: str) -> bytes:
    """Return a golden feed declared as and written in `encoding` (ø as &#248; where needed)."""
    declared = text.replace('encoding="utf-8"', f'encoding="{encoding}"')
    return declared.encode(encoding, errors="xmlcharrefreplace")


def feed_cli(tmp_path: Path, data: bytes, command: str = "check") -> Done:
    path = tmp_path / "feed.atom"
    path.write_bytes(data)
    return subprocess.run(
        [*KLYNGE, command, str(path)], capture_output=True, text=True, timeout=60, env=service_env()
    )


# expat refuses multi-byte encodings with ValueError("multi-byte encodings are not supported"),
# which escaped `feed_xml.scan` as a traceback.
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32", "big5", "euc-kr",
                                      "gb2312", "shift_jis"])  # fmt: skip
def test_feeds_in_multi_byte_encodings_are_read(encoding: str) -> None:
    parsed = read_feed(declared_as(VILLAGE, encoding))
    assert parsed.flavour == "klynge" and parsed.complete
    assert [i.title for i in parsed.items] == [i.title for i in read_feed(VILLAGE.encode()).items]
    assert "Østerby Forsamlingshus" in {i.organizer for i in parsed.items}


@pytest.mark.parametrize("encoding", ["big5", "gb2312"])
def test_feed_check_reads_multi_byte_feeds_without_a_traceback(
    tmp_path: Path, encoding: str
) -> None:
    done = feed_cli(tmp_path, declared_as(VILLAGE, encoding))
    assert done.returncode == 0, done.stderr
    assert "flavour: klynge" in done.stdout and "entries: 3 events, 1 notices" in done.stdout
    assert done.stderr == ""


# A Klynge namespace bound as the default namespace was found by a regex over ASCII bytes,
# so in UTF-16 the events were read as plain entries and dropped.
def test_default_namespace_feed_in_utf16_keeps_its_event() -> None:
    parsed = read_feed(DEFAULT_NS.split("?>", 1)[1].lstrip().encode("utf-16"))
    assert [(i.kind, i.title) for i in parsed.items] == [("event", "Loppemarked")]


# An unknown or malformed encoding name raised LookupError/ValueError out of `scan`; then it
# was left to feedparser's loose parser. Now it is read as UTF-8 (as feedparser does), whole,
# with a warning naming the encoding.
@pytest.mark.parametrize("name", ["x-unknown", "utf-8\x00", "ebcdic"])
def test_unknown_encoding_name_is_read_with_a_warning(tmp_path: Path, name: str) -> None:
    data = VILLAGE.replace('encoding="utf-8"', f'encoding="{name}"').encode()
    parsed = read_feed(data)
    assert parsed.complete and parsed.flavour == "klynge"
    assert [i.title for i in parsed.items] == [i.title for i in read_feed(VILLAGE.encode()).items]
    warning = parsed.problems[0]
    assert warning.message.code == "feed.unknown_encoding" and warning.severity == "warning"
    assert warning.message.params["used"] == "utf-8"
    path = tmp_path / "feed.atom"
    path.write_bytes(data)
    assert feedcli.main(["check", str(path)]) in (0, 1)  # in-process: any exception would show


# feedparser's loose parser raised UnicodeEncodeError on a character reference to a lone
# surrogate, and UnicodeDecodeError on non-UTF-8 bytes in the encoding declaration.
@pytest.mark.parametrize(
    "data",
    [
        b"<feed xmlns='http://www.w3.org/2005/Atom'><title>&#xD800;</title></feed>",
        b'<?xml version="1.0" encoding="\xed\xa0\x80"?><feed/>',
    ],
    ids=["surrogate reference", "non-utf-8 declaration"],
)
def test_feedparser_crashes_are_refused_in_words(data: bytes) -> None:
    # The second is read as windows-1252 (its name is not UTF-8), and then its <feed/> is in no
    # namespace, so no Atom.
    words = "not well-formed XML and no feed could be recovered|in the namespace \\(none\\)"
    with pytest.raises(FeedError, match=words):
        read_feed(data)


# `klynge feed to-ics` put the feed's own link into the calendar's URL line unchecked: a
# newline in it made icalendar fail an assertion (a traceback).
def test_to_ics_skips_a_feed_link_that_is_not_a_url(tmp_path: Path) -> None:
    data = VILLAGE.replace('href="https://osterby.example.dk/"', 'href="https://osterby&#10;x/"')
    done = feed_cli(tmp_path, data.encode(), "to-ics")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("BEGIN:VCALENDAR") and "SUMMARY:Julefrokost" in done.stdout
    head = done.stdout.split("BEGIN:VEVENT", 1)[0]
    assert "X-WR-CALNAME:Østerby" in head and "URL" not in head


# --- the ICS reader ---------------------------------------------------------------------------


def ics(*lines: str) -> bytes:
    """Return a calendar with one event made of the given extra lines."""
    event = ["BEGIN:VEVENT", "UID:a@x", "SUMMARY:Loppemarked", "DTSTART:20261205T180000Z"]
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", *event, *lines, "END:VEVENT",
                        "END:VCALENDAR", ""]).encode()  # fmt: skip


# icalendar gives a list for a repeated property: two CONTACT lines raised AttributeError.
@pytest.mark.parametrize(
    "lines",
    [("CONTACT:Bo", "CONTACT:Anna"), ("ORGANIZER;CN=Bo:mailto:b@x", "ORGANIZER:mailto:a@x"),
     ("LOCATION:Hallen", "LOCATION:Kirken", "GEO:55.6;12.5", "GEO:55.7;12.6"),
     ("DTSTART:20261206T180000Z",)],
    ids=["contact", "organizer", "location and geo", "dtstart"],
)  # fmt: skip
def test_repeated_single_properties_use_the_first(lines: tuple[str, ...]) -> None:
    events, problems = read_calendar(ics(*lines))
    assert [event.title for event in events] == ["Loppemarked"], problems
    event = events[0]
    assert event.organizer in ("", "Bo")
    assert event.place is None or event.place.name in ("", "Hallen")


# icalendar raised TypeError (not ValueError) for a CATEGORIES value typed as a date.
def test_unparseable_property_type_is_refused_in_words() -> None:
    with pytest.raises(FeedError, match="not an iCalendar file"):
        read_calendar(ics("CATEGORIES;VALUE=DATE:COUNT=;;"))


# --- the node's API and forms, the aggregator's /ping -----------------------------------------


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    return make_node(tmp_path)


# json.loads turns "\ud800" into a lone surrogate, which the store could not write: a 500.
async def test_api_refuses_an_escaped_lone_surrogate(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(create_app(node_dir.config(), housekeeping=False))
    body = b'{"title": "Jul \\ud800", "start": "2026-12-24T18:00"}'
    headers = {**auth(node_dir.token), "Content-Type": "application/json", "Accept-Language": "en"}
    response = await client.post("/api/events", data=body, headers=headers)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "bad_request" and "lone surrogate" in error["message"]
    assert client.server.app[STORE].items() == []


# aiohttp's request.post() raised UnicodeDecodeError/LookupError for a form body that is not in
# the charset it names: a 500 from /ping, /login and every admin form.
@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"hub.mode=publish&hub.url=\x80", "application/x-www-form-urlencoded"),
     (b"hub.mode=publish", "application/x-www-form-urlencoded; charset=x-unknown")],
    ids=["not utf-8", "unknown charset"],
)  # fmt: skip
async def test_unreadable_form_bodies_are_400(
    node_dir: NodeDir, tmp_path: Path, aiohttp_client: ClientFactory, body: bytes, content_type: str
) -> None:
    data = tmp_path / "agg"
    data.mkdir()
    config = AggregatorConfig(data_dir=data, name="Klynge Syd", url="http://syd.example")
    aggregator = await aiohttp_client(create_aggregator(config, periodic=False))
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    ping = await aggregator.post("/ping", data=body, headers=headers)
    assert ping.status == 400
    assert "som en formular (UTF-8)" in (await ping.json())["error"]["message"]  # Danish first
    node = await aiohttp_client(create_app(node_dir.config(), housekeeping=False))
    login = await node.post("/login?lang=en", data=body, headers=headers)  # pages: ?lang=
    assert login.status == 400
    assert "The form could not be read" in (await login.json())["error"]["message"]


# The last day 9999-12-31 has no exclusive end day after it: OverflowError, a 500 from the form.
async def test_event_form_ending_on_the_last_day_of_9999_is_422(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    config = replace(node_dir.config(), public_url="http://osterby.test")
    client = await aiohttp_client(create_app(config, housekeeping=False))
    token = await csrf(client, "/login")
    form = {"csrf_token": token, "username": "bo", "password": PASSWORD}
    assert (await client.post("/login", data=form, allow_redirects=False)).status == 303
    token = await csrf(client, "/admin/events/new")
    form = {"csrf_token": token, "title": "Jul", "date": "2026-12-24", "end_date": "9999-12-31"}
    response = await client.post("/admin/events/new?lang=en", data=form)
    assert response.status == 422
    assert "Give a year from 1900 to 2200." in await response.text()


# West of UTC the local end of 9999-12-31 is in year 10000: OverflowError building UNTIL.
def test_repeat_until_the_last_day_of_9999_west_of_utc_is_an_unreadable_rule() -> None:
    form = {"title": "Jul", "date": "2026-12-24", "start_time": "18:00"}
    form["repeat_until"] = "9999-12-31"
    assert event_input(form, "America/Nuuk")["rrule"] == "FREQ=WEEKLY;UNTIL=invalid"


async def csrf(client: TestClient[Any, Any], path: str) -> str:
    page = await (await client.get(path)).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, path
    return match.group(1)


# --- settings files ---------------------------------------------------------------------------


# A huge or infinite number overflowed timedelta()/int() in aggregator.config: OverflowError.
@pytest.mark.parametrize(
    "line", ["poll_minutes = 1e308", "poll_minutes = inf", "[limits]\nmax_compressed = inf",
             "[limits]\nmax_backoff_hours = 1e300", "[limits]\njitter = nan"],
)  # fmt: skip
def test_aggregator_refuses_numbers_out_of_range(tmp_path: Path, line: str) -> None:
    path = tmp_path / "aggregator.toml"
    path.write_text(f'name = "Syd"\nurl = "https://syd.example"\n{line}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a number from 0 to 1,000,000,000"):
        aggregator_config.load_config(tmp_path, env={})


# tomllib recurses once per nested array: a deep one raised RecursionError out of read_toml.
def test_deeply_nested_toml_is_refused_in_words(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("a = " + "[" * 10_000, encoding="utf-8")
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_toml(path, "klynge node init DIR")


# icalendar left the calendar's NAME, X-WR-CALNAME and DESCRIPTION raw: an event titled with a
# newline (the API accepts one) made its .ics page fail an icalendar assertion, a 500.
def test_calendar_name_and_description_with_newlines_are_escaped() -> None:
    text = write_calendar([], name="Jul\nfest", description="a\r\nb").decode()
    assert "\r\nNAME:Jul\\nfest\r\n" in text and "\r\nX-WR-CALNAME:Jul\\nfest\r\n" in text
    assert "\r\nX-WR-CALDESC:a\\nb\r\n" in text


async def test_event_titled_with_a_newline_has_an_ics_page(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(create_app(node_dir.config(), housekeeping=False))
    event = {"title": "Jul\nfest", "start": "2026-12-24T18:00"}
    created = await client.post("/api/events", json=event, headers=auth(node_dir.token))
    assert created.status == 201
    ics = await client.get(f"/events/{(await created.json())['id']}.ics")
    assert ics.status == 200 and "SUMMARY:Jul fest" in await ics.text()  # one line


# The model let a title of only U+FFFE through; the feed writer drops what XML cannot carry, so
# the title was empty there and feedgen failed: GET /feed.atom was a 500 for the whole village.
async def test_title_of_only_xml_noncharacters_is_refused_and_the_feed_stays_up(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(create_app(node_dir.config(), housekeeping=False))
    headers = {**auth(node_dir.token), "Accept-Language": "en"}
    refused = await client.post("/api/notices", json={"title": "\ufffe"}, headers=headers)
    assert refused.status == 422
    assert (await refused.json())["error"]["fields"]["title"] == "Give a title."
    kept = await client.post("/api/notices", json={"title": "Kat\uffff væk"}, headers=headers)
    assert kept.status == 201 and (await kept.json())["title"] == "Kat væk"
    feed = await client.get("/feed.atom")
    assert feed.status == 200 and "Kat væk" in await feed.text()


# A feed's start of 9999-12-31T23:59:59+00:00 raised OverflowError out of read_feed (fuzzing
# the golden feeds): turned into Copenhagen time it lies past year 9999.
@pytest.mark.parametrize(
    "start", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59"]
)
def test_a_start_at_the_end_of_time_is_refused_in_words(start: str) -> None:
    first = "<klynge:start>2026-12-05T18:00:00+01:00</klynge:start>"
    assert first in VILLAGE
    parsed = read_feed(VILLAGE.replace(first, f"<klynge:start>{start}</klynge:start>").encode())
    whole = read_feed(VILLAGE.encode())
    assert [i.id for i in parsed.items] == [i.id for i in whole.items][1:]
    words = [p.message.english() for p in parsed.problems if p.field == "start"]
    assert words == ["Give a year from 1900 to 2200."]


# `aggregators = 0` in node.toml raised TypeError (tuple(0)) out of load_config.
@pytest.mark.parametrize("value", ["0", "true", "{a = 1}", "1979-05-27"])
def test_node_aggregators_that_are_no_list_are_refused_in_words(tmp_path: Path, value: str) -> None:
    (tmp_path / "node.toml").write_text(
        f'name = "Østerby"\nurl = "https://osterby.example.dk"\nsecret_key = "{"x" * 32}"\n'
        f"aggregators = {value}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="aggregators must be a list of http"):
        node_load_config(tmp_path, env={})


# The model accepted an UNTIL it could not read (its bounded checks skip it), and the pages'
# expansion then raised: FREQ=WEEKLY;UNTIL=invalid (the form's own "unreadable" marker for a
# bad repeat end) made the village page a 500 for everyone.
@pytest.mark.parametrize("rule", ["FREQ=WEEKLY;UNTIL=invalid", "FREQ=WEEKLY;UNTIL=20270101xyz",
                                  "FREQ=DAILY;UNTIL="])  # fmt: skip
async def test_rrule_with_an_unreadable_until_is_refused(
    node_dir: NodeDir, aiohttp_client: ClientFactory, rule: str
) -> None:
    client = await aiohttp_client(create_app(node_dir.config(), housekeeping=False))
    event = {"title": "Strik", "start": "2026-12-24T18:00", "rrule": rule}
    response = await client.post("/api/events", json=event, headers=auth(node_dir.token))
    assert response.status == 422, await response.text()
    assert "rrule" in (await response.json())["error"]["fields"]
    assert (await client.get("/")).status == 200
