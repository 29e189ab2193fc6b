"""`klynge aggregator …`: set up, run and inspect a cluster aggregator."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config import (
    CONFIG_NAME,
    KINDS,
    AggregatorConfig,
    load_config,
    save_config,
)
from klynge.cli import port_number, run_guarded, serve
from klynge.control import Result, call
from klynge.errors import ConfigError
from klynge.storage import DataDirLock

if TYPE_CHECKING:
    from aggregator.reader.refresh import Outcome

EXAMPLES = {
    "init": "klynge aggregator init ./klynge-agg --name 'Klynge Syd' --url https://syd.example.dk",
    "source add": "klynge aggregator source add ./klynge-agg https://osterby.example.dk/feed.atom "
    "--name Østerby",
    "source list": "klynge aggregator source list ./klynge-agg",
    "source remove": "klynge aggregator source remove ./klynge-agg "
    "https://osterby.example.dk/feed.atom",
    "hide": "klynge aggregator hide ./klynge-agg urn:uuid:2f1c6b1e-7c43-4d0b-9a57-3c1f0e8d9b21 "
    "--reason 'advertising, not an event'",
    "unhide": "klynge aggregator unhide ./klynge-agg 2f1c6b1e-7c43-4d0b-9a57-3c1f0e8d9b21",
    "pause": "klynge aggregator pause ./klynge-agg https://osterby.example.dk/feed.atom "
    "--reason 'the feed was taken over; asked the village'",
    "unpause": "klynge aggregator unpause ./klynge-agg https://osterby.example.dk/feed.atom",
    "moderation": "klynge aggregator moderation ./klynge-agg",
    "serve": "klynge aggregator serve ./klynge-agg --port 8080",
    "refresh": "klynge aggregator refresh ./klynge-agg",
    "backup": "klynge aggregator backup ./klynge-agg /media/usb/klynge-backup",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klynge aggregator",
        description="Run and manage a cluster aggregator.",
        epilog="example:\n  " + EXAMPLES["serve"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    init = _sub(sub, "init", "create a data directory with aggregator.toml")
    init.add_argument("dir", type=Path)
    init.add_argument("--name", required=True, help="the cluster's name")
    init.add_argument("--url", required=True, help="the public URL residents use")
    source = _sub(sub, "source", "add, remove or list polled feeds", example=EXAMPLES["source add"])
    ssub = source.add_subparsers(dest="source_command", required=True)
    add = _sub(ssub, "add", "add a feed to poll", example=EXAMPLES["source add"])
    add.add_argument("dir", type=Path)
    add.add_argument("url", metavar="FEED_URL")
    add.add_argument("--name", default="", help="display name (default: the feed's title)")
    add.add_argument(
        "--kind", default="node", choices=KINDS, help="who publishes it (default node)"
    )
    remove = _sub(ssub, "remove", "stop polling a feed; its entries leave the outputs",
                  example=EXAMPLES["source remove"])  # fmt: skip
    remove.add_argument("dir", type=Path)
    remove.add_argument("url", metavar="FEED_URL")
    listing = _sub(ssub, "list", "list the polled feeds", example=EXAMPLES["source list"])
    listing.add_argument("dir", type=Path)
    _moderation_parsers(sub)
    serve = _sub(sub, "serve", "run the aggregator's web service")
    serve.add_argument("dir", type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument(
        "--port", type=port_number, default=8080, help="default %(default)s; 0 picks a free port"
    )
    serve.add_argument(
        "--verbose", action="store_true", help="log more: details, and other libraries' INFO lines"
    )
    refresh = _sub(sub, "refresh", "poll every source once, then exit")
    refresh.add_argument("dir", type=Path)
    backup = _sub(sub, "backup", "copy the store and config consistently, also while serving")
    backup.add_argument("dir", type=Path)
    backup.add_argument("dest", type=Path)
    return parser


def _moderation_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hide = _sub(sub, "hide", "hide an entry from every output, with a reason shown on /status")
    unhide = _sub(sub, "unhide", "show a hidden entry again")
    for parser in (hide, unhide):
        parser.add_argument("dir", type=Path)
        parser.add_argument("entry", metavar="ENTRY_ID", help="urn:uuid:… or the uuid in its URL")
    hide.add_argument("--reason", required=True, help="why, for the other hosts and villages")
    pause = _sub(sub, "pause", "stop polling a feed and leave its entries out, with a reason")
    unpause = _sub(sub, "unpause", "poll a paused feed again (fetched at once)")
    for parser in (pause, unpause):
        parser.add_argument("dir", type=Path)
        parser.add_argument("url", metavar="FEED_URL")
    pause.add_argument("--reason", required=True, help="why, shown on /status")
    listing = _sub(sub, "moderation", "list the hidden entries and paused feeds")
    listing.add_argument("dir", type=Path)


def _sub(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    example: str = "",
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog="example:\n  " + (example or EXAMPLES[name]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str]) -> int:
    """Run `klynge aggregator …` and return the exit code."""
    args = _parser().parse_args(argv)
    command = args.command if args.command != "source" else f"source {args.source_command}"
    handler = COMMANDS[command]
    return run_guarded(lambda: handler(args))


def cmd_init(args: argparse.Namespace) -> int:
    """Create the data directory and its aggregator.toml."""
    path = args.dir / CONFIG_NAME
    if path.exists():
        raise ConfigError(f"{path} already exists; edit it, or choose another directory")
    config = AggregatorConfig(data_dir=args.dir, name=args.name.strip(), url=args.url.strip())
    args.dir.mkdir(parents=True, exist_ok=True)
    save_config(config)
    print(f"Created {path}. Next: klynge aggregator source add {args.dir} FEED_URL")
    return 0


def run_operation(directory: Path, name: str, params: dict[str, object]) -> tuple[Result, bool]:
    """Run a host's command through the running aggregator, or on its files; True if live."""
    from aggregator.operations import run_direct  # lazily: it pulls in the whole reader

    load_config(directory, env={})  # a clear error for a directory that is not an aggregator
    result = call(directory, name, params)
    if result is not None:
        return result, True
    if name in ("source list", "moderation"):
        return run_direct(directory, name, params), False
    with DataDirLock(directory):
        return run_direct(directory, name, params), False


def cmd_source_add(args: argparse.Namespace) -> int:
    """Add a feed: the running aggregator fetches it at once; the config keeps it."""
    params = {"url": args.url.strip(), "name": args.name.strip(), "kind": args.kind}
    result, live = run_operation(args.dir, "source add", params)
    if live:
        print(f"Added {result['url']} ({result['kind']}); first fetch: {result['fetched']}")
    else:
        print(f"Added {result['url']} ({result['kind']}); polled from the next start.")
    return 0


def cmd_source_remove(args: argparse.Namespace) -> int:
    """Remove a feed: its entries leave the outputs; its stored file stays for a re-add."""
    result, _live = run_operation(args.dir, "source remove", {"url": args.url.strip()})
    print(f"Removed {result['url']}; its entries have left the outputs.")
    return 0


def cmd_source_list(args: argparse.Namespace) -> int:
    """Print the configured feeds, one a line (a paused one with its reason)."""
    result, _live = run_operation(args.dir, "source list", {})
    for source in result["sources"]:
        paused = f"  (paused: {source['paused']})" if source["paused"] else ""
        print(f"{source['kind']:<10} {source['name'] or '-':<24} {source['url']}{paused}")
    return 0


def cmd_hide(args: argparse.Namespace) -> int:
    """Hide an entry from every output of this aggregator."""
    params = {"entry": args.entry, "reason": args.reason}
    result, live = run_operation(args.dir, "hide", params)
    if live and not result.get("title"):
        print(f"Hid {result['id']}, which no source serves now (check the id); /status lists it.")
    else:
        title = f" ({result['title']})" if result.get("title") else ""
        print(f"Hid {result['id']}{title}; /status lists it with the reason.")
    return 0


def cmd_unhide(args: argparse.Namespace) -> int:
    """Show a hidden entry again."""
    result, _live = run_operation(args.dir, "unhide", {"entry": args.entry})
    print(f"Showing {result['id']} again.")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    """Pause a feed: not fetched, its entries left out, until unpaused."""
    params = {"url": args.url.strip(), "reason": args.reason}
    result, _live = run_operation(args.dir, "pause", params)
    print(f"Paused {result['url']}; its entries have left the outputs.")
    return 0


def cmd_unpause(args: argparse.Namespace) -> int:
    """Poll a paused feed again; the running aggregator fetches it at once."""
    result, live = run_operation(args.dir, "unpause", {"url": args.url.strip()})
    fetched = f"; fetched: {result['fetched']}" if live and "fetched" in result else ""
    print(f"Unpaused {result['url']}{fetched}")
    return 0


def cmd_moderation(args: argparse.Namespace) -> int:
    """Print the hidden entries and paused feeds with their reasons."""
    result, _live = run_operation(args.dir, "moderation", {})
    for kind in ("hidden", "paused"):
        for hold in result[kind]:
            print(f"{kind:<7} {hold['key']}  {hold['since']}  {hold['reason']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the aggregator until interrupted, holding the data directory."""
    from aggregator.app import create_app

    config = load_config(args.dir)
    return serve(args.dir, lambda: create_app(config), args.host, args.port, verbose=args.verbose)


def cmd_refresh(args: argparse.Namespace) -> int:
    """Poll every source once and print a line per source; exit 1 when all failed."""
    config = load_config(args.dir)
    with DataDirLock(args.dir):
        outcomes = asyncio.run(refresh_once(config))
    for outcome in outcomes:
        print(f"{'ok  ' if outcome.ok else 'FAIL'} {outcome.url}: {outcome.words}")
    return 1 if outcomes and not any(o.ok for o in outcomes) else 0


async def refresh_once(config: AggregatorConfig) -> list[Outcome]:
    """Run one polling pass over all sources and store the result."""
    from aggregator.app import fetch_limits
    from aggregator.reader.fetcher import Fetcher
    from aggregator.reader.refresh import Refresher
    from aggregator.store.sources import Store

    fetcher = Fetcher(fetch_limits(config))
    refresher = Refresher(config, Store(config.data_dir), fetcher)
    try:
        await refresher.load()
        return list(await refresher.refresh_all())
    finally:
        await refresher.close()
        await fetcher.close()


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the data directory's config, store index and source files to DEST."""
    from aggregator.store.backup import backup_aggregator

    copied = backup_aggregator(args.dir, args.dest)
    for path in copied:
        if path.parent == args.dest:
            print(f"Backed up {path}")
    stored = [p for p in copied if p.parent != args.dest]  # the index and the source files
    if stored:
        print(f"Backed up {stored[-1].parent}: the index and {len(stored) - 1} source files")
    return 0


COMMANDS = {
    "init": cmd_init,
    "source add": cmd_source_add,
    "source list": cmd_source_list,
    "source remove": cmd_source_remove,
    "hide": cmd_hide,
    "unhide": cmd_unhide,
    "pause": cmd_pause,
    "unpause": cmd_unpause,
    "moderation": cmd_moderation,
    "serve": cmd_serve,
    "refresh": cmd_refresh,
    "backup": cmd_backup,
}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
