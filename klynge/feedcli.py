"""`klynge feed check|to-ics FILE_OR_URL`: validate a Klynge feed or convert it to iCalendar."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import IO, Any

from klynge import USER_AGENT
from klynge.atom.reader import ParsedFeed, read_feed
from klynge.cli import run_guarded
from klynge.errors import BadRequest, FeedError, TooLarge
from klynge.model import DEFAULT_TIMEZONE, Event, is_http_url

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
    """GET an http(s) URL with a 10 s timeout and a 10 MB cap, following http(s) redirects only."""
    if not is_http_url(url):
        raise BadRequest(f"only http:// and https:// URLs can be fetched, not {url!r}")
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return _read_capped(response, url)
    except urllib.error.HTTPError as e:
        raise FeedError(f"{url} answered HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise FeedError(f"could not fetch {url}: {reason}") from e


def _read_capped(stream: IO[bytes] | Any, name: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(CHUNK):
        total += len(chunk)
        if total > MAX_BYTES:
            raise TooLarge(
                f"{name} is larger than {MAX_BYTES // (1024 * 1024)} MB; not a feed Klynge reads"
            )
        chunks.append(chunk)
    return b"".join(chunks)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow at most 3 redirects, and only to http(s) URLs."""

    max_redirections = 3

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not is_http_url(newurl):
            raise FeedError(f"{req.full_url} redirects to {newurl!r}, which is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)
