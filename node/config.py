"""The node's configuration: `DIR/node.toml` with KLYNGE_* environment overrides, loaded once."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from klynge.clock import SYSTEM_CLOCK, Clock, clock_from_env
from klynge.config import read_toml
from klynge.errors import ConfigError, ValidationError
from klynge.i18n import DEFAULT_LANG, LANGS
from klynge.model import DEFAULT_TIMEZONE, Place, is_http_url, new_id, zone
from klynge.storage import backup_path, keep_private

CONFIG_NAME = "node.toml"
log = logging.getLogger("node")
DB_NAME = "node.json"

# Environment variable -> config key (docs/deploy.md; deploy/docker-entrypoint.sh uses these).
ENV_KEYS = {
    "KLYNGE_NAME": "name",
    "KLYNGE_PUBLIC_URL": "url",
    "KLYNGE_TIMEZONE": "timezone",
    "KLYNGE_LANGUAGE": "language",
    "KLYNGE_AGGREGATORS": "aggregators",
    "KLYNGE_SECRET_KEY": "secret_key",
    "KLYNGE_TRUSTED_PROXIES": "trusted_proxies",
}
LIST_KEYS = ("aggregators", "trusted_proxies")  # given in the environment as one string
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ClashRules:
    """The `[clash]` section of node.toml: how clash warnings are found (docs/node.md)."""

    travel_minutes: int = 30  # events closer than this still clash: people must get there
    assumed_hours: float = 2.0  # the length of an event that gives no end
    category_weight: int = 2  # how much more a clash in the same category counts
    max_shown: int = 8  # warnings shown at most, the strongest first
    refresh_minutes: int = 15  # how often the cluster copy is fetched on a schedule
    fresh_seconds: int = 60  # a form opened later than this after a fetch fetches again
    horizon_days: int = 400  # how far ahead the cluster copy reaches (the aggregator caps it)


@dataclass(frozen=True)
class NodeConfig:
    """Everything a village node needs to run, validated."""

    data_dir: Path
    name: str
    public_url: str
    secret_key: str
    feed_id: str = ""
    timezone: str = DEFAULT_TIMEZONE
    language: str = DEFAULT_LANG  # the pages' language unless a volunteer picks another
    aggregators: tuple[str, ...] = ()
    places: tuple[Place, ...] = ()
    # Reverse proxies whose X-Forwarded-For is believed (node.auth.client_address).
    trusted_proxies: tuple[Network, ...] = ()
    clock: Clock = SYSTEM_CLOCK  # KLYNGE_NOW starts it at a chosen instant (klynge.clock)
    # Tunables: tests shorten them; operators rarely need to.
    ping_retries: int = 5
    ping_backoff: float = 2.0
    login_limit_user: int = 5
    login_limit_address: int = 20
    login_window: float = 15 * 60.0
    housekeeping_minutes: int = 60
    clash: ClashRules = ClashRules()

    @property
    def db_path(self) -> Path:
        """Return the path of the node's database file."""
        return self.data_dir / DB_NAME

    @property
    def feed_url(self) -> str:
        """Return the public URL of the village feed."""
        return f"{self.public_url}/feed.atom"

    @property
    def secure_cookies(self) -> bool:
        """Tell whether cookies must be Secure (the public URL is https)."""
        return self.public_url.startswith("https://")

    @property
    def ping_urls(self) -> tuple[str, ...]:
        """Return each configured aggregator's /ping URL."""
        return tuple(ping_url(url) for url in self.aggregators)


def ping_url(aggregator: str) -> str:
    """Return the /ping URL of an aggregator given by its base URL (or its /ping URL)."""
    base = aggregator.rstrip("/")
    return base if base.endswith("/ping") else f"{base}/ping"


def split_urls(value: str) -> tuple[str, ...]:
    """Split a list of URLs separated by commas or whitespace."""
    return tuple(part for part in re.split(r"[,\s]+", value) if part)


def load_config(data_dir: Path, env: Mapping[str, str] | None = None) -> NodeConfig:
    """Read `DIR/node.toml`, apply KLYNGE_* overrides from `env`, and validate."""
    path = data_dir / CONFIG_NAME
    raw = read_toml(path, f"klynge node init {data_dir} --name NAME --url PUBLIC_URL")
    for secret in (path, data_dir / DB_NAME, backup_path(data_dir / DB_NAME)):
        warning = keep_private(secret)  # the secret key; password and token hashes
        if warning is not None:
            log.warning("%s", warning.english())
    env = os.environ if env is None else env
    config = config_from_dict(data_dir, _apply_env(raw, env))
    return replace(config, clock=clock_from_env(env))


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    merged = dict(raw)
    for var, key in ENV_KEYS.items():
        value = env.get(var, "").strip()
        if value:
            merged[key] = split_urls(value) if key in LIST_KEYS else value
    return merged


def config_from_dict(data_dir: Path, raw: Mapping[str, Any]) -> NodeConfig:
    """Build and validate a NodeConfig from parsed TOML values."""
    name = _text(raw, "name")
    url = _text(raw, "url").rstrip("/")
    if not name:
        raise ConfigError("the village name is missing: set name in node.toml or KLYNGE_NAME")
    if not is_http_url(url):
        raise ConfigError(f"url {url!r} must be an http(s) URL, e.g. https://osterby.example.dk")
    secret = _text(raw, "secret_key")
    if len(secret) < 32:
        raise ConfigError("secret_key must be at least 32 characters (klynge node init makes one)")
    timezone = _text(raw, "timezone") or DEFAULT_TIMEZONE
    try:
        zone(timezone)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    language = _text(raw, "language") or DEFAULT_LANG
    if language not in LANGS:
        raise ConfigError(f"language must be one of {', '.join(LANGS)}, not {language!r}")
    return NodeConfig(
        data_dir=data_dir,
        name=name,
        public_url=url,
        secret_key=secret,
        feed_id=_text(raw, "feed_id") or f"{url}/feed.atom",
        timezone=timezone,
        language=language,
        aggregators=_aggregators(raw.get("aggregators", ())),
        places=_places(raw.get("places", ())),
        trusted_proxies=tuple(_network(v) for v in _list(raw, "trusted_proxies")),
        clash=_clash_rules(raw.get("clash", {})),
    )


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string in node.toml")
    return value.strip()


def _list(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, ())
    items = split_urls(value) if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{key} must be a list of strings in node.toml")
    return tuple(items)


def _network(value: str) -> Network:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ConfigError(
            f"trusted_proxies: {value!r} is not an IP address or network, e.g. 127.0.0.1 or "
            "10.0.0.0/8"
        ) from None


def _aggregators(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str | list | tuple):  # `aggregators = 0` raised TypeError (fuzz)
        raise ConfigError("aggregators must be a list of http(s) URLs in node.toml")
    urls = split_urls(value) if isinstance(value, str) else tuple(value)
    for url in urls:
        if not isinstance(url, str) or not is_http_url(url):
            raise ConfigError(f"aggregator {url!r} must be an http(s) URL")
    return tuple(url.rstrip("/") for url in urls)


def _places(value: Any) -> tuple[Place, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError("places must be a list of [[places]] tables in node.toml")
    places = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError("each [[places]] entry needs a name")
        try:
            places.append(Place(**{k: item[k] for k in _PLACE_KEYS if k in item}))
        except (ValidationError, TypeError) as e:
            raise ConfigError(f"place {item.get('name')!r} in node.toml: {e}") from e
    return tuple(places)


_PLACE_KEYS = ("name", "street", "postcode", "locality", "lat", "lon")


def render_new_config(name: str, url: str, aggregators: tuple[str, ...], timezone: str) -> str:
    """Return the text of a new node.toml with a fresh secret key and feed id."""
    lines = [
        "# Klynge village node settings. KLYNGE_* environment variables override these.",
        f"name = {_toml_str(name)}",
        f"url = {_toml_str(url.rstrip('/'))}",
        f"timezone = {_toml_str(timezone)}",
        "# The cluster aggregators told (pinged) after every change.",
        "aggregators = [" + ", ".join(_toml_str(a) for a in aggregators) + "]",
        "# Behind a reverse proxy on this host, believe its X-Forwarded-For (docs/deploy.md):",
        '# trusted_proxies = ["127.0.0.1"]',
        "# Signs session cookies; keep it secret.",
        f"secret_key = {_toml_str(secrets.token_urlsafe(32))}",
        "# The feed's permanent atom:id; never change it.",
        f"feed_id = {_toml_str(new_id())}",
        "",
        "# Saved places offered in the forms; admins can add more at /admin/places.",
        "# [[places]]",
        '# name = "Forsamlingshuset"',
        '# street = "Hovedgaden 1"',
        '# postcode = "4000"',
        '# locality = "Østerby"',
        "# lat = 55.64",
        "# lon = 11.82",
        "",
    ]
    return "\n".join(lines)


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


_CLASH_LIMITS = {  # key -> (lowest, highest) accepted in [clash]
    "travel_minutes": (0, 24 * 60),
    "assumed_hours": (0.25, 24),
    "category_weight": (0, 100),
    "max_shown": (1, 100),
    "refresh_minutes": (1, 24 * 60),
    "fresh_seconds": (0, 24 * 3600),
    "horizon_days": (7, 550),
}


def _clash_rules(value: Any) -> ClashRules:
    """Read the `[clash]` table of node.toml, each key bounded (docs/node.md)."""
    if not isinstance(value, dict):
        raise ConfigError("clash must be a [clash] table in node.toml")
    unknown = sorted(set(value) - set(_CLASH_LIMITS))
    if unknown:
        raise ConfigError(f"[clash] has unknown keys: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, number in value.items():
        low, high = _CLASH_LIMITS[key]
        ok = isinstance(number, int | float) and not isinstance(number, bool)
        if not ok or not low <= number <= high or (isinstance(low, int) and number != int(number)):
            raise ConfigError(f"[clash] {key} must be a number from {low} to {high}")
        values[key] = number if key == "assumed_hours" else int(number)
    return ClashRules(**values)
