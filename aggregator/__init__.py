"""The cluster aggregator: polls village feeds, merges them, serves the shared calendar."""
