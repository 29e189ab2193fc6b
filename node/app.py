"""The village node's aiohttp application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from klynge.control import ControlServer
from klynge.web import WEB_STATE, error_middleware, setup_web
from node import admin, api, dates, operations, views
from node.auth import LoginLimiter
from node.carpool import views as carpool_views
from node.cluster import Cluster
from node.cluster import web as cluster_web
from node.cluster.copy import ClusterCopy
from node.config import NodeConfig
from node.housekeeping import start_scheduler
from node.keys import CLUSTER, CONFIG, LIMITER, PINGER, PUBLISHER, STORE
from node.ping import Pinger
from node.publish import Publisher
from node.sessions import current_user, session_middleware
from node.store import Store

log = logging.getLogger("node")


def create_app(config: NodeConfig, *, housekeeping: bool = True) -> web.Application:
    """Build the node's web application for a validated configuration."""
    app = web.Application(client_max_size=api.MAX_BODY, middlewares=[error_middleware])
    app[CONFIG] = config
    app[LIMITER] = LoginLimiter(
        config.login_limit_user, config.login_limit_address, config.login_window
    )
    setup_web(app, package="node", site_name=config.name, language=config.language)
    # The admin menu asks who is logged in itself: pages that passed no `user` showed a
    # shorter menu than the others (issue 16).
    app[WEB_STATE].env.globals["current_user"] = current_user
    app.middlewares.append(session_middleware)
    api.add_routes(app)
    admin.add_routes(app)
    dates.add_routes(app)
    views.add_routes(app)
    carpool_views.add_routes(app)
    cluster_web.add_routes(app)
    app.cleanup_ctx.append(_resources(housekeeping))
    return app


def _resources(housekeeping: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        store = Store.open(config.db_path, config.clock)
        app[STORE] = store
        app[PUBLISHER] = Publisher(config, store)
        pinger = app[PINGER] = Pinger(config, store)
        cluster = app[CLUSTER] = Cluster(config)
        copy = app[cluster_web.COPY] = ClusterCopy(config)  # clash warnings (issue 13)
        pinger.after_ping.append(copy.after_ping)
        if housekeeping:
            copy.start()
        scheduler = start_scheduler(store, config.housekeeping_minutes) if housekeeping else None
        control = ControlServer(config.data_dir, operations.handlers(store))
        await control.start()  # `klynge node user …` and `token …` while the node runs
        log.info("node %s serving %s", config.name, config.public_url)
        yield
        await control.close()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await pinger.close()
        await cluster.close()
        await copy.close()
        store.close()

    return resources
