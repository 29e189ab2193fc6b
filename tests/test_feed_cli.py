"""`klynge feed check|to-ics` run as real subprocesses, on files, stdin and a loopback server."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from clock_support import service_env

DATA = Path(__file__).parent / "data"
KLYNGE = [sys.executable, "-m", "klynge.cli", "feed"]


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*KLYNGE, *args], input=stdin, capture_output=True, timeout=60, env=service_env()
    )


async def run_async(*args: str) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop that serves the test's HTTP server."""
    process = await asyncio.create_subprocess_exec(
        *KLYNGE, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_check_prints_one_line_per_problem_and_exits_1() -> None:
    result = run("check", str(DATA / "problems.atom"))
    assert result.returncode == 1
    lines = result.stdout.decode().splitlines()
    assert "entries: 1 events, 0 notices" in lines
    assert "problems: 4 errors, 0 warnings" in lines
    problems = [line for line in lines if line.startswith(("error ", "warning "))]
    assert problems == [
        "error urn:uuid:aaaaaaaa-0000-4000-8000-000000000001 start: Give a start date and time.",
        "error urn:uuid:aaaaaaaa-0000-4000-8000-000000000002 end: The end is before the start.",
        "error urn:uuid:aaaaaaaa-0000-4000-8000-000000000003 link: "
        "Only http:// and https:// links are allowed.",
        "error urn:uuid:aaaaaaaa-0000-4000-8000-000000000004 timezone: "
        "Unknown time zone 'Europe/Østerby'; use an IANA name like Europe/Copenhagen.",
    ]
    assert result.stderr == b""


def test_check_on_a_good_feed_exits_0_with_a_summary() -> None:
    result = run("check", str(DATA / "village.atom"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "feed: Østerby <https://osterby.example.dk/feed.atom>",
        "flavour: klynge",
        "entries: 3 events, 1 notices",
        "tombstones: 1",
        "problems: 0 errors, 0 warnings",
    ]


def test_check_reads_stdin() -> None:
    result = run("check", "-", stdin=(DATA / "plain-rss.xml").read_bytes())
    assert result.returncode == 0
    assert "entries: 0 events, 2 notices" in result.stdout.decode()


def test_not_a_feed_is_one_clear_line_on_stderr(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><body>Østerby</body></html>")
    result = run("check", str(page))
    assert result.returncode == 1
    assert result.stderr.decode() == "klynge: error: the document is HTML, not a feed\n"
    missing = run("check", str(tmp_path / "nope.atom"))
    assert missing.returncode == 1
    assert missing.stderr.decode().count("\n") == 1
    assert "No such file" in missing.stderr.decode()
    assert b"Traceback" not in missing.stderr


def test_to_ics_writes_the_events_as_icalendar() -> None:
    result = run("to-ics", str(DATA / "village.atom"))
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert text.startswith("BEGIN:VCALENDAR\r\n")
    # Three events, and one override per changed date of the gymnastics series.
    assert text.count("BEGIN:VEVENT") == 6 and text.count("RECURRENCE-ID;TZID=") == 3
    assert "EXDATE;TZID=Europe/Copenhagen:20261020T100000" in text
    assert "UID:urn:uuid:0b9e4a52-7c1d-4e55-9a3b-2f4f0c6d8e11" in text
    assert "STATUS:CANCELLED" in text
    assert "5d4c3b2a" not in text  # the notice is not an event


def test_help_ends_with_an_example() -> None:
    for args in (["--help"], ["check", "--help"], ["to-ics", "--help"]):
        result = run(*args)
        assert result.returncode == 0
        lines = result.stdout.decode().rstrip().splitlines()
        assert lines[-1].strip().startswith("klynge feed ")
        assert "example" in lines[-2]


async def test_check_fetches_a_url_with_caps() -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(
            body=(DATA / "village.atom").read_bytes(), content_type="application/atom+xml"
        )

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"<!-- " + b"x" * (1024 * 1024) + b" -->"
        for _ in range(11):
            await response.write(chunk)
        return response

    async def packed(request: web.Request) -> web.Response:
        body = gzip.compress((DATA / "village.atom").read_bytes())
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def to_file(request: web.Request) -> web.Response:
        raise web.HTTPFound("file:///etc/passwd")

    async def to_ftp(request: web.Request) -> web.Response:
        raise web.HTTPFound("ftp://127.0.0.1/feed.atom")

    app = web.Application()
    app.router.add_get("/feed.atom", feed)
    app.router.add_get("/huge.atom", huge)
    app.router.add_get("/packed.atom", packed)
    app.router.add_get("/sneaky.atom", to_file)
    app.router.add_get("/ftp.atom", to_ftp)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        base = f"http://127.0.0.1:{server.port}"
        code, out, _ = await run_async("check", f"{base}/feed.atom")
        assert code == 0
        assert "entries: 3 events, 1 notices" in out
        code, out, _ = await run_async("check", f"{base}/packed.atom")  # we accept gzip
        assert code == 0
        assert "entries: 3 events, 1 notices" in out
        code, _, err = await run_async("check", f"{base}/huge.atom")
        assert (code, err.strip()) == (
            1,
            f"klynge: error: {base}/huge.atom is larger than 10 MB; not a feed Klynge reads",
        )
        code, _, err = await run_async("check", f"{base}/sneaky.atom")
        assert (code, err.count("\n")) == (1, 1)
        assert "sneaky.atom redirects to 'file:///etc/passwd', which is not http(s)" in err
        code, _, err = await run_async("check", f"{base}/ftp.atom")
        assert (code, err.count("\n")) == (1, 1)
        assert "redirects to 'ftp://127.0.0.1/feed.atom', which is not http(s)" in err
        code, _, err = await run_async("check", f"{base}/missing.atom")
        assert (code, err.strip()) == (
            1,
            f"klynge: error: {base}/missing.atom answered HTTP 404 Not Found",
        )
    finally:
        await server.close()


def test_only_http_urls_are_fetched() -> None:
    result = run("check", "ftp://example.dk/feed.atom")
    assert result.returncode == 1
    assert "only http:// and https:// URLs" in result.stderr.decode()
