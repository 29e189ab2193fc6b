"""Issue 16's ugeseddel by e-mail, through a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
from aggregator_support import FeedServer, config_for, feed, refresher_of, start_aggregator
from aiosmtpd.controller import Controller
from clock_support import HOSTILE_NOWS, hostile_dates
from hypothesis import given
from hypothesis import strategies as st
from test_aggregator_pages import TZ, World, main_of, make_event, make_notice, page, w

from aggregator.config import Source
from aggregator.keys import MAILER
from aggregator.mail.compose import clean_address
from aggregator.mail.service import Mailer
from aggregator.mail.subscribers import SubscriberStore
from aggregator.mail.tokens import CONFIRM, UNSUBSCRIBE, make_token, read_token
from aggregator.outreach_config import WEEKDAYS, MailSettings
from aggregator.publish.digest import week_ahead
from aggregator.web.mailing import IN_ALL, PER_CLIENT, WINDOW, RateLimit
from klynge.errors import StorageError

feed_server = support.feed_server  # a fixture
__all__ = ["w"]


@dataclass
class Inbox:
    """What the local SMTP server received."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """Return the messages sent to `address`."""
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """Run a real SMTP server on 127.0.0.1 (aiosmtpd, in its own thread)."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def settings(port: int, at: datetime) -> MailSettings:
    """Return mail settings whose weekly hour is the hour of `at` (Copenhagen)."""
    local = at.astimezone(TZ)
    return MailSettings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        security="none",
        from_address="ugeseddel@syd.example",
        send_weekday=WEEKDAYS[local.weekday()],
        send_hour=local.hour,
    )


def week_events(w: World) -> list[Any]:
    """Return the week ahead's events and a notice."""
    monday = week_ahead(w.TODAY)
    return [
        make_event("Fællesspisning i forsamlingshuset", monday, 18),
        make_event("Juletræstænding", monday + timedelta(days=2), 16, status="cancelled"),
        make_event("Strikkeklub", monday + timedelta(days=3), 14),
        make_notice("Hjælpere søges til julemarkedet"),
    ]


@pytest.fixture
async def mail_client(
    w: World, now: datetime, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any,
    smtp: tuple[Inbox, int],
) -> Any:  # fmt: skip
    """An aggregator with an SMTP server, its weekly hour now."""
    url = feed_server.set("/osterby.atom", feed("Østerby", week_events(w)))
    config = config_for(tmp_path, [Source(url, "Østerby")], mail=settings(smtp[1], now))
    client = await start_aggregator(aiohttp_client, config)
    await refresher_of(client).refresh_all()
    return client


def link_in(message: EmailMessage, path: str) -> str:
    """Return the path and query of the link to `path` in a message's text."""
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(
        rf"http://syd\.example({re.escape(path)}\?token=[\w.=-]+)", body.get_content()
    )
    assert found, body.get_content()
    return found.group(1)


async def sign_up(client: Any, inbox: Inbox, address: str) -> None:
    """Sign up and confirm `address` through the pages, as a resident does."""
    response = await client.post("/digest/signup", data={"email": address})
    assert response.status == 200 and "Næsten færdig" in await response.text()
    confirm = link_in(inbox.to(address)[-1], "/digest/confirm")
    assert "Ja, send den" in await (await client.get(confirm)).text()
    done = await client.post(confirm)
    assert done.status == 200 and "får ugesedlen hver uge" in await done.text()


@hostile_dates
async def test_weekly_email_arrives_once_with_one_click_unsubscribe(
    w: World, mail_client: Any, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    await sign_up(mail_client, inbox, "anna@osterby.example")
    confirmation = inbox.messages[0]
    assert confirmation["Subject"] == "Bekræft din ugeseddel fra Klynge Syd"
    mailer: Mailer = mail_client.app[MAILER]
    assert await mailer.tick() == 1
    weekly = inbox.to("anna@osterby.example")[-1]
    assert weekly["Subject"] == "Ugeseddel – Klynge Syd"
    assert re.fullmatch(r"<http://syd\.example/digest/unsubscribe\?token=[\w.=-]+>",
                        weekly["List-Unsubscribe"])  # fmt: skip
    assert weekly["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = weekly.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = weekly.get_body(("html",)).get_content()  # type: ignore[union-attr]
    print("\n" + text)  # the report quotes it (pytest -s)
    assert "Fællesspisning i forsamlingshuset – Østerby" in text
    assert "AFLYST: Juletræstænding" in text and "Hjælpere søges til julemarkedet" in text
    assert max(len(line) for line in text.splitlines() if "://" not in line) <= 72
    assert "<s><a href=" in html and "Juletræstænding" in html
    assert await mailer.tick() == 0, "the same week was sent twice"
    restarted = Mailer(mailer.config, mailer.merged)  # a restart reads what was sent
    assert await restarted.tick() == 0
    off = weekly["List-Unsubscribe"].strip("<>").removeprefix("http://syd.example")
    response = await mail_client.post(
        off, data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert response.status == 200 and "anna@osterby.example" in await response.text()
    stored = json.loads((tmp_path / "agg" / "subscribers.json").read_text())
    assert stored["subscribers"] == {}
    assert "Afmeld" in await (await mail_client.get(off)).text()  # the link still answers


async def test_signup_form_keeps_what_was_typed_and_says_what_is_wrong(
    mail_client: Any, smtp: tuple[Inbox, int]
) -> None:
    html = main_of(await page(mail_client, "/subscribe"))
    assert 'action="/digest/signup"' in html and 'type="email"' in html
    response = await mail_client.post("/digest/signup", data={"email": "anna@osterby"})
    text = await response.text()
    assert response.status == 400
    assert 'value="anna@osterby"' in text and 'aria-invalid="true"' in text
    assert "»anna@osterby« er ikke en e-mailadresse" in text
    empty = await mail_client.post("/digest/signup", data={"email": "  "})
    assert empty.status == 400 and "Skriv den e-mailadresse" in await empty.text()
    assert smtp[0].messages == []


async def test_signups_are_rate_limited(mail_client: Any, smtp: tuple[Inbox, int]) -> None:
    for n in range(5):
        ok = await mail_client.post("/digest/signup", data={"email": f"a{n}@by.example"})
        assert ok.status == 200
    refused = await mail_client.post("/digest/signup", data={"email": "a9@by.example"})
    assert refused.status == 429 and "For mange tilmeldinger" in await refused.text()
    assert 'value="a9@by.example"' in await refused.text()
    assert len(smtp[0].messages) == 5


@pytest.mark.parametrize("at", list(HOSTILE_NOWS.values()), ids=list(HOSTILE_NOWS))
def test_the_signup_limit_per_address_and_in_all_slides_with_the_hour(at: datetime) -> None:
    limit = RateLimit()
    assert all(limit.allow("192.0.2.1", at) for _ in range(PER_CLIENT))
    assert not limit.allow("192.0.2.1", at)
    others = [limit.allow(f"198.51.100.{n}", at + timedelta(minutes=1)) for n in range(IN_ALL)]
    assert others.count(True) == IN_ALL - PER_CLIENT  # the hour's sign-ups in all are capped
    assert not limit.allow("203.0.113.9", at + timedelta(minutes=2))
    later = at + WINDOW + timedelta(seconds=1)  # the first five have left the window
    assert limit.allow("192.0.2.1", later) and limit.allow("203.0.113.9", later)


async def test_a_bad_or_forged_link_is_refused_in_words(
    mail_client: Any, smtp: tuple[Inbox, int]
) -> None:
    forged = make_token(b"not the secret", UNSUBSCRIBE, "anna@osterby.example")
    response = await mail_client.post(f"/digest/unsubscribe?token={forged}")
    assert response.status == 400 and "Linket er ikke gyldigt" in await response.text()
    assert (await mail_client.get("/digest/confirm?token=x.y")).status == 400


async def test_smtp_down_is_said_next_to_the_field(
    w: World, now: datetime, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    url = feed_server.set("/osterby.atom", feed("Østerby", week_events(w)))
    config = config_for(tmp_path, [Source(url)], mail=settings(free_port(), now))
    client = await start_aggregator(aiohttp_client, config)
    response = await client.post("/digest/signup", data={"email": "anna@osterby.example"})
    text = await response.text()
    assert response.status == 503 and "kunne ikke sendes" in text
    assert 'value="anna@osterby.example"' in text


async def test_without_smtp_settings_the_email_does_not_show(
    w: World, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    url = feed_server.set("/osterby.atom", feed("Østerby", week_events(w)))
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url)]))
    html = main_of(await page(client, "/subscribe"))
    assert "/digest/signup" not in html and 'type="email"' not in html
    assert 'href="/digest.txt"' in html  # the ugeseddel itself is there
    assert "/digest/signup" not in await page(client, "/digest")
    for path in ("/digest/signup", "/digest/confirm", "/digest/unsubscribe"):
        assert (await client.get(path)).status == 404
        assert (await client.post(path)).status in (404, 405)
    assert MAILER not in client.app


@hostile_dates
async def test_ugeseddel_as_text_html_and_pdf(
    w: World, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    import io

    from pypdf import PdfReader

    url = feed_server.set("/osterby.atom", feed("Østerby", week_events(w)))
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url, "Østerby")]))
    await refresher_of(client).refresh_all()
    monday = week_ahead(w.TODAY)
    text = await page(client, "/digest.txt")
    assert text.startswith("Ugeseddel – Klynge Syd\nUge ")
    assert "Fællesspisning i forsamlingshuset" in text and "AFLYST: Juletræstænding" in text
    assert "http://syd.example/calendar" in text
    english = await page(client, "/digest.txt", lang="en")
    assert "The week ahead – Klynge Syd" in english and "CANCELLED: Juletræstænding" in english
    html = main_of(await page(client, "/digest"))
    assert "Fællesspisning i forsamlingshuset" in html and 'href="/digest.pdf?week=' in html
    response = await client.get("/digest.pdf")
    assert response.content_type == "application/pdf"
    reader = PdfReader(io.BytesIO(await response.read()))
    words = " ".join(p.extract_text() for p in reader.pages)
    assert "Fællesspisning i forsamlingshuset" in words and "Hjælpere søges" in words
    year, week, _ = (monday + timedelta(days=7)).isocalendar()
    later = await page(client, "/digest.txt", week=f"{year}-W{week:02d}")
    assert "Fællesspisning" not in later and "Intet planlagt" in later
    assert (await client.get("/digest.txt?week=uge 49")).status == 400


# --- the rules, without a server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "due"),
    [
        ("2026-12-06 16:00", "2026-12-07"),  # Sunday 16:00: the week from tomorrow
        ("2026-12-07 15:59", "2026-12-07"),  # within a day after the hour still due
        ("2026-12-07 16:00", None),  # a day late: that week has begun, skip it
        ("2026-12-06 15:59", None),  # not yet
        ("2027-03-28 16:00", "2027-03-29"),  # the day summer time begins
        ("2027-10-31 16:30", "2027-11-01"),  # the day it ends
        ("2026-12-27 16:00", "2026-12-28"),  # over the year's end: week 53
    ],
)
def test_the_weekly_run_is_due_on_its_day_and_hour(
    tmp_path: Path, at: str, due: str | None
) -> None:
    mail = MailSettings(smtp_host="127.0.0.1", from_address="u@syd.example", send_hour=16)
    config = config_for(tmp_path, [], mail=mail)

    async def merged() -> Any:
        raise AssertionError

    mailer = Mailer(config, merged)
    moment = datetime.fromisoformat(at).replace(tzinfo=TZ)
    found = mailer.due_week(moment)
    assert (found.isoformat() if found else None) == due


def test_tokens_are_signed_and_confirmation_expires() -> None:
    now = HOSTILE_NOWS["leap-day"]
    token = make_token(b"s", CONFIRM, "anna@by.dk", now)
    assert read_token(b"s", token, CONFIRM, now + timedelta(days=6)) == "anna@by.dk"
    assert read_token(b"s", token, CONFIRM, now + timedelta(days=8)) is None
    assert read_token(b"s", token, UNSUBSCRIBE, now) is None  # not for another purpose
    assert read_token(b"other", token, CONFIRM, now) is None
    off = make_token(b"s", UNSUBSCRIBE, "anna@by.dk")
    assert read_token(b"s", off, UNSUBSCRIBE, now + timedelta(days=3650)) == "anna@by.dk"


@given(st.text(max_size=700))
def test_any_token_text_is_refused_without_an_error(text: str) -> None:
    assert read_token(b"s", text, UNSUBSCRIBE, HOSTILE_NOWS["leap-day"]) is None


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("Anna@Osterby.DK", "Anna@osterby.dk"),
        (" anna.b+klub@by.example ", "anna.b+klub@by.example"),
        ("anna@osterby", None),
        ("anna@@by.dk", None),
        ("anna by@by.dk", None),
        ("anna@by.dk\r\nBcc: x@y.dk", None),
        (".anna@by.dk", None),
        ("a" * 65 + "@by.dk", None),
        ("", None),
    ],
)
def test_addresses_are_checked(typed: str, kept: str | None) -> None:
    assert clean_address(typed) == kept


def test_a_damaged_subscribers_file_is_said_in_words(tmp_path: Path) -> None:
    store = SubscriberStore(tmp_path)
    store.path.write_text('{"subscribers": {"a@b.dk": {"state": "maybe"}}}')
    with pytest.raises(StorageError, match=r"subscribers\.json is damaged"):
        store.load()
    store.path.write_text("{not json")
    with pytest.raises(StorageError, match="restore it from a backup"):
        store.load()


def test_mail_settings_are_read_and_saved(tmp_path: Path) -> None:
    from aggregator.config import from_mapping, to_toml

    mail = {"smtp_host": "smtp.k.dk", "from_address": "u@k.dk", "send_hour": 7}
    raw = {"name": "K", "url": "https://k.dk", "mail": mail}
    config = from_mapping(tmp_path, raw)
    assert config.mail == MailSettings("smtp.k.dk", "u@k.dk", send_hour=7)
    assert 'smtp_host = "smtp.k.dk"' in to_toml(config)
    assert replace(config, mail=None).mail is None
    with pytest.raises(Exception, match=r"mail\.send_weekday"):
        from_mapping(tmp_path, raw | {"mail": raw["mail"] | {"send_weekday": "fredag"}})


# --- in chromium: 375 and 1280 px, without JavaScript, axe-clean ------------------------------

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
async def browser() -> Any:
    """Launch Debian's chromium through Playwright."""
    from chromium_support import chromium

    async with chromium() as launched:
        yield launched


async def check_page(browser: Any, url: str, width: int, post: dict[str, str] | None) -> None:
    """Load a page without JavaScript (posting a form first, if asked) and run axe on it."""
    context = await browser.new_context(viewport={"width": width, "height": 900}, locale="da-DK")
    tab = await context.new_page()
    try:
        await tab.goto(url)
        if post:
            for name, value in post.items():
                await tab.fill(f"[name={name}]", value)
            await tab.click("form.signup button[type=submit]")
            await tab.wait_for_load_state()
        wide = await tab.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{url} is {wide}px wide at {width}px"
        await tab.add_script_tag(path=str(AXE))
        result = await tab.evaluate(
            "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})"
        )
        problems = [(v["id"], v["nodes"][0]["html"]) for v in result["violations"]]
        assert problems == [], (url, problems)
    finally:
        await context.close()


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
async def test_ugeseddel_pages_fit_and_pass_axe(mail_client: Any, browser: Any, width: int) -> None:
    for path, post in [
        ("/digest", None),
        ("/subscribe", None),
        ("/digest/signup", None),
        ("/digest/signup", {"email": "anna@osterby"}),  # the error next to the field
        ("/embed", None),
    ]:
        await check_page(browser, str(mail_client.make_url(path)), width, post)


async def test_the_scheduler_runs_the_weekly_job(
    now: datetime, tmp_path: Path, aiohttp_client: Any
) -> None:
    from aggregator.app import create_app
    from aggregator.keys import SCHEDULER

    config = config_for(tmp_path, [], mail=settings(free_port(), now))
    client = await aiohttp_client(create_app(config))  # periodic, as `serve` runs it
    assert "mail-weekly" in client.app[SCHEDULER].job_ids()
    plain = await aiohttp_client(create_app(replace(config, mail=None)))
    assert "mail-weekly" not in plain.app[SCHEDULER].job_ids()
