"""The parse child (aggregator.child) runs a fresh interpreter: what it imports it holds for the
service's life, so it imports the readers and nothing of the service around them."""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = "import sys, aggregator.reader.parse_worker, aggregator.reader.parse; print(*sys.modules)"


def test_the_parse_child_imports_the_readers_only() -> None:
    # The HTTP client and the store were 11 MB of it; the Atom writer's feedgen and lxml 2.3 MB.
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    loaded = set(done.stdout.split())
    assert "klynge.atom.reader" in loaded and "klynge.ical.reader" in loaded
    assert not loaded & {"aiohttp", "tinydb", "feedgen", "lxml", "jinja2", "klynge.atom.writer"}
