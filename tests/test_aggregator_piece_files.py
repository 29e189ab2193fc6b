"""The calendar's pieces on disk: a restart renders no unchanged event, a changed one only, and
a pieces file that is missing, broken, hostile or of another renderer costs a render, never a
wrong or missing calendar."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aggregator_support import NOW, calendar_bytes, config_for, event, merged_of
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config import AggregatorConfig
from aggregator.publish.piece_files import DIRECTORY, MAX_FILE, PieceFiles, key_of, renderer
from aggregator.publish.pieces import FiledPieces, Pieces
from aggregator.reader.merge import Merged
from klynge.ical.writer import vevent_piece
from klynge.model import Event, FeedSource

VILLAGES = [
    FeedSource(id=f"urn:klynge:v{n}", title=f"Landsby {n}", self_url=f"http://v{n}.example/f")
    for n in range(3)
]


def events(count: int = 6) -> list[Event]:
    """Return `count` events spread over the villages, one of them a weekly series."""
    made = [event(f"Arrangement {n}", days=n * 5 - 10) for n in range(count)]
    made[0] = replace(made[0], rrule="FREQ=WEEKLY;COUNT=4")
    return [replace(e, source=VILLAGES[n % len(VILLAGES)]) for n, e in enumerate(made)]


def view(items: list[Event]) -> Merged:
    return merged_of(*items)


def again(items: list[Event]) -> list[Event]:
    """Return equal events as new objects, as a restart loads them from the store."""
    return [replace(e, title=e.title[:-1] + e.title[-1]) for e in items]


def calendar(config: AggregatorConfig, merged: Merged, pieces: Pieces) -> bytes:
    return calendar_bytes(config, merged, "", "", NOW, pieces)


def files_of(pieces: Pieces) -> PieceFiles:
    assert isinstance(pieces.ics, FiledPieces)
    return pieces.ics.files


@pytest.fixture
def config(tmp_path: Path) -> AggregatorConfig:
    return config_for(tmp_path, [])


@pytest.fixture
def kept(config: AggregatorConfig) -> Path:
    return config.data_dir / DIRECTORY


def test_a_restart_renders_no_event_that_did_not_change(
    config: AggregatorConfig, kept: Path
) -> None:
    items = events()
    first = Pieces(kept_in=kept)
    whole = calendar(config, view(items), Pieces())
    assert calendar(config, view(items), first) == whole
    assert first.ics.rendered == len(items) and len(list(kept.glob("*.json"))) == len(VILLAGES)
    restarted = Pieces(kept_in=kept)
    loaded = again(items)
    assert all(a is not b and a == b for a, b in zip(items, loaded, strict=True))
    assert calendar(config, view(loaded), restarted) == whole
    assert restarted.ics.rendered == 0 and files_of(restarted).found == len(items)


def test_an_event_changed_while_down_is_the_only_one_rendered(
    config: AggregatorConfig, kept: Path
) -> None:
    items = events()
    calendar(config, view(items), Pieces(kept_in=kept))
    changed = [replace(items[1], title="Loppemarked (aflyst)", status="cancelled"), *items[2:]]
    restarted = Pieces(kept_in=kept)
    built = calendar(config, view([items[0], *changed]), restarted)
    assert built == calendar(config, view([items[0], *changed]), Pieces())
    assert b"Loppemarked (aflyst)" in built and b"Arrangement 1\r\n" not in built
    assert restarted.ics.rendered == 1 and files_of(restarted).found == len(items) - 1
    # The changed village's file holds its events now: a second restart renders nothing.
    third = Pieces(kept_in=kept)
    assert calendar(config, view([items[0], *changed]), third) == built
    assert third.ics.rendered == 0


def test_a_filtered_calendar_keeps_every_event_of_the_village_on_disk(
    config: AggregatorConfig, kept: Path
) -> None:
    items = events()
    pieces = Pieces(kept_in=kept)
    calendar_bytes(config, view(items), VILLAGES[0].title, "", NOW, pieces)
    calendar_bytes(config, view(items), "", "", NOW, pieces)
    restarted = Pieces(kept_in=kept)
    calendar(config, view(again(items)), restarted)
    assert restarted.ics.rendered == 0


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_renderer(path: Path) -> None:
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "renderer": doc["renderer"] + " (older)"}))


def _pieces_not_a_map(path: Path) -> None:
    path.write_text(json.dumps({"renderer": renderer(), "pieces": ["BEGIN:VEVENT"]}))


def _piece_of_wrong_shape(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["pieces"] = {key: [42, "Europe/Copenhagen", None] for key in doc["pieces"]}
    path.write_text(json.dumps(doc))


def _end_without_offset(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["pieces"] = {k: [body, zones, "2027-01-01T10:00:00"] for k, (body, zones, _) in
                     doc["pieces"].items()}  # fmt: skip
    path.write_text(json.dumps(doc))


def _not_utf8(path: Path) -> None:
    path.write_bytes(b'{"renderer": "\xff\xfe"}')


def _huge(path: Path) -> None:
    with path.open("ab") as f:
        f.truncate(MAX_FILE + 1)  # sparse: no disk used


def _a_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _empty(path: Path) -> None:
    path.write_bytes(b"")


BROKEN = [_truncated, _other_renderer, _pieces_not_a_map, _piece_of_wrong_shape,
          _end_without_offset, _not_utf8, _huge, _a_directory, _empty]  # fmt: skip


def test_pieces_naming_the_same_zones_share_one_set_rendered_or_loaded(
    config: AggregatorConfig, kept: Path
) -> None:
    items = events()
    calendar(config, view(items), Pieces(kept_in=kept))
    zones = [vevent_piece(e)[1] for e in items]
    assert zones[0] == {"Europe/Copenhagen"} and all(z is zones[0] for z in zones)
    loaded = files_of(Pieces(kept_in=kept)).take(again(items))
    assert len(loaded) == len(items)
    assert all(kept_zones is zones[0] for _, kept_zones, _end in loaded.values())


@pytest.mark.parametrize("damage", BROKEN, ids=[f.__name__.strip("_") for f in BROKEN])
def test_a_broken_pieces_file_costs_a_render_not_the_calendar(
    config: AggregatorConfig,
    kept: Path,
    damage: Callable[[Path], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = events()
    calendar(config, view(items), Pieces(kept_in=kept))
    for path in kept.glob("*.json"):
        damage(path)
    restarted = Pieces(kept_in=kept)
    with caplog.at_level(logging.INFO, logger="klynge.aggregator.pieces"):
        built = calendar(config, view(again(items)), restarted)
    assert built == calendar(config, view(items), Pieces())
    assert restarted.ics.rendered == len(items)
    if damage is not _other_renderer:  # an upgrade is no fault worth a line per file
        assert "not used (rendered again)" in caplog.text


def test_pieces_that_cannot_be_kept_are_logged_and_the_calendar_served(
    config: AggregatorConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    items = events()
    with caplog.at_level(logging.WARNING, logger="klynge.aggregator.pieces"):
        built = calendar(config, view(items), Pieces(kept_in=blocked))
    assert built == calendar(config, view(items), Pieces())
    assert "could not keep the calendar pieces" in caplog.text


def test_a_piece_is_found_by_value_never_by_a_mere_likeness(kept: Path) -> None:
    base = events(1)[0]
    twins = [base, replace(base, title=base.title + "!"), replace(base, sequence=1),
             replace(base, category="sport"), replace(base, rrule=None)]  # fmt: skip
    keys = [key_of(e) for e in twins]
    assert len(set(keys)) == len(twins) and key_of(again([base])[0]) == keys[0]


EDITS = st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["retitle", "move", "restart"])),
                 max_size=8)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(edits=EDITS)
def test_calendars_from_files_equal_whole_builds_through_edits_and_restarts(
    edits: list[tuple[int, str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = config_for(tmp_path_factory.mktemp("agg"), [])
    kept = config.data_dir / DIRECTORY
    items = events()
    pieces = Pieces(kept_in=kept)
    for index, what in [(0, "retitle"), *edits]:
        if what == "restart":
            pieces, items = Pieces(kept_in=kept), again(items)
        elif what == "retitle":
            items[index] = replace(items[index], title=f"{items[index].title}!")
        else:
            items[index] = replace(items[index], start=items[index].start.replace(minute=30))
        merged = view(items)
        pieces.take(merged)  # as the builder does (aggregator.publish.outputs)
        assert calendar(config, merged, pieces) == calendar(config, merged, Pieces())
    restarted = Pieces(kept_in=kept)  # every event's piece is in its village's file
    assert calendar(config, merged, restarted) == calendar(config, merged, Pieces())
    assert restarted.ics.rendered == 0


def test_a_piece_that_cannot_be_written_as_text_is_logged_not_raised(
    kept: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = PieceFiles(kept)
    not_text = ((b"SUMMARY:\xff\r\n", {"Europe/Copenhagen"}), NOW)
    with caplog.at_level(logging.WARNING, logger="klynge.aggregator.pieces"):
        files.save("urn:klynge:v0", [(events(1)[0], not_text)])
    assert "could not keep the calendar pieces" in caplog.text and not list(kept.glob("*.json"))
