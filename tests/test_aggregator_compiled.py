"""Compiled templates are kept in the data directory: a start loads them instead of compiling.

Compiling every template took about 0.4 s of a 50,000-entry start (py-spy), competing with the
loading for the GIL; on a Pi it is several times that.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aggregator_support import config_for

from aggregator.app import COMPILED, create_app
from klynge.web import WEB_STATE


async def _start_counting_compiles(aiohttp_client: Any, tmp_path: Path) -> tuple[Any, list[str]]:
    """Start an aggregator whose template environment counts what it compiles."""
    app = create_app(config_for(tmp_path, []), periodic=False)
    env = app[WEB_STATE].env
    compiled: list[str] = []
    original = env.compile

    def counting(source: str, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        compiled.append(name or "")
        return original(source, name, *args, **kwargs)

    env.compile = counting  # type: ignore[method-assign]
    return await aiohttp_client(app), compiled


async def test_a_second_start_loads_the_compiled_templates(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    client, compiled = await _start_counting_compiles(aiohttp_client, tmp_path)
    assert (await client.get("/")).status == 200
    await client.close()  # the warm-up has compiled every template by now
    assert "home.html" in compiled and len(compiled) >= 10
    kept = list((config_for(tmp_path, []).data_dir / COMPILED).iterdir())
    assert len(kept) == len(set(compiled))
    client, compiled = await _start_counting_compiles(aiohttp_client, tmp_path)
    page = await client.get("/")
    assert page.status == 200 and "Klynge Syd" in await page.text()
    await client.close()
    assert compiled == []


async def test_a_data_directory_without_room_for_them_compiles_at_each_start(
    tmp_path: Path, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (config_for(tmp_path, []).data_dir / COMPILED).write_text("a file, not a directory")
    caplog.set_level(logging.WARNING, logger="klynge.web")
    client, compiled = await _start_counting_compiles(aiohttp_client, tmp_path)
    assert (await client.get("/")).status == 200
    await client.close()
    assert "home.html" in compiled
    assert "compiled templates are not kept" in caplog.text
