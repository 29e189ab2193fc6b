"""The control socket (klynge.control): bounded JSON requests, errors as messages."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klynge import control
from klynge.control import ControlError, ControlServer, Params, request
from klynge.errors import NotFound
from klynge.messages import Message

PING = control.UNKNOWN  # any code with one parameter; the test must not define codes of its own


async def _echo(params: Params) -> dict[str, Any]:
    return {"echo": dict(params)}


async def _missing(params: Params) -> dict[str, Any]:
    raise NotFound(Message(PING, {"command": str(params.get("name"))}))


async def _broken(_params: Params) -> dict[str, Any]:
    raise RuntimeError("a bug")


HANDLERS = {"echo": _echo, "missing": _missing, "broken": _broken}


async def _raw(path: Path, data: bytes) -> Any:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
    writer.write(data)
    await writer.drain()
    line = await reader.readline()
    writer.close()
    return json.loads(line)


async def test_commands_answers_and_errors(tmp_path: Path) -> None:
    server = ControlServer(tmp_path, HANDLERS)
    await server.start()
    try:
        sock = tmp_path / control.SOCKET_NAME
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_ISSOCK(sock.stat().st_mode)
        assert await request(tmp_path, "echo", {"a": "æ"}, 5) == {"echo": {"a": "æ"}}
        with pytest.raises(ControlError, match=r"^The service knows no command bo\.$") as caught:
            await request(tmp_path, "missing", {"name": "bo"}, 5)
        assert caught.value.detail == Message(PING, {"command": "bo"})  # code and params
        with pytest.raises(ControlError, match="could not run broken: RuntimeError: a bug"):
            await request(tmp_path, "broken", {}, 5)
        with pytest.raises(ControlError, match="knows no command nothing"):
            await request(tmp_path, "nothing", {}, 5)
        answer = await _raw(sock, b"not json\n")
        assert answer["ok"] is False and answer["error"]["code"] == "bad_request"
        answer = await _raw(sock, b'{"command": "echo", "params": [1]}\n')
        assert answer["error"]["code"] == "bad_request"
        answer = await _raw(sock, b"x" * (control.MAX_REQUEST + 10) + b"\n")
        assert answer["error"]["code"] == "too_large"
    finally:
        await server.close()
    assert not (tmp_path / control.SOCKET_NAME).exists()
    assert await request(tmp_path, "echo", {}, 5) is None  # no service: the caller acts itself


async def test_a_socket_left_by_a_killed_service_means_no_service(tmp_path: Path) -> None:
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(tmp_path / control.SOCKET_NAME))
    left.close()  # bound, never listening, not removed: what kill -9 leaves
    assert await request(tmp_path, "echo", {}, 5) is None
    server = ControlServer(tmp_path, HANDLERS)
    await server.start()  # and a new service replaces it
    try:
        assert await request(tmp_path, "echo", {"n": 1}, 5) == {"echo": {"n": 1}}
    finally:
        await server.close()


async def test_a_data_directory_with_a_long_path_works(tmp_path: Path) -> None:
    deep = tmp_path / ("a-long-folder-name-" * 6) / "osterby"
    deep.mkdir(parents=True)
    assert len(os.fsencode(deep / control.SOCKET_NAME)) > 108  # sun_path's size
    server = ControlServer(deep, HANDLERS)
    await server.start()
    try:
        assert await request(deep, "echo", {"x": 1}, 5) == {"echo": {"x": 1}}
    finally:
        await server.close()


async def test_a_service_that_does_not_answer_is_named(tmp_path: Path) -> None:
    async def slow(_params: Params) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {}

    server = ControlServer(tmp_path, {"slow": slow})
    await server.start()
    try:
        with pytest.raises(ControlError, match=r"did not answer in 0\.2 seconds"):
            await request(tmp_path, "slow", {}, 0.2)
    finally:
        await server.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
async def test_any_request_gets_a_json_answer(tmp_path: Path, data: bytes) -> None:
    server = ControlServer(tmp_path, HANDLERS)
    await server.start()
    try:
        answer = await _raw(tmp_path / control.SOCKET_NAME, data.replace(b"\n", b" ") + b"\n")
        assert isinstance(answer, dict) and answer["ok"] in (True, False)
    finally:
        await server.close()
