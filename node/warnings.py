"""Words for a volunteer about an entry that will be published but is probably a mistake."""

from __future__ import annotations

from datetime import datetime

from klynge.messages import Message, define
from klynge.model import Event, Item

PAST_EVENT = define(
    "node.past_event",
    "This event is over already: it will not be shown among the coming events. "
    "Check the date if that is not what you meant.",
)
EXPIRED_NOTICE = define(
    "node.expired_notice",
    "This notice has expired already: it will not be shown on the noticeboard. "
    "Check the date it is shown until.",
)


def warnings_for(item: Item, now: datetime) -> list[Message]:
    """Return the warnings about `item` at `now` (never a reason to refuse it)."""
    if isinstance(item, Event):
        return [Message(PAST_EVENT)] if item.series_end() <= now else []
    if item.expires is not None and item.expires <= now:
        return [Message(EXPIRED_NOTICE)]
    return []
