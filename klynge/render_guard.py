"""Total rendering: one entry that cannot be rendered is left out, never the whole output.

Every output builder (pages, feeds, calendars, the JSON API) renders its entries through
`each_entry`. Entries are validated model values, so a failure here is a bug or a value an
older, looser version accepted; either way one editor's entry must not make a page or a
calendar answer 500 for everyone. The entry is logged with its id and source, and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

log = logging.getLogger("klynge.render")

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def each_entry(
    entries: Iterable[_In], render: Callable[[_In], _Out], output: str
) -> Iterator[_Out]:
    """Yield `render(entry)` for each entry; one that raises is logged and left out."""
    for entry in entries:
        try:
            yield render(entry)
        except Exception as e:  # any failure of one entry, by design
            log.error("entry %s left out of %s: %s", entry_label(entry), output, _error(e))


def rendered(entries: Iterable[_In], render: Callable[[_In], _Out], output: str) -> list[_Out]:
    """Return `render(entry)` for each entry that renders (see `each_entry`)."""
    return list(each_entry(entries, render, output))


def entry_label(entry: object) -> str:
    """Return an entry's id and, when known, the feed it came from (an Occurrence's event's)."""
    item = getattr(entry, "event", entry)
    entry_id = getattr(item, "id", None)
    label = str(entry_id) if entry_id is not None else type(entry).__name__
    source = getattr(item, "source", None)
    origin = getattr(source, "self_url", "") or getattr(source, "id", "")
    return f"{label} (from {origin})" if origin else label


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
