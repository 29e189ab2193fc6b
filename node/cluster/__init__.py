"""The node's cluster: how its aggregators read our feed, and what else the cluster holds.

`health` asks each aggregator how it reads our feed (the admin status page); `copy` keeps the
cluster's upcoming events on disk; `clash` finds the events a new one collides with; `web`
words the warnings for the form, the preview and the API (issue 13).
"""

from node.cluster.health import (
    CACHE_SECONDS,
    LIMITS,
    MAX_PROBLEMS,
    MAX_TEXT,
    NOT_JSON,
    NOT_LISTED,
    Cluster,
    ClusterView,
    base_of,
    view_of,
)

__all__ = [
    "CACHE_SECONDS",
    "LIMITS",
    "MAX_PROBLEMS",
    "MAX_TEXT",
    "NOT_JSON",
    "NOT_LISTED",
    "Cluster",
    "ClusterView",
    "base_of",
    "view_of",
]
