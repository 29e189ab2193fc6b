"""The /status page says the fetcher's and feed reader's English sentences in Danish."""

from __future__ import annotations

import html
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aggregator_support import config_for, refresher_of, start_aggregator

from aggregator.config import Source
from aggregator.web.status_words import SHAPES, explain

# (English sentence as the code writes it, its Danish words on /status)
SENTENCES = [
    ("Not fetched yet.", "Ikke hentet endnu."),
    (
        "Failing: the feed took too long to read (more than 15 s), so it was ignored "
        "(1 failures in a row, never fetched successfully).",
        "Fejler: feedet tog for lang tid at læse (mere end 15 sekunder), så det blev ignoreret "
        "(1 fejl i træk, aldrig hentet med held).",
    ),
    (
        "the feed needed too much memory to read (more than 512 MB), so it was ignored",
        "feedet krævede for meget hukommelse at læse (mere end 512 MB), så det blev ignoreret",
    ),
    (
        "the feed reader stopped unexpectedly, so the feed was ignored",
        "feedlæseren stoppede uventet, så feedet blev ignoreret",
    ),
    ("the aggregator is stopping", "aggregatoren er ved at stoppe"),
    (
        "OK: 5000 entries. The feed has more than 5000 entries; only the first 5000 were read.",
        "OK: 5000 indslag. Feedet har flere end 5000 indslag; kun de første 5000 blev læst.",
    ),
    (
        "The calendar has 12 events, more than the limit of 10; only the first 10 were read.",
        "Kalenderen har 12 begivenheder, flere end grænsen på 10; kun de første 10 blev læst.",
    ),
    ("OK: 12 entries.", "OK: 12 indslag."),
    (
        "OK: 9 entries. This fetch would remove 6 of 9 upcoming entries; they are kept until "
        "the next fetch confirms the removal.",
        "OK: 9 indslag. Denne hentning ville fjerne 6 af 9 kommende indslag; de beholdes, "
        "indtil næste hentning bekræfter fjernelsen.",
    ),
    (
        "Failing: timed out after 30 s (2 failures in a row, never fetched successfully).",
        "Fejler: fik ikke svar inden for 30 sekunder (2 fejl i træk, aldrig hentet med held).",
    ),
    (
        "Stale: HTTP 500 Internal Server Error (7 failures in a row, last success 3 h ago; "
        "keeping its last 4 good entries).",
        "Forældet: serveren svarede med fejlen HTTP 500 (Internal Server Error) (7 fejl i træk, "
        "sidst hentet med held for 3 timer siden; de sidste 4 gode indslag beholdes).",
    ),
    (
        "Failing: HTTP 503 (2 failures in a row, last success 5 min ago).",
        "Fejler: serveren svarede med fejlen HTTP 503 (2 fejl i træk, "
        "sidst hentet med held for 5 minutter siden).",
    ),
    ("timed out after 0.5 s", "fik ikke svar inden for 0.5 sekunder"),
    (
        "could not connect: timed out after 10 s",
        "kunne ikke få forbindelse: fik ikke svar inden for 10 sekunder",
    ),
    (
        "could not connect: connection refused",
        "kunne ikke få forbindelse: forbindelsen blev afvist",
    ),
    (
        "could not connect: connection reset by the server",
        "kunne ikke få forbindelse: serveren afbrød forbindelsen",
    ),
    ("could not connect: host unreachable", "kunne ikke få forbindelse: værten kan ikke nås"),
    ("network error: network unreachable", "netværksfejl: netværket kan ikke nås"),
    ("network error: timed out", "netværksfejl: tiden løb ud"),
    (
        "could not connect: the host name nowhere.invalid was not found",
        "kunne ikke få forbindelse: værtsnavnet nowhere.invalid findes ikke",
    ),
    (
        "could not connect: the TLS certificate is not valid (expired)",
        "kunne ikke få forbindelse: TLS-certifikatet er ikke gyldigt (expired)",
    ),
    (
        "could not connect: the TLS handshake failed",
        "kunne ikke få forbindelse: TLS-forhandlingen mislykkedes",
    ),
    ("HTTP 404 Not Found", "serveren svarede med fejlen HTTP 404 (Not Found)"),
    ("HTTP 599", "serveren svarede med fejlen HTTP 599"),
    ("HTTP 302 redirect without a Location header", "HTTP 302-omdirigering uden Location-header"),
    ("too many redirects (more than 3)", "for mange omdirigeringer (flere end 3)"),
    ("the response is larger than 5 MB", "svaret er større end 5 MB"),
    (
        "the response is larger than 5 MB (it declares 12.5 MB)",
        "svaret er større end 5 MB (det oplyser 12.5 MB)",
    ),
    (
        "the response is larger than 20 MB when decompressed",
        "svaret er større end 20 MB, når det er pakket ud",
    ),
    (
        "the body is not valid gzip (Error -3 while decompressing data: incorrect header check)",
        "indholdet er ikke gyldig gzip (Error -3 while decompressing data: incorrect header check)",
    ),
    (
        "the body is not valid gzip: it ends too early",
        "indholdet er ikke gyldig gzip: det slutter for tidligt",
    ),
    (
        "the body is not valid deflate: data after the end",
        "indholdet er ikke gyldig deflate: der kommer data efter slutningen",
    ),
    (
        "the server used a compression we do not accept (br); we accept gzip and deflate",
        "serveren brugte en komprimering, vi ikke tager imod (br); vi tager imod gzip og deflate",
    ),
    (
        "only http and https URLs can be fetched, not 'ftp://x.example/feed'",
        "kun http- og https-adresser kan hentes, ikke 'ftp://x.example/feed'",
    ),
    (
        "the server redirected to an invalid URL 'http://['",
        "serveren henviste til en ugyldig adresse 'http://['",
    ),
    (
        "the server redirected to a URL that is not http(s): 'file:///etc/passwd'",
        "serveren henviste til en adresse, der ikke er http(s): 'file:///etc/passwd'",
    ),
    (
        "the server closed the connection without a complete answer",
        "serveren lukkede forbindelsen uden et fuldstændigt svar",
    ),
    (
        "the connection closed before the whole body arrived (truncated response)",
        "forbindelsen blev lukket, før hele indholdet var modtaget (afkortet svar)",
    ),
    (
        "the server sent a malformed body (bad chunk)",
        "serveren sendte et fejlbehæftet indhold (bad chunk)",
    ),
    (
        "the server sent an invalid HTTP response (Bad status line)",
        "serveren sendte et ugyldigt HTTP-svar (Bad status line)",
    ),
    ("the URL is not valid", "adressen er ikke gyldig"),
    ("the request failed (ValueError: odd)", "forespørgslen mislykkedes (ValueError: odd)"),
    ("could not be read (KeyError: 'x')", "kunne ikke læses (KeyError: 'x')"),
    (
        "not a usable feed: the document is HTML, not a feed",
        "ikke et brugbart feed: dokumentet er en HTML-side, ikke et feed",
    ),
    (
        "not a usable feed: the document is empty, not a feed",
        "ikke et brugbart feed: dokumentet er tomt, ikke et feed",
    ),
    (
        "not a usable feed: the feed contains a DTD/entity declaration, which Klynge refuses",
        "ikke et brugbart feed: feedet indeholder en DTD/entity-erklæring, som Klynge afviser",
    ),
    (
        "not a usable feed: the document is not XML, so not a feed",
        "ikke et brugbart feed: dokumentet er ikke XML og derfor ikke et feed",
    ),
    (
        "not a usable feed: the document is not well-formed XML and no feed could be recovered",
        "ikke et brugbart feed: dokumentet er ikke velformet XML, og der kunne ikke redes et "
        "feed ud af det",
    ),
    (
        "not a usable feed: the feed could not be read (ValueError: embedded null character)",
        "ikke et brugbart feed: feedet kunne ikke læses (ValueError: embedded null character)",
    ),
    (
        "not a usable feed: the document is XML but not an Atom or RSS feed (its root is <rdf>)",
        "ikke et brugbart feed: dokumentet er XML, men ikke et Atom- eller RSS-feed "
        "(dets rod er <rdf>)",
    ),
    (
        "not a usable feed: the document is not well-formed XML, so it was ignored. The feed is "
        "not well-formed XML (<unknown>:3:0: no element found); read what could be recovered.",
        "ikke et brugbart feed: dokumentet er ikke velformet XML, så det blev ignoreret. Feedet "
        "er ikke velformet XML (<unknown>:3:0: no element found); det, der kunne reddes, blev "
        "læst.",
    ),
    (
        "not a usable feed: the document is not well-formed XML, so it was ignored.",
        "ikke et brugbart feed: dokumentet er ikke velformet XML, så det blev ignoreret.",
    ),
    (
        "not a usable feed: The file is not an iCalendar file: no VCALENDAR.",
        "ikke et brugbart feed: Filen er ikke en iCalendar-fil: ingen VCALENDAR.",
    ),
    (
        "not a usable feed: The file is not an iCalendar file: Content line could not be parsed",
        "ikke et brugbart feed: Filen er ikke en iCalendar-fil: Content line could not be parsed",
    ),
]


@pytest.mark.parametrize(("english", "danish"), SENTENCES)
def test_each_sentence_is_said_in_danish_and_stays_english_in_english(
    english: str, danish: str
) -> None:
    assert explain(english, "da") == danish
    assert explain(english, "en") == english


def test_every_shape_is_in_the_table() -> None:
    used = {msgid for shape, msgid in SHAPES for english, _ in SENTENCES if shape.search(english)}
    assert {msgid for _, msgid in SHAPES} - used == set()


@pytest.mark.parametrize("text", ["", "something new went wrong", "HTTP/1.1 garbage"])
def test_unknown_sentences_pass_through(text: str) -> None:
    assert explain(text, "da") == text


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but not listening, so every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_status_shows_a_refused_connection_in_the_readers_language(
    closed_port: int, tmp_path: Path, aiohttp_client: Any
) -> None:
    url = f"http://127.0.0.1:{closed_port}/feed.atom"
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url, "Lukket")]))
    await refresher_of(client).refresh_all()
    danish = html.unescape(await (await client.get("/status")).text())
    assert "kunne ikke få forbindelse: forbindelsen blev afvist" in danish
    assert "forbindelsen blev afvist (1 fejl i træk, aldrig hentet med held)." in danish
    assert "<summary>Teknisk tekst</summary>" in danish
    assert 'title="could not connect: connection refused"' in danish  # the original, for hosts
    english = html.unescape(await (await client.get("/status", params={"lang": "en"})).text())
    assert "connection refused (1 failures in a row, never fetched successfully)." in english
    assert "forbindelsen blev afvist" not in english
    api = json.loads(await (await client.get("/api/sources")).text())
    [row] = api["sources"]
    assert row["last_error"] == "could not connect: connection refused"
    assert row["summary"].endswith(
        ": could not connect: connection refused (1 failures in a row, never fetched successfully)."
    )
