"""Helpers for the village node tests: make a data directory with users and tokens via the CLI."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from clock_support import service_env

from node.app import create_app
from node.cli import main as node_main
from node.config import NodeConfig, load_config

PASSWORD = "a long password 1"
PUBLIC_URL = "https://osterby.example.dk"
KLYNGE = str(Path(sys.executable).with_name("klynge"))


def cli(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """Run `klynge node ARGV` in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = node_main(argv)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def ok(argv: list[str], stdin: str = "") -> str:
    """Run a node command that must succeed; return its stdout."""
    code, out, err = cli(argv, stdin)
    assert code == 0, err
    return out


@dataclass(frozen=True)
class NodeDir:
    """A node data directory with two associations' users and their tokens."""

    path: Path
    admin_token: str  # anna, admin, Østerby Forsamlingshus
    token: str  # bo, Østerby IF
    other_token: str  # carl, Østerby Kirke

    def config(self, **tunables: Any) -> NodeConfig:
        """Load the config with quick pings for tests."""
        base = replace(load_config(self.path, env={}), ping_backoff=0.05)
        return replace(base, **tunables)


def make_node(root: Path, aggregators: tuple[str, ...] = ()) -> NodeDir:
    """Create a node with users anna (admin), bo and carl, each with an API token."""
    path = root / "osterby"
    agg = [a for url in aggregators for a in ("--aggregator", url)]
    ok(["init", str(path), "--name", "Østerby", "--url", PUBLIC_URL, *agg])
    users = (("anna", "Østerby Forsamlingshus", True), ("bo", "Østerby IF", False))
    users += (("carl", "Østerby Kirke", False),)
    tokens = []
    for name, association, admin in users:
        flags = ["--admin"] if admin else []
        ok(["user", "add", str(path), name, "--association", association, "--password-stdin",
            *flags], stdin=PASSWORD + "\n")  # fmt: skip
        tokens.append(ok(["token", "add", str(path), name]).strip().splitlines()[-1])
    return NodeDir(path, *tokens)


def auth(token: str) -> dict[str, str]:
    """Return the Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def feed_check(data: bytes, tmp: Path) -> str:
    """Run `klynge feed check` on feed bytes in a subprocess; return its output (must pass)."""
    path = tmp / "feed.atom"
    path.write_bytes(data)
    done = subprocess.run(
        [KLYNGE, "feed", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=service_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


Client = TestClient[Any, Any]
ClientFactory = Callable[..., Coroutine[Any, Any, Client]]


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    """A node data directory with three users and their tokens (see make_node)."""
    return make_node(tmp_path)


@pytest.fixture
async def client(node_dir: NodeDir, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    """The real node app over `node_dir`, without the housekeeping scheduler."""
    yield await aiohttp_client(create_app(node_dir.config(), housekeeping=False))
