"""The `klynge` command: dispatches lazily to the node, aggregator, feed and demo commands."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from klynge.errors import KlyngeError

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
