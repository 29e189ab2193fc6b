"""The calendar's VEVENT pieces on disk, one file per village, so a restart renders nothing old.

Rendering a VEVENT costs about half a millisecond (icalendar), so the first calendar after a
start of a 50,000-entry tier cost 20 s of CPU before it could be served. The builder keeps each
village's pieces in `<data>/pieces/<village>.json`, under a key of the event's whole value
(a digest of its repr, which shows every field), with the renderer's identity (the versions of
Klynge, icalendar and Python, and a digest of Klynge's own code, which renders the pieces): a
start finds each unchanged event's piece there, and renders only what changed while it was down.

The files are a cache. One that is missing, unreadable, of another renderer or malformed in
any way is ignored (and rewritten on the next change of that village); a key of a value that
no longer exists is never asked for. A file is replaced whole by a rename, so a crash leaves
the old one or the new one. Only the builder thread uses a PieceFiles (aggregator.publish.outputs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import icalendar

import klynge
from klynge.ical.writer import zone_set
from klynge.model import Event

log = logging.getLogger("klynge.aggregator.pieces")

DIRECTORY = "pieces"
MAX_FILE = 64 * 1024 * 1024  # bytes: far above a village's pieces; a bigger file is not read

# A VEVENT piece's bytes and zones and its series' end (the calendar's cut-off), in one tuple:
# nested, the piece's own tuple was 2.2 MB at 50,000 entries (tracemalloc).
Kept = tuple[bytes, frozenset[str], datetime]


def key_of(event: Event) -> str:
    """Return the key of an event's whole value: equal keys, equal pieces.

    The repr of a model value shows every field (dataclasses all the way down), and unlike a
    pickle it does not depend on which equal strings happen to be one object.
    """
    return hashlib.blake2b(repr(event).encode(), digest_size=16).hexdigest()


@cache
def renderer() -> str:
    """Return what renders the pieces: pieces of another code or library are not used."""
    code = hashlib.blake2b(digest_size=12)
    package = Path(klynge.__file__).parent
    for path in sorted(package.rglob("*.py")):
        code.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    versions = f"klynge {klynge.__version__}; icalendar {icalendar.__version__}"
    return f"{versions}; Python {platform.python_version()}; code {code.hexdigest()}"


class PieceFiles:
    """Pieces by event value in one file per origin; the files are read once, when first asked."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.found = 0  # pieces taken from the files since start, for tests and the benchmark
        self._loaded: dict[str, Kept] | None = None

    def take(self, events: Sequence[Event]) -> dict[int, Kept]:
        """Return the kept pieces of these events by id(); each is handed out once."""
        loaded = self._load()
        found: dict[int, Kept] = {}
        if loaded:
            for event in events:
                kept = loaded.pop(key_of(event), None)
                if kept is not None:
                    found[id(event)] = kept
        self.found += len(found)
        return found

    def save(self, origin: str, pieces: Iterable[tuple[Event, Kept]]) -> None:
        """Replace one origin's file with these pieces (its events' now); log if it cannot."""
        path = self.directory / f"{_file_name(origin)}.json"
        temporary = path.with_suffix(".tmp")
        try:
            doc = {
                "renderer": renderer(),
                "origin": origin,
                "pieces": {
                    key_of(event): [body.decode(), sorted(zones), end.isoformat()]
                    for event, (body, zones, end) in pieces
                },
            }
            self.directory.mkdir(exist_ok=True)
            temporary.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
            os.replace(temporary, path)
        # A cache: the calendar is still served, a restart renders again. ValueError: a piece
        # that is not UTF-8 text (icalendar writes UTF-8; this keeps a surprise from the build).
        except (OSError, ValueError) as e:
            log.warning("could not keep the calendar pieces of %s in %s: %s", origin, path, e)

    def _load(self) -> dict[str, Kept]:
        if self._loaded is None:
            self._loaded = {}
            for path in sorted(self.directory.glob("*.json")):
                self._loaded.update(_read(path))
        return self._loaded


def _file_name(origin: str) -> str:
    return hashlib.blake2b(origin.encode(), digest_size=12).hexdigest()


def _read(path: Path) -> dict[str, Kept]:
    """Return one file's pieces by key, or none if it is not a whole file of this renderer."""
    try:
        if path.stat().st_size > MAX_FILE:
            raise ValueError(f"larger than {MAX_FILE} bytes")
        doc = json.loads(path.read_bytes())
        if not isinstance(doc, dict) or doc.get("renderer") != renderer():
            return {}  # another renderer's pieces (an upgrade): rendered again
        return {key: _kept(value) for key, value in _pieces(doc).items()}
    except (OSError, ValueError, TypeError) as e:  # JSONDecodeError and UnicodeError too
        log.info("calendar pieces in %s not used (rendered again): %s", path, e)
        return {}


def _pieces(doc: dict[str, Any]) -> dict[str, Any]:
    pieces = doc.get("pieces")
    if not isinstance(pieces, dict):
        raise ValueError("no pieces")
    return pieces


def _kept(value: Any) -> Kept:
    body, zones, end = value
    if not (isinstance(body, str) and isinstance(zones, list) and isinstance(end, str)):
        raise TypeError("a piece is not [text, [zones], end]")
    if not all(isinstance(zone, str) for zone in zones):
        raise TypeError("a piece's zones are not text")
    ends = datetime.fromisoformat(end)
    if ends.tzinfo is None:
        raise ValueError("a piece's end has no offset")
    return body.encode(), zone_set(zones), ends
