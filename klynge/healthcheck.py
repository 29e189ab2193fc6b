"""`klynge healthcheck URL`: exit 0 when the URL answers 2xx within 3 seconds, else 1.

Container health checks and systemd watchdogs call this; it prints one line either way.
It uses urllib, not the shared client `klynge.http`: it is a new process every 30 seconds on a
Pi, reads only a status line from our own service, and starts in well under half the time
without aiohttp (bench/healthcheck_bench.py).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from klynge import USER_AGENT
from klynge.model import is_http_url

TIMEOUT_SECONDS = 3.0

EXAMPLE = "example:\n  klynge healthcheck http://127.0.0.1:8081/healthz"


def check(url: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Return whether `url` answered 2xx in time, and a line saying what happened."""
    if not is_http_url(url):
        return False, f"{url!r} is not an http(s) URL"
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as e:
        return False, f"{url} answered HTTP {e.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        return False, f"{url} did not answer: {reason}"
    return 200 <= status < 300, f"{url} answered HTTP {status}"


def main(argv: list[str]) -> int:
    """Run the health check command."""
    parser = argparse.ArgumentParser(
        prog="klynge healthcheck",
        description="Exit 0 when URL answers with a 2xx status within 3 seconds, else 1.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL")
    args = parser.parse_args(argv)
    ok, line = check(args.url)
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
