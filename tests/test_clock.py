"""The services' one clock: KLYNGE_NOW starts a real `serve` process at a chosen instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from clock_support import HOSTILE_NOWS, service_env, utc_now
from node_support import KLYNGE, auth, make_node
from serve_support import start_serving, stop_process

from klynge.clock import ENV_NOW, Clock, clock_from_env
from klynge.errors import ConfigError


def test_system_clock_by_default_and_a_shifted_one_runs_on() -> None:
    assert clock_from_env({}) == Clock()
    leap = HOSTILE_NOWS["leap-day"]
    clock = clock_from_env({ENV_NOW: leap.isoformat()})
    assert abs(clock.now() - leap) <= timedelta(seconds=1)
    assert clock.today(leap.tzinfo) == leap.date()  # type: ignore[arg-type]
    assert clock.now().tzinfo is UTC


@pytest.mark.parametrize("text", ["tomorrow", "2027-03-28T01:30", "0001-01-01T00:00+00:00"])
def test_a_bad_klynge_now_is_refused_in_words(text: str) -> None:
    with pytest.raises(ConfigError, match=r"KLYNGE_NOW=.* must be a time with an offset"):
        clock_from_env({ENV_NOW: text})


async def test_a_node_started_at_a_chosen_instant_stamps_its_entries_then(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path)
    moment = HOSTILE_NOWS["dst-autumn-before"]
    env = service_env(**{ENV_NOW: moment.isoformat()})
    served = start_serving([KLYNGE, "node", "serve", str(node_dir.path)], tmp_path / "log", env)
    try:
        event = {"title": "Høstfest", "start": "2027-11-06T18:00"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{served.url}/api/events", json=event, headers=auth(node_dir.token)
            ) as response,
        ):
            assert response.status == 201, await response.text()
            created = datetime.fromisoformat((await response.json())["created"])
    finally:
        stop_process(served.proc)
    assert moment <= created <= moment + timedelta(minutes=2)
    assert abs(utc_now() - created) > timedelta(days=300)  # not the suite's own "now"
