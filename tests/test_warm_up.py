"""The aggregator compiles its templates off the event loop at start (aggregator.web.pages)."""

from __future__ import annotations

from pathlib import Path

from aggregator_support import config_for

from aggregator.app import create_app
from aggregator.web.pages import warm_up
from klynge.web import WEB_STATE


def test_warm_up_compiles_every_page_template(tmp_path: Path) -> None:
    state = create_app(config_for(tmp_path, []))[WEB_STATE]
    names = state.env.list_templates(extensions=["html"])
    assert "home.html" in names and "calendar.html" in names
    assert state.env.cache is not None and len(state.env.cache) == 0
    warm_up(state)
    compiled = {key[1] for key in state.env.cache}
    assert set(names) <= compiled
