"""The aggregator's HTTP side: routes, pages, API, poster and status."""
