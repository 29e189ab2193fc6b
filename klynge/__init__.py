"""Klynge: shared calendar and noticeboard for Danish village clusters."""

__version__ = "0.1.0"
USER_AGENT = f"Klynge/{__version__} (+https://purl.org/klynge)"
