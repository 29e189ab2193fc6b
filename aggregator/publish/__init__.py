"""The documents the aggregator publishes: Atom, iCalendar, JSON and OPML."""
