"""The aggregator's aiohttp application: services set up and torn down in cleanup_ctx."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from aiohttp import web

from aggregator.config import AggregatorConfig
from aggregator.keys import (
    ANSWERS,
    CONFIG,
    MAILER,
    MERGED,
    OPERATOR,
    OUTPUTS,
    REFRESHER,
    SCHEDULER,
    SOURCE_ROWS,
    UPSTREAM,
)
from aggregator.mail.service import Mailer
from aggregator.operations import Operator
from aggregator.publish.answers import Answers
from aggregator.publish.merged import MergedView
from aggregator.publish.outputs import Outputs
from aggregator.publish.upstream import Upstream
from aggregator.reader.fetcher import Fetcher, FetchLimits
from aggregator.reader.refresh import Refresher
from aggregator.reader.scheduler import Scheduler
from aggregator.store.sources import Store
from aggregator.tuning import SETTLER, share_the_gil
from aggregator.web import api, routes
from aggregator.web.pages import warm_up
from aggregator.web.status import SourceRows
from klynge.control import ControlServer
from klynge.web import WEB_STATE, error_middleware, setup_web, stop_serving

MAX_BODY = 64 * 1024  # /ping and nothing else takes a body
MAIL_CHECK_SECONDS = 300  # how often the mailer looks whether the weekly e-mail is due
COMPILED = "templates"  # the compiled templates, in the data directory (WebState.keep_compiled)


def fetch_limits(config: AggregatorConfig) -> FetchLimits:
    """Return the fetcher's limits from the configuration."""
    lim = config.limits
    return FetchLimits(
        connect_timeout=lim.connect_timeout,
        total_timeout=lim.total_timeout,
        max_compressed=lim.max_compressed,
        max_decompressed=lim.max_decompressed,
        max_redirects=lim.max_redirects,
    )


def create_app(config: AggregatorConfig, *, periodic: bool = True) -> web.Application:
    """Return the aggregator app; `periodic=False` leaves polling to pings and refreshes."""
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    app[CONFIG] = config
    app[ANSWERS] = Answers()  # pages and JSON answers per data version (kept.py)
    app[SOURCE_ROWS] = SourceRows()  # each source's health row, kept while it holds
    setup_web(
        app,
        package="aggregator",
        site_name=config.name,
        json_paths=("/ping",),
        language=config.language,
    )
    api.add_routes(app)
    routes.add_routes(app)

    async def services(app: web.Application) -> AsyncIterator[None]:
        share_the_gil()
        # Each part is closed when the service stops, or when its start stops part-way (a
        # refused store, moderation file or socket): the last opened first.
        async with contextlib.AsyncExitStack() as opened:
            await _start(app, opened)
            yield

    async def _start(app: web.Application, opened: contextlib.AsyncExitStack) -> None:
        store = Store(config.data_dir)
        fetcher = Fetcher(fetch_limits(config))
        opened.push_async_callback(fetcher.close)
        refresher = Refresher(config, store, fetcher)
        view = MergedView(ready=refresher.ready, settle=SETTLER.settle)
        opened.callback(view.close)
        opened.push_async_callback(refresher.close)
        refresher.on_change = view.changed
        refresher.on_remove = view.removed
        outputs = Outputs(config, view.current, SETTLER.settle)
        opened.callback(outputs.close)
        upstream = Upstream(config, outputs.feed, fetcher.ping)
        opened.push_async_callback(upstream.close)

        def changed() -> None:
            outputs.invalidate()
            upstream.notify()  # after the invalidation: it builds the new feed

        view.on_change = changed
        refresher.on_load_error = partial(stop_serving, app)  # a bad record stops the service
        SETTLER.hold()  # no collection until the first merge is settled (aggregator.tuning)
        opened.callback(SETTLER.release)
        refresher.start_loading()  # polls, pings and pages wait for it; /healthz does not
        # The parse child starts while the store loads (it imports for 0.15 s, in a process of
        # its own); refresher.close() kills it.
        await refresher.worker.start()
        scheduler = Scheduler(refresher, periodic=periodic)
        operator = Operator(config, refresher, scheduler, view)
        await operator.load()  # hidden entries and paused sources, before the first poll
        app[REFRESHER], app[MERGED], app[OUTPUTS] = refresher, view, outputs
        app[SCHEDULER], app[OPERATOR] = scheduler, operator
        app[UPSTREAM] = upstream
        scheduler.start()
        opened.push_async_callback(scheduler.shutdown)
        if config.mail is not None:  # the weekly ugeseddel by e-mail (issue 16)
            app[MAILER] = Mailer(config, view.current)
            scheduler.add_periodic("mail-weekly", app[MAILER].tick, MAIL_CHECK_SECONDS)
        control = ControlServer(config.data_dir, operator.handlers())
        await control.start()  # `klynge aggregator source …`, `hide`, `pause` while serving
        opened.push_async_callback(control.close)

        async def warm() -> None:
            await refresher.ready()  # a start that refuses its store writes nothing
            app[WEB_STATE].keep_compiled(config.data_dir / COMPILED)
            await asyncio.to_thread(warm_up, app[WEB_STATE])

        warming = asyncio.ensure_future(warm())
        merging = asyncio.ensure_future(view.current())  # the first merge, once loaded
        opened.push_async_callback(_cancelled, merging, warming)

    app.cleanup_ctx.append(services)
    return app


async def _cancelled(task: asyncio.Future[Any], *others: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait for it and the others to end (whatever they raise)."""
    task.cancel()
    await asyncio.gather(task, *others, return_exceptions=True)
