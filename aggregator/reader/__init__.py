"""Ingest: fetch, parse, merge, refresh and schedule sources, and each source's state."""
