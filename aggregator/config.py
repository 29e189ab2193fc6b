"""The aggregator's configuration: `DIR/aggregator.toml` plus KLYNGE_* overrides, loaded once.

Environment overrides (read only by `load_config`, never afterwards):
KLYNGE_NAME, KLYNGE_PUBLIC_URL, KLYNGE_POLL_MINUTES, KLYNGE_TIMEZONE, KLYNGE_NOW.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, cast

from aggregator.outreach_config import (
    EmbedSettings,
    MailSettings,
    embed_settings,
    mail_settings,
    outreach_toml,
)
from klynge.clock import SYSTEM_CLOCK, Clock, clock_from_env
from klynge.config import read_toml
from klynge.errors import ConfigError
from klynge.i18n import DEFAULT_LANG, LANGS
from klynge.model import DEFAULT_TIMEZONE, is_http_url, zone

CONFIG_NAME = "aggregator.toml"
KINDS = ("node", "aggregator", "atom", "ics")
Kind = Literal["node", "aggregator", "atom", "ics"]


@dataclass(frozen=True)
class Source:
    """One polled feed: its URL, a display name and what kind of publisher serves it."""

    url: str
    name: str = ""
    kind: Kind = "node"

    def __post_init__(self) -> None:
        if not is_http_url(self.url):
            raise ConfigError(f"source URL {self.url!r} must be an http:// or https:// URL")
        if self.kind not in KINDS:
            raise ConfigError(f"source kind {self.kind!r} must be one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Limits:
    """Fetch caps, back-off, rate limits, and the bounds on reading one source."""

    connect_timeout: float = 10.0
    total_timeout: float = 30.0
    max_compressed: int = 5_000_000
    max_decompressed: int = 20_000_000
    max_redirects: int = 3
    max_backoff: timedelta = timedelta(hours=6)
    stale_after: timedelta = timedelta(hours=24)
    jitter: float = 60.0  # seconds of random spread on each scheduled poll
    parse_timeout: float = 15.0  # seconds one source's body may take to parse and validate
    parse_memory_mb: int = 512  # address space of the process that parses (RLIMIT_AS)
    max_entries: int = 5000  # entries (and tombstones) read from one source's body
    ping_fetches_per_minute: int = 20  # the bound on ping-triggered fetches of one source

    def __post_init__(self) -> None:
        numbers = (self.connect_timeout, self.total_timeout, self.jitter)
        if min(numbers) < 0 or self.max_compressed <= 0 or self.max_decompressed <= 0:
            raise ConfigError("limits must be positive numbers")
        if self.parse_timeout <= 0 or self.max_entries < 1:
            raise ConfigError("limits.parse_timeout and limits.max_entries must be positive")
        if self.parse_memory_mb < 128:
            raise ConfigError("limits.parse_memory_mb must be at least 128")
        if not 0 <= self.max_redirects <= 10:
            raise ConfigError("limits.max_redirects must be from 0 to 10")
        if self.ping_fetches_per_minute < 1:
            raise ConfigError("limits.ping_fetches_per_minute must be at least 1")


@dataclass(frozen=True)
class AggregatorConfig:
    """Everything the aggregator needs to know, validated."""

    data_dir: Path
    name: str
    url: str
    sources: tuple[Source, ...] = ()
    poll_interval: timedelta = timedelta(minutes=15)
    timezone: str = DEFAULT_TIMEZONE
    language: str = DEFAULT_LANG  # the pages' language unless a resident picks another
    limits: Limits = field(default_factory=Limits)
    clock: Clock = SYSTEM_CLOCK  # KLYNGE_NOW starts it at a chosen instant (klynge.clock)
    # The aggregators that read this one, pinged when the merged feed changes (their /ping or
    # base URLs), so a village's change reaches the region in seconds, not at its next poll.
    upstream: tuple[str, ...] = ()
    embed: EmbedSettings = field(default_factory=EmbedSettings)  # [embed]: colours, framing
    mail: MailSettings | None = None  # [mail]: the weekly e-mail's SMTP server; None = off

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError('the cluster needs a name (name = "..." in aggregator.toml)')
        if not is_http_url(self.url):
            raise ConfigError(f"public URL {self.url!r} must be an http:// or https:// URL")
        if self.poll_interval < timedelta(seconds=1):
            raise ConfigError("poll_minutes must be positive")
        try:
            zone(self.timezone)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        if self.language not in LANGS:
            raise ConfigError(f"language must be one of {', '.join(LANGS)}, not {self.language!r}")
        urls = [s.url for s in self.sources]
        if len(set(urls)) != len(urls):
            raise ConfigError("a source URL is listed twice in aggregator.toml")
        for url in self.upstream:
            if not is_http_url(url):
                raise ConfigError(f"upstream URL {url!r} must be an http:// or https:// URL")

    def source(self, url: str) -> Source | None:
        """Return the configured source with this URL, if any."""
        return next((s for s in self.sources if s.url == url), None)

    @property
    def feed_url(self) -> str:
        """Return the public URL of the merged feed (what upstream aggregators poll)."""
        return f"{self.url.rstrip('/')}/feed.atom"

    @property
    def upstream_pings(self) -> tuple[str, ...]:
        """Return each upstream aggregator's /ping URL (given as its base or its /ping URL)."""
        return tuple(ping_url(url) for url in self.upstream)


def ping_url(aggregator: str) -> str:
    """Return the /ping URL of an aggregator given by its base URL (or its /ping URL)."""
    base = aggregator.rstrip("/")
    return base if base.endswith("/ping") else f"{base}/ping"


def load_config(data_dir: Path, env: Mapping[str, str] | None = None) -> AggregatorConfig:
    """Read and validate `DIR/aggregator.toml`, applying KLYNGE_* environment overrides."""
    path = data_dir / CONFIG_NAME
    raw = read_toml(path, f"klynge aggregator init {data_dir} --name NAME --url PUBLIC_URL")
    env = os.environ if env is None else env
    config = from_mapping(data_dir, _apply_env(raw, env), path)
    return replace(config, clock=clock_from_env(env))


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    raw = dict(raw)
    for var, key in (
        ("KLYNGE_NAME", "name"),
        ("KLYNGE_PUBLIC_URL", "url"),
        ("KLYNGE_TIMEZONE", "timezone"),
        ("KLYNGE_LANGUAGE", "language"),
    ):
        if env.get(var):
            raw[key] = env[var]
    if env.get("KLYNGE_POLL_MINUTES"):
        try:
            raw["poll_minutes"] = float(env["KLYNGE_POLL_MINUTES"])
        except ValueError as e:
            raise ConfigError("KLYNGE_POLL_MINUTES must be a number of minutes") from e
    return raw


def from_mapping(
    data_dir: Path, raw: Mapping[str, Any], origin: Path | str = ""
) -> AggregatorConfig:
    """Build a config from a parsed TOML mapping, with messages naming the bad setting."""
    try:
        return AggregatorConfig(
            data_dir=data_dir,
            name=_str(raw, "name"),
            url=_str(raw, "url"),
            sources=tuple(_source(s) for s in _list(raw, "sources")),
            poll_interval=timedelta(minutes=_number(raw, "poll_minutes", 15)),
            timezone=_str(raw, "timezone", DEFAULT_TIMEZONE),
            language=_str(raw, "language") or DEFAULT_LANG,
            limits=_limits(raw.get("limits", {})),
            upstream=_urls(raw, "upstream"),
            embed=embed_settings(raw.get("embed", {})),
            mail=mail_settings(raw.get("mail")),
        )
    except ConfigError as e:
        where = f"{origin}: " if origin else ""
        raise ConfigError(f"{where}{e.message}") from e


def _str(raw: Mapping[str, Any], key: str, default: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value.strip()


# Large enough for every setting, small enough that no conversion (a timedelta of that many
# hours, an int of that many bytes) overflows: inf and 1e308 raised OverflowError (tests/fuzz/).
NUMBER_MAX = 1_000_000_000


def _number(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number, zero or more")
    if not 0 <= value <= NUMBER_MAX:  # also false for nan
        raise ConfigError(f"{key} must be a number from 0 to {NUMBER_MAX:,}")
    return float(value)


def _list(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{key} must be a list of tables ([[{key}]])")
    return value


def _urls(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{key} must be a list of URLs ({key} = ["https://..."])')
    return tuple(v.strip() for v in value if v.strip())


def _source(raw: Mapping[str, Any]) -> Source:
    kind = _str(raw, "kind", "node")
    return Source(url=_str(raw, "url"), name=_str(raw, "name"), kind=cast(Kind, kind))


_FLOAT_LIMIT_KEYS = ("connect_timeout", "total_timeout", "jitter", "parse_timeout")
# Read and checked, then ignored: `aggregator init` wrote `ping_interval` (a gap between two
# ping fetches of one source) until pings were coalesced instead of delayed; such files
# must still load (docs/aggregator.md, "Polling, pings and back-off").
_RETIRED_LIMIT_KEYS = ("ping_interval",)
_INT_LIMIT_KEYS = (
    "max_compressed",
    "max_decompressed",
    "max_redirects",
    "parse_memory_mb",
    "max_entries",
    "ping_fetches_per_minute",
)


def _limits(raw: Any) -> Limits:
    if not isinstance(raw, dict):
        raise ConfigError("limits must be a table ([limits])")
    defaults = Limits()
    values: dict[str, Any] = {}
    for key in _FLOAT_LIMIT_KEYS:
        values[key] = _number(raw, key, getattr(defaults, key)) if key in raw else None
    for key in _INT_LIMIT_KEYS:
        values[key] = int(_number(raw, key, 1)) if key in raw else None
    for key in _RETIRED_LIMIT_KEYS:
        _number(raw, key, 0)  # a bad value is still an error, as before it was retired
    if "max_backoff_hours" in raw:
        values["max_backoff"] = timedelta(hours=_number(raw, "max_backoff_hours", 6))
    if "stale_after_hours" in raw:
        values["stale_after"] = timedelta(hours=_number(raw, "stale_after_hours", 24))
    return replace(defaults, **{k: v for k, v in values.items() if v is not None})


def to_toml(config: AggregatorConfig) -> str:
    """Render a config as TOML (the inverse of `load_config` without overrides)."""
    lines = [
        "# Klynge cluster aggregator. Edit with care; restart `klynge aggregator serve` after.",
        f"name = {_q(config.name)}",
        f"url = {_q(config.url)}",
        f"poll_minutes = {config.poll_interval.total_seconds() / 60:g}",
        f"timezone = {_q(config.timezone)}",
    ]
    if config.upstream:
        lines.append(f"upstream = [{', '.join(_q(url) for url in config.upstream)}]")
    lim = config.limits
    lines += ["", "[limits]"]
    for key in _FLOAT_LIMIT_KEYS:
        lines.append(f"{key} = {getattr(lim, key):g}")
    for key in _INT_LIMIT_KEYS:
        lines.append(f"{key} = {getattr(lim, key)}")
    lines.append(f"max_backoff_hours = {lim.max_backoff.total_seconds() / 3600:g}")
    lines.append(f"stale_after_hours = {lim.stale_after.total_seconds() / 3600:g}")
    for source in config.sources:
        lines += ["", "[[sources]]", f"url = {_q(source.url)}"]
        lines += [f"name = {_q(source.name)}", f"kind = {_q(source.kind)}"]
    lines += outreach_toml(config.embed, config.mail)
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    # A JSON string is a valid TOML basic string (json never emits the one escape TOML lacks).
    return json.dumps(text, ensure_ascii=False)


def save_config(config: AggregatorConfig) -> None:
    """Write the config file atomically."""
    path = config.data_dir / CONFIG_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(to_toml(config), encoding="utf-8")
    os.replace(tmp, path)
