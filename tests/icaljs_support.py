"""ical.js (Mozilla's iCalendar library, in node_modules) as an independent calendar reader."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPAND_JS = ROOT / "tests" / "js" / "expand.mjs"


def icaljs_occurrences(path: Path, window: tuple[datetime, datetime]) -> list[dict[str, Any]]:
    """Return the occurrences ical.js expands from the calendar at `path` within `window`."""
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "ical.js").is_dir():
        pytest.fail(
            "ical.js is not installed: run `npm install --no-audit --no-fund` in the repository "
            "root (package.json lists ical.js; node must be on PATH)."
        )
    bounds = [w.isoformat().replace("+00:00", "Z") for w in window]
    result = subprocess.run(
        [node, str(EXPAND_JS), str(path), *bounds],
        capture_output=True,
        check=False,
        cwd=ROOT,
        timeout=60,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found
