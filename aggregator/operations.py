"""The host's commands: sources and moderation, run by the CLI directly or by the service.

Each command is planned the same way in both places (`plan`): from the configuration and the
moderation as they are on disk to what they become, and what to tell the host. With the
service stopped the CLI writes the two files (`run_direct`); with it running the CLI sends the
command over the control socket (klynge.control) and the service (`Operator`) writes them and
applies the change at once: a new source is fetched while the command waits, a removed one
leaves the outputs, a hidden entry or a paused source leaves the merged view.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from aggregator.config import (
    CONFIG_NAME,
    KINDS,
    AggregatorConfig,
    Kind,
    Source,
    load_config,
    save_config,
)
from aggregator.publish.merged import MergedView
from aggregator.reader.refresh import Refresher
from aggregator.reader.scheduler import Scheduler
from aggregator.store.moderation import Moderation, ModerationFile, entry_id, hold
from klynge.control import Handler, Params, Result
from klynge.errors import Conflict, NotFound, ValidationError
from klynge.messages import Message, define

log = logging.getLogger("klynge.aggregator")

IS_SOURCE = define("operations.is_source", "%(url)s is already a source")
NOT_SOURCE = define("operations.not_source", "%(url)s is not a source of this aggregator")
NOT_HIDDEN = define("operations.not_hidden", "entry %(id)s is not hidden")
NOT_PAUSED = define("operations.not_paused", "source %(url)s is not paused")
BAD_PARAM = define("operations.bad_param", "the command needs %(name)s as text")
BAD_KIND = define("operations.bad_kind", "the kind must be one of %(kinds)s")
COMMANDS = (
    "source add",
    "source remove",
    "source list",
    "hide",
    "unhide",
    "pause",
    "unpause",
    "moderation",
)


@dataclass(frozen=True)
class Plan:
    """What a command changes (None: unchanged) and what it tells the host."""

    result: Result
    config: AggregatorConfig | None = None
    moderation: Moderation | None = None
    added: Source | None = None
    removed: str = ""
    resumed: str = ""  # a source unpaused: fetched at once


def _text(params: Params, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({name: Message(BAD_PARAM, {"name": name})})
    return value.strip()


def _known(config: AggregatorConfig, url: str) -> Source:
    source = config.source(url)
    if source is None:
        raise NotFound(Message(NOT_SOURCE, {"url": url}))
    return source


def plan(
    name: str, params: Params, config: AggregatorConfig, moderation: Moderation, now: datetime
) -> Plan:
    """Plan one command against the configuration and moderation on disk."""
    if name == "source add":
        return _add(params, config)
    if name == "source remove":
        url = _known(config, _text(params, "url")).url
        kept = tuple(s for s in config.sources if s.url != url)
        unpaused = moderation.unpause(url) if url in moderation.paused else None
        new = dataclasses.replace(config, sources=kept)
        return Plan({"url": url}, config=new, moderation=unpaused, removed=url)
    if name == "source list":
        return Plan({"sources": [_listed(s, moderation) for s in config.sources]})
    if name == "moderation":
        return Plan(_moderation_json(moderation))
    return _moderate(name, params, config, moderation, now)


def _add(params: Params, config: AggregatorConfig) -> Plan:
    url, kind = _text(params, "url"), str(params.get("kind") or "node")
    if kind not in KINDS:
        raise ValidationError({"kind": Message(BAD_KIND, {"kinds": ", ".join(KINDS)})})
    source = Source(url=url, name=str(params.get("name") or "").strip(), kind=cast(Kind, kind))
    if config.source(url) is not None:
        raise Conflict(Message(IS_SOURCE, {"url": url}))
    new = dataclasses.replace(config, sources=(*config.sources, source))
    return Plan({"url": url, "kind": kind}, config=new, added=source)


def _moderate(
    name: str, params: Params, config: AggregatorConfig, moderation: Moderation, now: datetime
) -> Plan:
    if name in ("hide", "unhide"):
        entry = entry_id(_text(params, "entry"))
        if name == "hide":
            changed = moderation.hide(entry, hold(str(params.get("reason") or ""), now))
        elif entry not in moderation.hidden:
            raise NotFound(Message(NOT_HIDDEN, {"id": entry}))
        else:
            changed = moderation.unhide(entry)
        return Plan({"id": entry}, moderation=changed)
    url = _known(config, _text(params, "url")).url
    if name == "pause":
        paused = moderation.pause(url, hold(str(params.get("reason") or ""), now))
        return Plan({"url": url}, moderation=paused)
    if url not in moderation.paused:
        raise NotFound(Message(NOT_PAUSED, {"url": url}))
    return Plan({"url": url}, moderation=moderation.unpause(url), resumed=url)


def _listed(source: Source, moderation: Moderation) -> dict[str, Any]:
    paused = moderation.paused.get(source.url)
    return {
        "url": source.url,
        "name": source.name,
        "kind": source.kind,
        "paused": paused.reason if paused else "",
    }


def _moderation_json(moderation: Moderation) -> Result:
    def holds(items: Mapping[str, Any]) -> list[dict[str, str]]:
        return [
            {"key": k, "reason": h.reason, "since": h.since.isoformat()} for k, h in items.items()
        ]

    return {"hidden": holds(moderation.hidden), "paused": holds(moderation.paused)}


def run_direct(data_dir: Path, name: str, params: Params) -> Result:
    """Run a command on the files of a stopped aggregator (the caller holds the lock)."""
    config = load_config(data_dir, env={})
    moderation_file = ModerationFile(data_dir)
    done = plan(name, params, config, moderation_file.load(), config.clock.now())
    if done.config is not None:
        save_config(done.config)
    if done.moderation is not None:
        moderation_file.save(done.moderation)
    return done.result


class Operator:
    """Runs the host's commands inside the running aggregator, taking effect at once."""

    def __init__(
        self, config: AggregatorConfig, refresher: Refresher, scheduler: Scheduler, view: MergedView
    ) -> None:
        self.data_dir = config.data_dir
        self.refresher = refresher
        self.scheduler = scheduler
        self.view = view
        self.file = ModerationFile(config.data_dir)
        self.moderation = Moderation()
        self._lock = asyncio.Lock()  # one command at a time: each reads and writes the files

    async def load(self) -> None:
        """Read the stored moderation and apply it."""
        self.moderation = await asyncio.to_thread(self.file.load)
        self._apply()

    def _apply(self) -> None:
        paused = frozenset(self.moderation.paused)
        self.refresher.paused = paused
        hidden = self.moderation.hidden
        since = {entry_id: hold.since for entry_id, hold in hidden.items()}
        self.view.moderate(frozenset(hidden), paused, since)

    def handlers(self) -> dict[str, Handler]:
        """Return the control socket's handlers, one per command."""

        def handler(name: str) -> Handler:
            async def run(params: Params) -> Result:
                return await self.run(name, params)

            return run

        return {name: handler(name) for name in COMMANDS}

    async def run(self, name: str, params: Params) -> Result:
        """Plan a command against the files, write them, and apply the change."""
        async with self._lock:
            live = self.refresher.config
            done = plan(name, params, live, self.moderation, live.clock.now())
            if done.config is not None:
                await asyncio.to_thread(self._persist, done)
            if done.moderation is not None:
                await asyncio.to_thread(self.file.save, done.moderation)
                self.moderation = done.moderation
                self._apply()
            result = dict(done.result)
            result.update(await self._sources_changed(done))
            if name == "hide":
                result["title"] = self._title(result["id"])
        if name != "source list" and name != "moderation":
            log.info("%s %s", name, " ".join(str(v) for v in done.result.values()))
        return result

    def _title(self, entry: str) -> str:
        """Return the title of a served entry with this id ("" when none has it, e.g. a typo)."""
        for content in self.view.contents():
            item = content.entries.get(entry)
            if item is not None:
                return item.title
            for item in content.entries.values():
                if item.id == entry:
                    return item.title
        return ""

    def _persist(self, done: Plan) -> None:
        """Write a change of sources to aggregator.toml, so that a restart keeps it."""
        if not (self.data_dir / CONFIG_NAME).exists():
            return  # a configuration made in memory (tests, the demo): nothing to keep
        on_disk = load_config(self.data_dir, env={})  # without overrides: they stay outside
        kept = [s for s in on_disk.sources if s.url != done.removed]
        if done.added is not None and on_disk.source(done.added.url) is None:
            kept.append(done.added)
        save_config(dataclasses.replace(on_disk, sources=tuple(kept)))

    async def _sources_changed(self, done: Plan) -> Result:
        if done.removed:
            self.scheduler.remove(done.removed)
            self.refresher.remove_source(done.removed)
        source = done.added or (
            self.refresher.config.source(done.resumed) if done.resumed else None
        )
        if source is None:
            return {}
        if done.added is not None:
            await self.refresher.add_source(source)
            self.scheduler.add(source)
        outcome = await self.refresher.refresh_source(source)
        return {"fetched": outcome.words, "ok": outcome.ok}
