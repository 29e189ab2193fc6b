"""The `klynge` command: dispatches lazily to the node, aggregator, feed and demo commands."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import resource
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from klynge.errors import ConfigError, KlyngeError

if TYPE_CHECKING:
    from aiohttp import web

# command -> (module with `main(argv) -> int`, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "node": ("node.cli", "run and manage a village node"),
    "aggregator": ("aggregator.cli", "run and manage a cluster aggregator"),
    "feed": ("klynge.feedcli", "check a Klynge feed or convert it to iCalendar"),
    "demo": ("klynge.demo", "start three villages and one aggregator on loopback"),
    "healthcheck": ("klynge.healthcheck", "exit 0 when a URL answers 2xx within 3 seconds"),
}

USAGE = """usage: klynge COMMAND [ARGS]...

Klynge: a shared calendar and noticeboard for a cluster of villages.

commands:
{commands}

Run `klynge COMMAND --help` for the options of a command.

example:
  klynge node init ./osterby --name Østerby --url https://osterby.example.dk
"""


def _usage() -> str:
    lines = "\n".join(f"  {name:<12} {summary}" for name, (_, summary) in COMMANDS.items())
    return USAGE.format(commands=lines)


def fail(message: str, code: int = 1) -> int:
    """Print one clear error line on stderr and return the exit code."""
    print(f"klynge: error: {message}", file=sys.stderr)
    return code


def run_guarded(func: Callable[[], int]) -> int:
    """Run a command body, turning domain errors into one line on stderr."""
    try:
        return func()
    except KlyngeError as e:
        return fail(e.message)
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        return fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))


def port_number(text: str) -> int:
    """Parse a TCP port for argparse (0 picks a free one), refusing what bind() would crash on."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("must be a number from 0 to 65535")
    return port


def bind_error(error: OSError, host: str, port: int) -> ConfigError | None:
    """Return a clear error for the usual reasons a listening socket fails, else None."""
    if error.errno == errno.EADDRINUSE:
        return ConfigError(
            f"port {port} on {host} is already in use by another program; "
            "stop it or choose another port with --port"
        )
    if error.errno == errno.EACCES:
        return ConfigError(
            f"no permission to listen on port {port}; ports below 1024 need root: "
            "choose a port above 1024 and put a reverse proxy in front"
        )
    return None


# A request's line and headers must arrive within this many seconds of the connection opening
# (or of the previous response on a kept-alive connection), else it is closed; an idle
# kept-alive connection is closed after it too. aiohttp's keepalive_timeout does both from
# 3.14.5 on: its timer starts with the connection and data arriving does not reset it, so a
# client sending a byte a second is closed as well. The reverse proxies in deploy/ close
# their idle connections to the service sooner (5 s), so they never reuse one being closed.
REQUEST_HEAD_TIMEOUT = 10.0
# File descriptors wanted: every connection holds one until it is closed, and the store's
# atomic writes need a few; systemd's default soft limit of 1,024 is reached by a few hundred
# idle connections a second. The hard limit (systemd: 524,288) is the kernel's real bound.
WANTED_FILES = 65536


def raise_file_limit() -> int:
    """Raise the soft limit on open files towards the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_FILES if hard == resource.RLIM_INFINITY else min(hard, WANTED_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return wanted
    return soft


# Our loggers: one line per event worth a host's attention (a start, a command, a failure).
OWN_LOGGERS = ("klynge", "node")


def configure_logging(verbose: bool = False) -> None:
    """Log our events (INFO) and others' warnings; `verbose` adds our details and others' INFO.

    Quiet by default: APScheduler alone logged two INFO lines per source at every start (4,000
    lines for 1,000 sources), and on a Pi every line is an SD-card write.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def serve(
    data_dir: Path,
    make_app: Callable[[], web.Application],
    host: str,
    port: int,
    *,
    verbose: bool = False,
) -> int:
    """Serve an app until interrupted, holding the data directory's lock; bind errors in words."""
    from aiohttp import web

    from klynge.storage import DataDirLock
    from klynge.web import fatal_error

    configure_logging(verbose)
    raise_file_limit()
    with DataDirLock(data_dir):
        app = make_app()
        # Port 0: bind here, so the line below can name the port the OS picked.
        sock = bind_any_port(host) if port == 0 else None
        shown = int(sock.getsockname()[1]) if sock else port
        # No access log: on a Pi every line is an SD-card write; /status shows the health.
        try:
            web.run_app(
                app,
                host=None if sock else host,
                port=None if sock else port,
                sock=sock,
                print=_serving(host, shown),
                access_log=None,
                keepalive_timeout=REQUEST_HEAD_TIMEOUT,
            )
        except OSError as e:
            friendly = bind_error(e, host, port)
            if friendly is None:
                raise
            raise friendly from e
    error = fatal_error(app)
    if error is not None:
        raise error
    _exit_now()


def _exit_now() -> NoReturn:
    """End a service that has stopped cleanly without tearing its heap down object by object.

    By now the app's cleanup has run (stores written and closed, worker processes ended) and
    the lock is released. Freeing the 20,000 entries of a big cluster (and their kept pieces)
    one by one, and the interpreter's final garbage collection, took seconds at SIGTERM,
    which a restart by systemd waits for.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def bind_any_port(host: str) -> socket.socket:
    """Return a socket bound to `host` on a free port that the OS picked."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.bind(address)
    return sock


def _serving(host: str, port: int) -> Callable[[str], None]:
    shown = f"[{host}]" if ":" in host else host or "0.0.0.0"

    def show(_text: str) -> None:
        print(f"Serving on http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `klynge` command line and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from klynge import __version__

        print(f"klynge {__version__}")
        return 0
    entry = COMMANDS.get(args[0])
    if entry is None:
        return fail(f"unknown command {args[0]!r}; run `klynge --help` for the list.", 2)
    module = importlib.import_module(entry[0])
    command: Callable[[list[str]], int] = module.main
    return run_guarded(lambda: command(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
