"""Settings of the outreach features: the embed's colours and framing, the weekly e-mail.

Read from `aggregator.toml` by aggregator.config: `[embed]` (colours, `frame_ancestors`) and
`[mail]` (the SMTP server of the weekly ugeseddel). Without `[mail]` the e-mail feature does
not exist: no form, no routes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from klynge.errors import ConfigError

_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
# A CSP source expression (CSP 3 §2.3.1): a scheme, a host with an optional scheme, port and
# wildcard, or '*'. Anything else (quotes, semicolons, spaces) could break the header.
_ANCESTOR_RE = re.compile(r"^(\*|'self'|'none'|[a-z][a-z0-9+.-]*:(//[A-Za-z0-9.*-]+(:\d+|:\*)?)?"
                          r"|[A-Za-z0-9*][A-Za-z0-9.*-]*(:\d+)?)$")  # fmt: skip
SECURITIES = ("starttls", "ssl", "none")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ADDRESS_RE = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


@dataclass(frozen=True)
class EmbedSettings:
    """The embed's colours (hex `#rrggbb`) and who may frame it (CSP frame-ancestors)."""

    accent: str = "#1d5c8f"
    background: str = "#ffffff"
    text: str = "#1a1a1a"
    frame_ancestors: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        for name in ("accent", "background", "text"):
            if not _COLOUR_RE.match(getattr(self, name)):
                raise ConfigError(f"embed.{name} must be a colour like #1d5c8f")
        if not self.frame_ancestors:
            raise ConfigError("embed.frame_ancestors must list at least one source, e.g. '*'")
        for source in self.frame_ancestors:
            if not _ANCESTOR_RE.match(source):
                raise ConfigError(
                    f"embed.frame_ancestors: {source!r} is not a CSP source, "
                    "e.g. https://landsby.dk or *"
                )


@dataclass(frozen=True)
class MailSettings:
    """The SMTP server that sends the ugeseddel, its sender, and when it goes out."""

    smtp_host: str
    from_address: str
    smtp_port: int = 587
    security: str = "starttls"  # starttls (port 587), ssl (port 465) or none (a local relay)
    username: str = ""
    password: str = field(default="", repr=False)
    send_weekday: str = "sunday"  # the ugeseddel covers the week from the next Monday
    send_hour: int = 16

    def __post_init__(self) -> None:
        if not self.smtp_host:
            raise ConfigError("mail.smtp_host must name the SMTP server")
        if not _ADDRESS_RE.match(self.from_address):
            raise ConfigError("mail.from_address must be an e-mail address, e.g. klynge@landsby.dk")
        if not 1 <= self.smtp_port <= 65535:
            raise ConfigError("mail.smtp_port must be from 1 to 65535")
        if self.security not in SECURITIES:
            raise ConfigError(f"mail.security must be one of {', '.join(SECURITIES)}")
        if self.send_weekday not in WEEKDAYS:
            raise ConfigError(f"mail.send_weekday must be one of {', '.join(WEEKDAYS)}")
        if not 0 <= self.send_hour <= 23:
            raise ConfigError("mail.send_hour must be from 0 to 23")


def embed_settings(raw: Any) -> EmbedSettings:
    """Read the `[embed]` table (every key optional)."""
    if not isinstance(raw, dict):
        raise ConfigError("embed must be a table ([embed])")
    values: dict[str, Any] = {}
    for key in ("accent", "background", "text"):
        if key in raw:
            values[key] = _string(raw, "embed", key)
    if "frame_ancestors" in raw:
        ancestors = raw["frame_ancestors"]
        if isinstance(ancestors, str):
            ancestors = ancestors.split()
        if not isinstance(ancestors, list) or not all(isinstance(a, str) for a in ancestors):
            raise ConfigError("embed.frame_ancestors must be a list of strings")
        values["frame_ancestors"] = tuple(ancestors)
    return EmbedSettings(**values)


def mail_settings(raw: Any) -> MailSettings | None:
    """Read the `[mail]` table, or None when there is none (the feature is off)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("mail must be a table ([mail])")
    values: dict[str, Any] = {}
    for key in ("smtp_host", "from_address", "security", "username", "password", "send_weekday"):
        if key in raw:
            values[key] = _string(raw, "mail", key)
    for key in ("smtp_port", "send_hour"):
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"mail.{key} must be a whole number")
            values[key] = value
    values.setdefault("smtp_host", "")
    values.setdefault("from_address", "")
    return MailSettings(**values)


def _string(raw: Mapping[str, Any], table: str, key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise ConfigError(f"{table}.{key} must be a string")
    return value.strip()


def outreach_toml(embed: EmbedSettings, mail: MailSettings | None) -> list[str]:
    """Return the `[embed]` and `[mail]` tables as TOML lines (for save_config)."""
    lines: list[str] = []
    if embed != EmbedSettings():
        lines += ["", "[embed]"]
        lines += [f"{k} = {_q(getattr(embed, k))}" for k in ("accent", "background", "text")]
        lines.append(f"frame_ancestors = {json.dumps(list(embed.frame_ancestors))}")
    if mail is not None:
        lines += ["", "[mail]"]
        for key in ("smtp_host", "from_address", "security", "username", "password"):
            lines.append(f"{key} = {_q(getattr(mail, key))}")
        lines += [f"smtp_port = {mail.smtp_port}", f"send_weekday = {_q(mail.send_weekday)}"]
        lines.append(f"send_hour = {mail.send_hour}")
    return lines


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
