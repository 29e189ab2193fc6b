"""`klynge feed check|to-ics FILE_OR_URL`: validate a Klynge feed or convert it to iCalendar."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from klynge.atom.reader import ParsedFeed, read_feed
from klynge.cli import run_guarded
from klynge.errors import BadRequest, FeedError, KlyngeError, TooLarge
from klynge.model import DEFAULT_TIMEZONE, Event, is_http_url

if TYPE_CHECKING:
    from klynge.http import HttpError

MAX_BYTES = 10 * 1024 * 1024
TIMEOUT_SECONDS = 10
CHUNK = 64 * 1024

EPILOG = """examples:
  klynge feed check https://osterby.example.dk/feed.atom
  klynge feed to-ics ./feed.atom > osterby.ics
"""


def main(argv: list[str]) -> int:
    """Run `klynge feed …` and return the exit code (1 when the feed has errors)."""
    args = _parser().parse_args(argv)
    return run_guarded(lambda: _run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klynge feed",
        description="Check a Klynge feed, or convert its events to iCalendar.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="validate a feed; print a summary and one line per problem",
        epilog="example:\n  klynge feed check https://osterby.example.dk/feed.atom\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    to_ics = commands.add_parser(
        "to-ics",
        help="write the feed's events as iCalendar on stdout",
        epilog="example:\n  klynge feed to-ics ./feed.atom > calendar.ics\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for sub in (check, to_ics):
        sub.add_argument(
            "source", metavar="FILE_OR_URL", help="a file, an http(s) URL, or - for stdin"
        )
        sub.add_argument(
            "--timezone",
            default=DEFAULT_TIMEZONE,
            help=f"zone for times without an offset (default {DEFAULT_TIMEZONE})",
        )
    return parser


def _run(args: argparse.Namespace) -> int:
    data = load(args.source)
    parsed = read_feed(
        data, url=args.source if is_http_url(args.source) else "", default_timezone=args.timezone
    )
    if args.command == "check":
        print(summary(parsed))
        return 1 if any(p.severity == "error" for p in parsed.problems) else 0
    from klynge.ical.writer import write_calendar

    events = [item for item in parsed.items if isinstance(item, Event)]
    sys.stdout.buffer.write(
        write_calendar(
            events,
            name=parsed.meta.title,
            url=parsed.meta.alternate_url or parsed.meta.self_url,
            description=parsed.meta.subtitle,
        )
    )
    sys.stdout.flush()
    return 0


def summary(parsed: ParsedFeed) -> str:
    """Return the report of `klynge feed check`: counts first, then one line per problem."""
    kinds = Counter(item.kind for item in parsed.items)
    errors = sum(1 for p in parsed.problems if p.severity == "error")
    warnings = len(parsed.problems) - errors
    lines = [
        f"feed: {parsed.meta.title or '(untitled)'} <{parsed.meta.self_url or parsed.meta.id}>",
        f"flavour: {parsed.flavour}",
        f"entries: {kinds['event']} events, {kinds['notice']} notices",
        f"tombstones: {len(parsed.tombstones)}",
        f"problems: {errors} errors, {warnings} warnings",
    ]
    for problem in parsed.problems:
        entry = problem.entry_id or "(feed)"
        lines.append(f"{problem.severity} {entry} {problem.field}: {problem.message.english()}")
    return "\n".join(lines)


def load(source: str) -> bytes:
    """Return the bytes of a file, an http(s) URL or stdin (`-`), at most 10 MB."""
    if source == "-":
        return _read_capped(sys.stdin.buffer, source)
    if "://" in source:
        return fetch(source)
    with Path(source).open("rb") as f:
        return _read_capped(f, source)


def fetch(url: str) -> bytes:
    """GET an http(s) URL within 10 s in all and 10 MB, following 3 redirects to http(s) only."""
    if not is_http_url(url):
        raise BadRequest(f"only http:// and https:// URLs can be fetched, not {url!r}")
    # Imported here: checking a file should not pay for loading aiohttp.
    from klynge.http import Client, HttpError, Limits

    async def get() -> bytes:
        limits = Limits(
            connect_timeout=TIMEOUT_SECONDS,
            total_timeout=TIMEOUT_SECONDS,
            max_compressed=MAX_BYTES,
            max_decompressed=MAX_BYTES,
            max_redirects=3,
        )
        async with Client(limits) as client:
            return (await client.get(url)).body

    try:
        return asyncio.run(get())
    except HttpError as e:
        raise _fetch_error(url, e) from e


def _fetch_error(url: str, error: HttpError) -> KlyngeError:
    """Say why `url` could not be fetched, in the command's own words for the usual cases."""
    from klynge.http import problems

    problem = error.problem
    if problem.code in (
        problems.TOO_LARGE,
        problems.TOO_LARGE_DECLARED,
        problems.TOO_LARGE_DECODED,
    ):
        return _too_large(url)
    if problem.code == problems.STATUS:
        return FeedError(f"{url} answered {problem.english()}")
    if problem.code == problems.REDIRECT_NOT_HTTP:
        location = problem.params["location"]
        return FeedError(f"{url} redirects to {location!r}, which is not http(s)")
    return FeedError(f"could not fetch {url}: {problem.english()}")


def _too_large(name: str) -> TooLarge:
    return TooLarge(
        f"{name} is larger than {MAX_BYTES // (1024 * 1024)} MB; not a feed Klynge reads"
    )


def _read_capped(stream: IO[bytes] | Any, name: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(CHUNK):
        total += len(chunk)
        if total > MAX_BYTES:
            raise _too_large(name)
        chunks.append(chunk)
    return b"".join(chunks)
