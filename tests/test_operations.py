"""Operations without downtime: admin commands reach the running services and act at once.

A real village node (a `klynge node serve` process, or the app on a loopback port), a real
cluster aggregator and a region aggregator above it; the commands are the real CLI, talking to
the running service over its control socket (klynge.control).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import io
import json
import os
import stat
import subprocess
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aggregator_support import FAST
from aiohttp import web
from aiohttp.test_utils import TestServer
from clock_support import service_env
from icalendar import Calendar
from node_support import KLYNGE, PASSWORD, make_node
from serve_support import serving
from test_aggregator_e2e import event_body, make_village
from test_node_pages import login

from aggregator import cli as agg_cli
from aggregator.app import create_app as create_aggregator
from aggregator.config import AggregatorConfig, Source, save_config
from aggregator.keys import REFRESHER
from klynge.atom.reader import read_feed
from klynge.control import SOCKET_NAME
from node.app import create_app

Serve = Callable[..., Awaitable[TestServer]]


def _klynge(args: list[str], stdin: str = "") -> str:
    done = subprocess.run([KLYNGE, *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env=service_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_an_association_added_while_the_node_runs_posts_at_once(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path)
    with serving([KLYNGE, "node", "serve", str(node_dir.path)], tmp_path / "node.log") as node:
        sock = node_dir.path / SOCKET_NAME
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        added = await asyncio.to_thread(
            _klynge, ["node", "user", "add", str(node_dir.path), "dora", "--association",
                      "Østerby Skole", "--password-stdin"], PASSWORD + "\n")  # fmt: skip
        assert "added user dora (Østerby Skole)" in added
        out = await asyncio.to_thread(_klynge, ["node", "token", "add", str(node_dir.path), "dora"])
        token = out.strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {token}"}
        body = {"title": "Skolefest", "start": "2026-12-18T17:00"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(f"{node.url}/api/events", json=body) as response:
                assert response.status == 201, await response.text()
                assert (await response.json())["organizer"] == "Østerby Skole"
            await asyncio.to_thread(_klynge, ["node", "token", "revoke", str(node_dir.path),
                                              token[:12]])  # fmt: skip
            async with session.get(f"{node.url}/api/events") as response:
                assert response.status == 401
                assert "revoked" in (await response.json())["error"]["detail"]["message"]
        # An error from the service is one line and a non-zero exit, as without it.
        done = subprocess.run([KLYNGE, "node", "user", "remove", str(node_dir.path), "nobody"],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 1 and done.stderr == "klynge: error: no user 'nobody'\n"
    assert not sock.exists()  # the stopped node took its socket away


def _agg(args: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = agg_cli.main(args)
    assert code == 0, err.getvalue()
    return out.getvalue()


async def _get(server: TestServer, path: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(server.make_url(path)) as resp:
        assert resp.status == 200, path
        return await resp.read()


async def _everywhere(server: TestServer) -> dict[str, set[str]]:
    """Return the titles on /, in /calendar.ics, /feed.atom and /api/events."""
    page = (await _get(server, "/")).decode()
    cal = Calendar.from_ical(await _get(server, "/calendar.ics"))
    feed = read_feed(await _get(server, "/feed.atom"))
    api = json.loads(await _get(server, "/api/events"))
    titles = {"Fællesspisning", "Loppemarked", "Juletræstænding"}
    return {
        "/": {t for t in titles if t in page},
        "/calendar.ics": {str(v["SUMMARY"]) for v in cal.walk("VEVENT")},
        "/feed.atom": {i.title for i in feed.items},
        "/api/events": {e["title"] for e in api["events"]},
    }


def _in_all(titles: set[str]) -> dict[str, set[str]]:
    return {path: set(titles) for path in ("/", "/calendar.ics", "/feed.atom", "/api/events")}


def _config(data: Path, name: str, sources: tuple[Source, ...] = ()) -> AggregatorConfig:
    data.mkdir()
    config = AggregatorConfig(data_dir=data, name=name, url="http://agg.example",
                              sources=sources, limits=FAST)  # fmt: skip
    save_config(config)
    return config


async def test_sources_and_moderation_while_the_aggregator_runs(
    tmp_path: Path,
    aiohttp_server: Serve,
    unused_tcp_port_factory: Callable[[], int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agg_port = unused_tcp_port_factory()
    cluster_url = f"http://127.0.0.1:{agg_port}"
    village = make_village("Østerby", tmp_path, unused_tcp_port_factory(), cluster_url,
                           capsys, monkeypatch, aiohttp_server)  # fmt: skip
    await village.start()
    made = {}
    for title, days in (("Fællesspisning", 3), ("Loppemarked", 5), ("Juletræstænding", 8)):
        made[title] = (await village.api("POST", "/api/events", event_body(title, days)))["id"]
    cluster_dir = tmp_path / "cluster"
    config = _config(cluster_dir, "Klynge Syd")
    cluster = await aiohttp_server(create_aggregator(config, periodic=False), port=agg_port)
    cluster_feed = f"http://127.0.0.1:{agg_port}/feed.atom"
    region = await aiohttp_server(create_aggregator(
        _config(tmp_path / "region", "Region", (Source(cluster_feed, "Syd", "aggregator"),)),
        periodic=False))  # fmt: skip

    async def region_titles() -> set[str]:
        await region.app[REFRESHER].refresh_all()
        return {i.title for i in read_feed(await _get(region, "/feed.atom")).items}

    # A source added while serving is fetched at once: its events are there, no restart.
    out = await asyncio.to_thread(_agg, ["source", "add", str(cluster_dir), village.feed_url,
                                         "--name", "Østerby"])  # fmt: skip
    assert "first fetch: 3 entries" in out
    all_three = set(made)
    assert await _everywhere(cluster) == _in_all(all_three)
    on_disk = tomllib.loads((cluster_dir / "aggregator.toml").read_text())
    assert [s["url"] for s in on_disk["sources"]] == [village.feed_url]  # a restart keeps it
    assert await region_titles() == all_three
    listed = await asyncio.to_thread(_agg, ["source", "list", str(cluster_dir)])
    assert village.feed_url in listed and "Østerby" in listed

    # A hidden entry leaves every output, here and in the region above; /status says why.
    hidden = made["Loppemarked"]
    out = await asyncio.to_thread(_agg, ["hide", str(cluster_dir), hidden,
                                         "--reason", "Dobbeltopslag"])  # fmt: skip
    assert f"Hid urn:uuid:{hidden} (Loppemarked); /status lists it with the reason." in out
    rest = all_three - {"Loppemarked"}
    assert await _everywhere(cluster) == _in_all(rest)
    status = (await _get(cluster, "/status")).decode()
    assert f"urn:uuid:{hidden}</code>: Dobbeltopslag" in status
    assert await region_titles() == rest
    await asyncio.to_thread(_agg, ["unhide", str(cluster_dir), f"urn:uuid:{hidden}"])
    assert (await _everywhere(cluster))["/api/events"] == all_three
    assert f"urn:uuid:{hidden}" not in (await _get(cluster, "/status")).decode()

    # A paused source: not fetched, its entries left out, the reason on /status.
    await asyncio.to_thread(_agg, ["pause", str(cluster_dir), village.feed_url,
                                   "--reason", "Spam fra en overtaget konto"])  # fmt: skip
    assert (await _everywhere(cluster))["/api/events"] == set()
    assert "Spam fra en overtaget konto" in (await _get(cluster, "/status")).decode()
    out = await asyncio.to_thread(_agg, ["moderation", str(cluster_dir)])
    assert out.startswith(f"paused  {village.feed_url}") and "Spam" in out
    await asyncio.to_thread(_agg, ["unpause", str(cluster_dir), village.feed_url])
    assert (await _everywhere(cluster))["/api/events"] == all_three

    # A removed source's entries leave the outputs; the config forgets it.
    out = await asyncio.to_thread(_agg, ["source", "remove", str(cluster_dir), village.feed_url])
    assert "Removed" in out
    assert await _everywhere(cluster) == _in_all(set())
    assert "sources" not in tomllib.loads((cluster_dir / "aggregator.toml").read_text())
    await village.stop()


def test_commands_work_on_a_stopped_aggregator(tmp_path: Path) -> None:
    data = tmp_path / "agg"
    _config(data, "Klynge Syd")
    url = "https://osterby.example.dk/feed.atom"
    assert "polled from the next start" in _agg(["source", "add", str(data), url])
    _agg(["pause", str(data), url, "--reason", "ferie"])
    _agg(["hide", str(data), "2f1c6b1e-7c43-4d0b-9a57-3c1f0e8d9b21", "--reason", "spam"])
    out = _agg(["moderation", str(data)])
    assert "hidden  urn:uuid:2f1c6b1e-7c43-4d0b-9a57-3c1f0e8d9b21" in out and "ferie" in out
    assert "(paused: ferie)" in _agg(["source", "list", str(data)])
    code = agg_cli.main(["hide", str(data), "not-an-id", "--reason", "x"])
    assert code == 1


# --- secrets and logs ---------------------------------------------------------------------


def test_files_holding_secrets_are_private_and_a_too_open_one_is_fixed(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path)
    for name in ("node.toml", "node.json"):
        assert stat.S_IMODE((node_dir.path / name).stat().st_mode) == 0o600, name
    config = node_dir.path / "node.toml"
    config.chmod(0o644)
    args = [KLYNGE, "node", "token", "add", str(node_dir.path), "bo"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=service_env())
    assert done.returncode == 0, done.stderr
    warning = f"{config} holds secrets but other users could read it (mode 0644); it is now 0600"
    assert warning in done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_the_aggregator_logs_no_line_per_source(tmp_path: Path, verbose: bool) -> None:
    data = tmp_path / "agg"
    sources = tuple(Source(f"http://127.0.0.1:9/v{n}.atom") for n in range(20))
    _config(data, "Klynge Syd", sources)
    args = [KLYNGE, "aggregator", "serve", str(data), *(["--verbose"] if verbose else [])]
    with serving(args, tmp_path / "agg.log") as served:
        _klynge(["aggregator", "source", "list", str(data)])
        lines = served.output().splitlines()
    scheduler_lines = [line for line in lines if "apscheduler" in line]
    if verbose:
        assert len(scheduler_lines) >= 20  # its own INFO lines are there on request
    else:
        assert scheduler_lines == []
        assert [line for line in lines if " INFO " in line] == []  # nothing happened yet
        assert any(line.startswith("Serving on http://127.0.0.1:") for line in lines)


# --- the village sees its cluster ---------------------------------------------------------


async def test_the_node_status_page_shows_how_the_cluster_reads_its_feed(
    tmp_path: Path, aiohttp_server: Serve, aiohttp_client: Callable[..., Awaitable[Any]]
) -> None:
    # The village's feed, with entries the aggregator finds wrong (tests/data/problems.atom).
    feed = (Path(__file__).parent / "data" / "problems.atom").read_bytes()

    async def serve_feed(_request: web.Request) -> web.Response:
        return web.Response(body=feed, content_type="application/atom+xml")

    village_app = web.Application()
    village_app.router.add_get("/feed.atom", serve_feed)
    village = await aiohttp_server(village_app)
    village_url = str(village.make_url("")).rstrip("/")
    cluster = await aiohttp_server(create_aggregator(
        _config(tmp_path / "cluster", "Klynge Syd", (Source(f"{village_url}/feed.atom"),)),
        periodic=False))  # fmt: skip
    await cluster.app[REFRESHER].refresh_all()
    cluster_url = str(cluster.make_url("")).rstrip("/")
    node_dir = make_node(tmp_path, aggregators=(cluster_url, "http://127.0.0.1:9"))
    config = dataclasses.replace(node_dir.config(), public_url=village_url)
    client = await aiohttp_client(create_app(config, housekeeping=False))
    assert await login(client, "anna") == 303
    page = html.unescape(await (await client.get("/admin/status?lang=en")).text())
    [ours, gone] = page.split("How the cluster reads our feed")[1].split("<tr><td>")[1:3]
    assert f'<a href="{cluster_url}/status">' in ours and "<td>Yes</td>" in ours
    assert "<time datetime=" in ours  # when it last fetched the feed
    # The problem the aggregator found, in its words.
    assert "entry urn:uuid:aaaaaaaa-0000-4000-8000-000000000002 (end)" in ours
    assert "http://127.0.0.1:9" in gone and "error-text" in gone  # unreachable, in words
