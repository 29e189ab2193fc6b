"""The node's cluster copy against hostile answers, its file, its schedule and `[clash]`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from patience import eventually

from klynge.errors import ConfigError
from node.cluster.copy import COPY_NOT_JSON, ClusterCopy
from node.cluster.events import events_of
from node.config import ClashRules, NodeConfig, config_from_dict

SECRET = "s" * 40
ROW = {"id": "urn:uuid:flea", "title": "Loppemarked", "village": "Vesterby",
       "start": "2026-12-05T10:00:00+01:00", "end": "2026-12-05T15:00:00+01:00",
       "all_day": False, "category": "market", "status": "confirmed"}  # fmt: skip
ServerFactory = Callable[..., Awaitable[TestServer]]


def config(tmp_path: Path, aggregator: str, **clash: Any) -> NodeConfig:
    raw = {"name": "Østerby", "url": "http://osterby.test", "secret_key": SECRET,
           "aggregators": [aggregator], "clash": clash}  # fmt: skip
    return config_from_dict(tmp_path, raw)


class Stand:
    """A loopback stand-in for an aggregator's /api/events: each test sets its answer."""

    def __init__(self) -> None:
        self.body = json.dumps({"events": [ROW]}).encode()
        self.status = 200
        self.etag = '"v1"'
        self.asked: list[str] = []
        self.answer = asyncio.Event()  # cleared: every answer waits until it is set
        self.answer.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.asked.append(request.headers.get("If-None-Match", ""))
        await self.answer.wait()
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304, headers={"ETag": self.etag})
        return web.Response(status=self.status, body=self.body, headers={"ETag": self.etag},
                            content_type="application/json")  # fmt: skip


@pytest.fixture
async def stand(aiohttp_server: ServerFactory) -> tuple[Stand, str]:
    found = Stand()
    app = web.Application()
    app.router.add_get("/api/events", found.handle)
    server = await aiohttp_server(app)
    return found, str(server.make_url("")).rstrip("/")


async def test_a_second_fetch_is_conditional_and_keeps_the_copy(
    tmp_path: Path, stand: tuple[Stand, str]
) -> None:
    server, url = stand
    copy = ClusterCopy(config(tmp_path, url))
    await copy.refresh()
    await copy.refresh()
    assert server.asked == ["", '"v1"']
    assert [e.title for e in copy.events()] == ["Loppemarked"] and not copy.failing()
    await copy.close()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"status": 500}, "HTTP 500"),
        ({"body": b"<html>not json</html>"}, "not the JSON"),
        ({"body": b'{"events": 5}'}, None),  # read as no events: not a list
        ({"body": b"x" * 5_000_000}, "larger than"),
    ],
    ids=["500", "html", "events-not-a-list", "too-large"],
)
async def test_a_bad_answer_keeps_the_last_copy_and_says_so(
    tmp_path: Path, stand: tuple[Stand, str], change: dict[str, Any], problem: str | None
) -> None:
    server, url = stand
    copy = ClusterCopy(config(tmp_path, url))
    await copy.refresh()
    first_fetch = copy.fetched()
    server.etag = '"v2"'
    for key, value in change.items():
        setattr(server, key, value)
    await copy.refresh()
    await copy.close()
    [part] = copy.parts.values()
    if problem is None:
        assert part.error is None and copy.events() == []
        return
    assert part.error is not None and problem in part.error.english()
    assert [e.title for e in copy.events()] == ["Loppemarked"]  # the last good copy
    assert copy.fetched() == first_fetch and copy.failing()


async def test_not_json_is_a_message_with_a_code(tmp_path: Path, stand: tuple[Stand, str]) -> None:
    server, url = stand
    server.body = b"nope"
    copy = ClusterCopy(config(tmp_path, url))
    await copy.refresh()
    [part] = copy.parts.values()
    assert part.error is not None and part.error.code == COPY_NOT_JSON
    await copy.close()


async def test_the_schedule_fetches_at_start(tmp_path: Path, stand: tuple[Stand, str]) -> None:
    server, url = stand
    copy = ClusterCopy(config(tmp_path, url, refresh_minutes=1))
    copy.start()
    for _ in range(200):
        if copy.fetches:
            break
        await asyncio.sleep(0.02)
    assert copy.fetches == 1 and len(server.asked) == 1
    await copy.close()


async def test_a_burst_of_pings_brings_one_fetch_once_they_are_quiet(
    tmp_path: Path, stand: tuple[Stand, str]
) -> None:
    server, url = stand
    copy = ClusterCopy(config(tmp_path, url))
    copy.quiet = 0.3
    for _ in range(5):  # five edits pinged one after another
        copy.after_ping()
        await asyncio.sleep(0)
    assert server.asked == []  # nothing is fetched while the burst may go on
    await copy.idle()
    assert copy.fetches == 1 and len(server.asked) == 1
    copy.after_ping()  # a later edit: a fetch of its own
    await copy.idle()
    assert copy.fetches == 2 and len(server.asked) == 2
    await copy.close()


async def test_a_ping_during_a_fetch_brings_one_more_fetch_after_it(
    tmp_path: Path, stand: tuple[Stand, str]
) -> None:
    server, url = stand
    copy = ClusterCopy(config(tmp_path, url))
    copy.quiet = 0.05
    server.answer.clear()
    copy.refresh_soon()  # e.g. a form found the copy old: the fetch hangs

    async def asked() -> bool:
        return bool(server.asked)

    await eventually(asked, limit=2)
    for _ in range(3):  # our pings meanwhile: that fetch may have read the cluster before them
        copy.after_ping()
    await asyncio.sleep(0.2)
    assert len(server.asked) == 1  # the burst's fetch waits for the one under way
    server.answer.set()
    await copy.idle()
    assert copy.fetches == 2 and len(server.asked) == 2
    await copy.close()


async def test_an_unreachable_aggregator_leaves_an_empty_copy(tmp_path: Path) -> None:
    copy = ClusterCopy(config(tmp_path, "http://127.0.0.1:9"))  # discard port: refused
    await copy.refresh()
    assert copy.events() == [] and copy.fetched() is None and copy.failing()
    await copy.close()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=30,
)
ROWS = st.lists(st.fixed_dictionaries({}, optional={k: JSON | st.just(v) for k, v in ROW.items()}))


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_any_json_is_read_without_raising(value: Any) -> None:
    events_of(value)


@settings(max_examples=150, deadline=None)
@given(ROWS)
def test_rows_near_the_real_shape_are_read_or_left_out(rows: list[Any]) -> None:
    for event in events_of(rows):
        assert event.id and event.status in ("confirmed", "cancelled", "postponed", "tentative")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300) | JSON.map(lambda v: json.dumps({"aggregators": v}).encode()))
def test_any_file_is_loaded_without_raising(tmp_path_factory: Any, data: bytes) -> None:
    folder = tmp_path_factory.mktemp("copy")
    (folder / "cluster.json").write_bytes(data)
    ClusterCopy(config(folder, "http://127.0.0.1:9")).load()


@pytest.mark.parametrize(
    "clash",
    [
        {"travel_minutes": -1}, {"travel_minutes": "30"}, {"travel_minutes": True},
        {"max_shown": 0}, {"max_shown": 2.5}, {"horizon_days": 10_000}, {"speed": 1},
    ],
)  # fmt: skip
def test_bad_clash_settings_are_refused_in_words(tmp_path: Path, clash: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"\[clash\]"):
        config(tmp_path, "http://a.test", **clash)


def test_clash_settings_are_read(tmp_path: Path) -> None:
    rules = config(tmp_path, "http://a.test", travel_minutes=45, assumed_hours=1.5).clash
    assert rules == ClashRules(travel_minutes=45, assumed_hours=1.5)
    raw = {"name": "Ø", "url": "http://o.test", "secret_key": SECRET, "clash": "fast"}
    with pytest.raises(ConfigError, match="table"):
        config_from_dict(tmp_path, raw)
