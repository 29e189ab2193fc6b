"""`klynge node …`: create, serve and manage a village node's data directory."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path

from klynge.cli import port_number, run_guarded, serve
from klynge.control import Result, call
from klynge.errors import ConfigError, ValidationError
from klynge.model import DEFAULT_TIMEZONE, clean_text, is_http_url, zone
from klynge.storage import DataDirLock, backup_data_dir, write_private
from node.auth import hash_password
from node.cluster.copy import FILE_NAME as CLUSTER_COPY
from node.config import CONFIG_NAME, load_config, render_new_config
from node.store import Store

Command = Callable[[argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klynge node",
        description="Run and manage a village node.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  klynge node init ./osterby --name Østerby --url https://osterby.example.dk",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _init_parser(sub)
    _serve_parser(sub)
    _user_parser(sub)
    _token_parser(sub)
    _backup_parser(sub)
    return parser


def _add(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str,
         example: str, func: Command) -> argparse.ArgumentParser:  # fmt: skip
    parser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def _init_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _add(sub, "init", "create a new node data directory with node.toml",
             "klynge node init ./osterby --name Østerby --url https://osterby.example.dk "
             "--aggregator https://klynge.example.dk", cmd_init)  # fmt: skip
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("--name", required=True, help="the village name residents see")
    p.add_argument("--url", required=True, help="the public URL of this node")
    p.add_argument("--aggregator", action="append", default=[], metavar="URL",
                   help="an aggregator to ping after every change (repeatable)")  # fmt: skip
    p.add_argument("--timezone", default=DEFAULT_TIMEZONE, help="default %(default)s")


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _add(sub, "serve", "serve the village node over HTTP",
             "klynge node serve ./osterby --host 127.0.0.1 --port 8081", cmd_serve)  # fmt: skip
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    p.add_argument(
        "--port", type=port_number, default=8081, help="default %(default)s; 0 picks a free port"
    )
    p.add_argument("--verbose", action="store_true",
                   help="log more: details, and other libraries' INFO lines")  # fmt: skip


def _user_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="manage volunteer accounts",
                          description="Manage volunteer accounts.",
                          epilog="example:\n  klynge node user add ./osterby anna --association "
                          "'Østerby Forsamlingshus'",
                          formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    usub = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    p = _add(usub, "add", "add a volunteer who posts for an association",
             "echo 'a long password' | klynge node user add ./osterby anna "
             "--association 'Østerby Forsamlingshus' --password-stdin", cmd_user_add)  # fmt: skip
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("--association", required=True, help="the association the user posts for")
    p.add_argument("--admin", action="store_true", help="may manage users and places")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")  # fmt: skip
    p = _add(usub, "passwd", "set a user's password and log the user out everywhere",
             "echo 'a new long password' | klynge node user passwd ./osterby anna "
             "--password-stdin", cmd_user_passwd)  # fmt: skip
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")  # fmt: skip
    p = _add(usub, "remove", "remove a user: its sessions end and its API tokens are revoked",
             "klynge node user remove ./osterby anna", cmd_user_remove)  # fmt: skip
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("username", metavar="USERNAME")


def _token_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="manage API tokens",
                           description="Manage API tokens (Authorization: Bearer TOKEN).",
                           epilog="example:\n  klynge node token add ./osterby anna",
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    tsub = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    p = _add(tsub, "add", "make a new API token for a user (printed once, as the last line)",
             "klynge node token add ./osterby anna", cmd_token_add)  # fmt: skip
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("username", metavar="USERNAME")
    p = _add(tsub, "revoke", "revoke an API token by its id or the token itself",
             "klynge node token revoke ./osterby 3f9c2a1b", cmd_token_revoke)  # fmt: skip
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("token", metavar="TOKEN_ID_OR_PREFIX")


def _backup_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _add(sub, "backup", "copy the database and settings consistently (works while serving)",
             "klynge node backup ./osterby /var/backups/osterby", cmd_backup)  # fmt: skip
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("dest", type=Path, metavar="DEST")


def main(argv: list[str]) -> int:
    """Run `klynge node ARGS` and return the exit code."""
    args = _parser().parse_args(argv)
    func: Command = args.func
    return run_guarded(lambda: func(args))


# --- commands -------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    """Create DIR with a new node.toml (refusing to overwrite one)."""
    name = clean_text(args.name)
    url = args.url.rstrip("/")
    if not name:
        raise ConfigError("--name must not be empty")
    if not is_http_url(url):
        raise ConfigError(
            f"--url {args.url!r} must be an http(s) URL, e.g. https://osterby.example.dk"
        )
    for agg in args.aggregator:
        if not is_http_url(agg):
            raise ConfigError(f"--aggregator {agg!r} must be an http(s) URL")
    try:
        zone(args.timezone)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    path = args.dir / CONFIG_NAME
    if path.exists():
        raise ConfigError(f"{path} already exists; this directory is already a node")
    args.dir.mkdir(parents=True, exist_ok=True)
    write_private(path, render_new_config(name, url, tuple(args.aggregator), args.timezone))
    print(f"created {path}")
    print(f"next: klynge node user add {args.dir} USERNAME --association NAME --admin")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the node until interrupted, holding the data directory's lock."""
    from node.app import create_app

    config = load_config(args.dir)
    return serve(args.dir, lambda: create_app(config), args.host, args.port, verbose=args.verbose)


def _open_store(directory: Path) -> Store:
    config = load_config(directory)
    return Store.open(config.db_path, config.clock)


def run_operation(directory: Path, name: str, params: dict[str, object]) -> Result:
    """Run an admin operation through the running node, or on the store when none runs."""
    from node.operations import run_direct  # lazily: it pulls in the auth module

    load_config(directory)  # a clear error for a directory that is not a node
    result = call(directory, name, params)
    if result is not None:
        return result
    with DataDirLock(directory):
        store = _open_store(directory)
        try:
            return run_direct(store, name, params)
        finally:
            store.close()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise ValidationError({"password": "The two passwords differ."})
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    """Add a user (refusing a taken name), through the node when it runs."""
    # Imported here: node.accounts pulls in aiohttp and the web layer, which made every
    # `klynge node` command start in 1.0 s instead of 0.2 s (python -X importtime).
    from node.accounts import check_user

    password = _read_password(args.password_stdin)
    errors = check_user(args.username, args.association, password)
    if errors:
        raise ValidationError(errors, "; ".join(errors.values()))
    params = {"username": args.username, "association": args.association,
              "password_hash": hash_password(password), "admin": args.admin}  # fmt: skip
    result = run_operation(args.dir, "user add", params)
    role = "admin" if args.admin else "user"
    print(f"added {role} {args.username} ({result['association']})")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    """Set a user's password and end its sessions, through the node when it runs."""
    from node.accounts import MIN_PASSWORD  # lazily: the web layer is slow to import

    password = _read_password(args.password_stdin)
    if len(password) < MIN_PASSWORD:
        raise ValidationError({"password": f"the password needs at least {MIN_PASSWORD} "
                               "characters"})  # fmt: skip
    params = {"username": args.username, "password_hash": hash_password(password)}
    run_operation(args.dir, "user passwd", params)
    print(f"changed the password of {args.username}; its sessions have ended")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    """Remove a user, its sessions and (revoking them) its tokens; entries stay published."""
    run_operation(args.dir, "user remove", {"username": args.username})
    print(f"removed {args.username}; its sessions have ended and its API tokens are revoked")
    return 0


def cmd_token_add(args: argparse.Namespace) -> int:
    """Make a token, store its hash, and print it once as the last line."""
    result = run_operation(args.dir, "token add", {"username": args.username})
    print(f"token id {result['id']} for {args.username}; it is shown only now:", file=sys.stderr)
    print(result["token"])
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    """Revoke a token by id (or by the token, or a prefix of it that includes the id)."""
    result = run_operation(args.dir, "token revoke", {"token": args.token})
    print(f"revoked token {result['id']} of {result['username']}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the node's database and settings (and its copy of the cluster's events) to DEST."""
    for path in backup_data_dir(args.dir, args.dest, files=(CLUSTER_COPY,)):
        print(path)
    return 0
