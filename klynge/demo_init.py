"""The demo's data directories, made in-process by the real `klynge` commands.

Each `klynge node init`, `user add`, `token add` and `aggregator source add` used to run in its
own Python process: 13 start-ups, 4-5 s each on an emulated arm64 (issue 18). Here the same
command lines run through `klynge.cli.main` in the demo's own process, so a first start pays
for the imports once.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from typing import Protocol

from klynge.demo_data import DEMO_PASSWORD, DemoVillage
from klynge.errors import KlyngeError
from klynge.messages import Message, define

COMMAND_FAILED = define("demo.command_failed", "`klynge %(command)s` failed: %(error)s")
CLUSTER_NAME = "Klynge Midtå"


class Place(Protocol):
    """What seeding needs of a demo service: its folder and its base URL."""

    @property
    def url(self) -> str: ...

    @property
    def data_dir(self) -> object: ...


def klynge(*args: str, stdin: str = "") -> str:
    """Run a `klynge` command in this process and return its stdout, or raise in words."""
    from klynge.cli import main  # lazily: klynge.cli imports this module's caller

    out, err, saved = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
    finally:
        sys.stdin = saved
    if code != 0:
        error = err.getvalue().strip().removeprefix("klynge: error: ") or f"exit status {code}"
        raise KlyngeError(Message(COMMAND_FAILED, {"command": " ".join(args[:3]), "error": error}))
    return out.getvalue()


def init_node(svc: Place, village: DemoVillage, aggregator: Place) -> str:
    """Create a village node's data directory, its association login and an API token."""
    folder = str(svc.data_dir)
    klynge("node", "init", folder, "--name", village.name, "--url", svc.url,
           "--aggregator", aggregator.url)  # fmt: skip
    password = DEMO_PASSWORD + "\n"
    klynge("node", "user", "add", folder, village.username, "--association",
           village.association, "--admin", "--password-stdin", stdin=password)  # fmt: skip
    return klynge("node", "token", "add", folder, village.username).strip().split()[-1]


def init_aggregator(svc: Place, nodes: Sequence[tuple[Place, DemoVillage]]) -> None:
    """Create the aggregator's data directory with the villages' feeds as its sources."""
    folder = str(svc.data_dir)
    klynge("aggregator", "init", folder, "--name", CLUSTER_NAME, "--url", svc.url)
    for node, village in nodes:
        klynge("aggregator", "source", "add", folder, f"{node.url}/feed.atom",
               "--name", village.name, "--kind", "node")  # fmt: skip
