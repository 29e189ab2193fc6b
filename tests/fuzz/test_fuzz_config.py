"""Fuzzing the settings files: random TOML (and bytes) written to a real file in tmp_path.

Property: `load_config` of the node and of the aggregator, and `klynge.config.read_toml`,
return a config or raise ConfigError with a message, within the time bound, never anything else.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import budget, hard_limit, hostile_text
from hypothesis import event, example, given
from hypothesis import strategies as st

from aggregator import config as aggregator_config
from klynge.config import read_toml
from klynge.errors import ConfigError
from node import config as node_config

pytestmark = pytest.mark.fuzz

_SCALARS = st.one_of(
    hostile_text(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
_URLS = st.sampled_from(["https://osterby.example.dk", "http://127.0.0.1:8081/", "ftp://x",
                         "https://", "javascript:alert(1)", " https://a.example ", ""])  # fmt: skip
_TEXT = st.one_of(st.just("Østerby"), hostile_text())
_SECRET = st.sampled_from(["x" * 32, "x" * 31, "", "  " + "y" * 40 + "  "])


def _mostly(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, value, value, _VALUES)


_PLACE = st.fixed_dictionaries(
    {"name": _mostly(_TEXT)},
    optional={"street": _mostly(_TEXT), "lat": _mostly(st.floats()), "lon": _mostly(st.floats()),
              "postcode": _mostly(_TEXT), "floor": _VALUES},
)  # fmt: skip
NODE = st.fixed_dictionaries(
    {"name": _mostly(_TEXT), "url": _mostly(_URLS), "secret_key": _mostly(_SECRET)},
    optional={
        "timezone": _mostly(st.sampled_from(["Europe/Copenhagen", "UTC", "Europe/Atlantis", ""])),
        "aggregators": _mostly(st.one_of(st.lists(_URLS, max_size=3), _URLS)),
        "feed_id": _mostly(_TEXT),
        "places": _mostly(st.lists(_PLACE, max_size=3)),
        "extra": _VALUES,
    },
)
_SOURCE = st.fixed_dictionaries(
    {"url": _mostly(_URLS)},
    optional={"name": _mostly(_TEXT), "kind": _mostly(st.sampled_from(["node", "ics", "x"]))},
)
_NUMBER = st.one_of(st.integers(-5, 10**12), st.floats(), st.booleans(), hostile_text(10))
LIMITS = ["connect_timeout", "total_timeout", "max_compressed", "max_decompressed",
          "max_redirects", "max_backoff_hours", "stale_after_hours", "ping_interval", "jitter",
          "x"]  # fmt: skip
LIMITS = ["connect_timeout", "total_timeout", "max_compressed", "max_decompressed",
          "max_redirects", "max_backoff_hours", "stale_after_hours", "ping_interval", "jitter",
          "x"]  # fmt: skip
AGGREGATOR = st.fixed_dictionaries(
    {"name": _mostly(_TEXT), "url": _mostly(_URLS)},
    optional={
        "poll_minutes": _mostly(_NUMBER),
        "timezone": _mostly(st.sampled_from(["Europe/Copenhagen", "UTC", "Europe/Atlantis"])),
        "sources": _mostly(st.lists(_SOURCE, max_size=3)),
        "limits": _mostly(st.dictionaries(st.sampled_from(LIMITS), _NUMBER)),
    },
)


def toml_value(value: Any) -> str:
    """Return a TOML literal for a generated value (inline tables for nested mappings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string (surrogates escaped)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(mapping: dict[str, Any]) -> str:
    """Return a TOML document: scalars first, then [[tables]] for lists of mappings."""
    lines, tables = [], []
    for key, value in mapping.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                tables += ["", f"[[{key}]]"] + [
                    f"{json.dumps(k)} = {toml_value(v)}" for k, v in item.items()
                ]
        else:
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


def toml_bytes(mapping: dict[str, Any]) -> bytes:
    return toml_document(mapping).encode("utf-8", "surrogatepass")


RAW = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"name = ", b'name = "\\ud800"', b"[[places]]\n[[places]]\nname = 1",
                     b"a = " + b"[" * 10_000, b"a = {" * 5_000, b"\xef\xbb\xbfname = 'x'",
                     b"name = 'x'\nname = 'y'", b"a = 1979-05-27T07:32:00Z"]),
)  # fmt: skip


def loaded_or_refused(load: Any, directory: Path) -> None:
    with hard_limit():
        try:
            load(directory, env={})
        except ConfigError as e:
            assert e.message.strip()
            event("refused")
            return
    event("loaded")


@budget(40)
@given(settings=NODE, raw=st.one_of(st.none(), st.none(), st.none(), RAW))
@example(settings={"name": "Ø", "url": "https://o.example", "secret_key": "x" * 32,
                   "places": [{"name": "Hallen", "lat": math.nan, "lon": 10.0}]},
         raw=None)  # fmt: skip
def test_node_settings_load_or_are_refused_in_words(
    tmp_path: Path, settings: dict[str, Any], raw: bytes | None
) -> None:
    path = tmp_path / node_config.CONFIG_NAME
    path.write_bytes(
        raw if raw is not None else toml_document(settings).encode("utf-8", "surrogatepass")
    )
    loaded_or_refused(node_config.load_config, tmp_path)


@budget(40)
@given(settings=AGGREGATOR, raw=st.one_of(st.none(), st.none(), st.none(), RAW))
@example(settings={"name": "Syd", "url": "https://s.example", "poll_minutes": 1e308}, raw=None)
@example(
    settings={
        "name": "Syd",
        "url": "https://s.example",
        "limits": {"max_compressed": float("inf")},
    },
    raw=None,
)
def test_aggregator_settings_load_or_are_refused_in_words(
    tmp_path: Path, settings: dict[str, Any], raw: bytes | None
) -> None:
    path = tmp_path / aggregator_config.CONFIG_NAME
    path.write_bytes(
        raw if raw is not None else toml_document(settings).encode("utf-8", "surrogatepass")
    )
    loaded_or_refused(aggregator_config.load_config, tmp_path)


@budget(40)
@given(RAW)
def test_read_toml_reads_or_refuses_in_words(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "settings.toml"
    path.write_bytes(raw)
    with hard_limit():
        try:
            assert isinstance(read_toml(path, "klynge node init DIR"), dict)
        except ConfigError as e:
            assert str(path) in e.message
