"""Typed application keys shared by the node's handlers."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from node.auth import LoginLimiter
from node.cluster import Cluster
from node.config import NodeConfig
from node.ping import Pinger
from node.publish import Publisher
from node.store import Store

CONFIG = web.AppKey("node_config", NodeConfig)
STORE = web.AppKey("node_store", Store)
PUBLISHER = web.AppKey("node_publisher", Publisher)
PINGER = web.AppKey("node_pinger", Pinger)
LIMITER = web.AppKey("node_login_limiter", LoginLimiter)
CLUSTER = web.AppKey("node_cluster", Cluster)


def now(request: web.Request) -> datetime:
    """Return the current time from the node's one clock (klynge.clock)."""
    return request.app[CONFIG].clock.now()
