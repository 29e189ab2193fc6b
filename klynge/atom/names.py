"""The names the Atom reader and writer share: the namespaces, and a feed's metadata.

Their own module, so that the parse child (aggregator.reader.parse) reads feeds without
importing the writer's feedgen and lxml (about 8 MB of its memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ATOM_NS = "http://www.w3.org/2005/Atom"
KLYNGE_NS = "https://purl.org/klynge/ns/1.0"
GEORSS_NS = "http://www.georss.org/georss"
TOMBSTONE_NS = "http://purl.org/atompub/tombstones/1.0"


@dataclass(frozen=True)
class FeedMeta:
    """Feed-level data: identity, title, self link, last change, author, hubs, language."""

    id: str
    title: str
    self_url: str
    updated: datetime
    author: str = ""
    alternate_url: str = ""
    hub_urls: tuple[str, ...] = ()
    subtitle: str = ""
    language: str = "da"
    # RFC 5005 §3 paged feeds: the first page and the next (older) page; a document with a
    # `first` link is a page, so a reader must not take an entry missing from it as deleted.
    first_url: str = ""
    next_url: str = ""
