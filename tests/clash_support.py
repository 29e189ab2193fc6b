"""A real cluster on loopback for the clash tests: village nodes pinging one aggregator.

Nodes are made with their own CLI (`klynge node init`, `user add`, `token add`) in tmp_path,
served in the test's event loop on bound sockets, and given `[clash] fresh_seconds = 0` so a
form always asks for a fresh cluster copy. A village may be left out of the aggregator's
sources: it stands for a village of another cluster.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from patience import eventually as eventually  # re-exported

from aggregator.app import create_app as create_aggregator
from aggregator.config import AggregatorConfig, Limits, Source
from node.app import create_app as create_node
from node.cli import main as node_cli
from node.cluster.web import COPY
from node.config import load_config

PASSWORD = "en god adgangskode 42"
LIMITS = Limits(connect_timeout=2, total_timeout=5, jitter=0)


@dataclass
class Village:
    """A running village node."""

    name: str
    data_dir: Path
    base: str
    token: str = ""
    runner: web.AppRunner | None = None
    app: web.Application | None = None

    def url(self, path: str) -> str:
        """Return the absolute URL of `path` on this node."""
        return self.base + path


@dataclass
class Cluster:
    """Running villages and one aggregator (sources: every village but the outsiders)."""

    villages: dict[str, Village]
    aggregator: str
    agg_runner: web.AppRunner | None = None
    agg_sock: socket.socket | None = None
    agg_config: AggregatorConfig | None = None
    runners: list[web.AppRunner] = field(default_factory=list)

    async def api(self, name: str, method: str, path: str, body: Any = None) -> Any:
        """Call a village's JSON API as its editor; return the JSON answer (asserting < 300)."""
        village = self.villages[name]
        headers = {"Authorization": f"Bearer {village.token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, village.url(path), json=body, headers=headers) as resp,
        ):
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def agg_json(self, path: str) -> Any:
        """GET a JSON document from the aggregator."""
        async with aiohttp.ClientSession() as session, session.get(self.aggregator + path) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def agg_text(self, path: str) -> tuple[int, str]:
        """GET a page from the aggregator; return its status and text."""
        async with aiohttp.ClientSession() as session, session.get(self.aggregator + path) as r:
            return r.status, await r.text()

    async def refresh_copy(self, name: str) -> None:
        """Fetch the village's cluster copy now (as its schedule would)."""
        app = self.villages[name].app
        assert app is not None
        await app[COPY].refresh()

    async def stop_aggregator(self) -> None:
        """Stop the aggregator (its port then refuses connections)."""
        assert self.agg_runner is not None
        await self.agg_runner.cleanup()
        self.runners.remove(self.agg_runner)
        self.agg_runner = None


def cli(argv: list[str], stdin: str = "") -> str:
    """Run `klynge node ARGV` in-process and return its stdout."""
    out, err = io.StringIO(), io.StringIO()
    old_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = node_cli(argv)
    finally:
        sys.stdin = old_stdin
    assert code == 0, err.getvalue()
    return out.getvalue()


def bound_socket() -> socket.socket:
    """Return a listening loopback socket on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def base_of(sock: socket.socket) -> str:
    """Return the loopback URL of a bound socket."""
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def make_village(root: Path, name: str, base: str, aggregator: str) -> Village:
    """Create a node data directory with an editor `bo` (with a token) of "Lokalrådet"."""
    data = root / name.lower()
    cli(["init", str(data), "--name", name, "--url", base, "--aggregator", aggregator])
    with (data / "node.toml").open("a", encoding="utf-8") as f:
        f.write("\n[clash]\nfresh_seconds = 0\n")
    argv = ["user", "add", str(data), "bo", "--association", f"Lokalrådet {name}"]
    cli([*argv, "--password-stdin"], stdin=PASSWORD + "\n")
    token = cli(["token", "add", str(data), "bo"]).strip().splitlines()[-1]
    return Village(name, data, base, token)


async def serve(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serve `app` on a bound socket."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


@contextlib.asynccontextmanager
async def running_cluster(
    root: Path, names: tuple[str, ...], outsiders: tuple[str, ...] = ()
) -> AsyncIterator[Cluster]:
    """Run village nodes (outsiders are not sources of the aggregator) and one aggregator."""
    agg_sock = bound_socket()
    socks = {name: bound_socket() for name in (*names, *outsiders)}
    villages = {n: make_village(root, n, base_of(s), base_of(agg_sock)) for n, s in socks.items()}
    agg_data = root / "aggregator"
    agg_data.mkdir()
    config = AggregatorConfig(
        data_dir=agg_data,
        name="Klynge Syd",
        url=base_of(agg_sock),
        sources=tuple(Source(villages[n].url("/feed.atom"), n) for n in names),
        limits=LIMITS,
    )
    cluster = Cluster(villages, base_of(agg_sock), agg_sock=agg_sock, agg_config=config)
    try:
        cluster.agg_runner = await serve(create_aggregator(config, periodic=False), agg_sock)
        cluster.runners.append(cluster.agg_runner)
        for name, village in villages.items():
            app = create_node(load_config(village.data_dir, env={}), housekeeping=False)
            village.app = app
            village.runner = await serve(app, socks[name])
            cluster.runners.append(village.runner)
        yield cluster
    finally:
        for runner in reversed(cluster.runners):
            await runner.cleanup()
