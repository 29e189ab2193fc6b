"""Our calendar of a series with exceptions, read by two Debian calendar clients: khal, calcurse.

khal (0.10, on icalendar and dateutil) honours EXDATE, RDATE and RECURRENCE-ID and must show
exactly Klynge's dates. calcurse (4.7) implements neither RECURRENCE-ID nor RDATE in its
importer and counts COUNT after removing EXDATEs; its test pins exactly those gaps, so any other
difference (a wrong time across the DST change, a lost override) fails. tests/setup-system.sh
installs both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_ical_series import EXPECTED, NOW, series

from klynge.ical.writer import write_calendar


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run tests/setup-system.sh {name}")
    return path


def _run(args: list[str], home: Path, tz: str) -> str:
    env = {"HOME": str(home), "TZ": tz, "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
    result = subprocess.run(
        args, capture_output=True, check=False, env=env, timeout=120, text=True, cwd=home
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def khal_rows(ics: bytes, tmp_path: Path, first: str, last: str) -> list[tuple[str, ...]]:
    """Return (start, end in UTC, title, status) of each date khal lists from `first` to `last`."""
    khal = _tool("khal")
    calendar = tmp_path / "calendar"
    calendar.mkdir()
    (calendar / "series.ics").write_bytes(ics)
    config = tmp_path / "config"
    config.write_text(
        f"[calendars]\n[[klynge]]\npath = {calendar}\ntype = calendar\n"
        "[locale]\ntimeformat = %H:%M\ndateformat = %Y-%m-%d\nlongdateformat = %Y-%m-%d\n"
        "datetimeformat = %Y-%m-%dT%H:%M\nlongdatetimeformat = %Y-%m-%dT%H:%M\n"
        "local_timezone = UTC\ndefault_timezone = UTC\n"
        f"[sqlite]\npath = {tmp_path / 'khal.db'}\n"
    )
    shown = _run(
        [khal, "-c", str(config), "list", "--day-format", "",
         "--format", "{start}|{end}|{title}|{status}", first, last],
        tmp_path,
        "UTC",
    )  # fmt: skip
    rows = [line.split("|") for line in shown.splitlines() if line.strip()]
    return [
        (f"{s}:00Z", f"{e}:00Z", t.removeprefix("AFLYST: "), st.strip()) for s, e, t, st in rows
    ]


def test_khal_shows_the_same_dates(tmp_path: Path) -> None:
    ics = write_calendar([series()], name="Ø", now=NOW)
    assert khal_rows(ics, tmp_path, "2026-09-01", "2027-03-01") == EXPECTED


def _calcurse_rows(tmp_path: Path) -> list[tuple[str, str, str]]:
    calcurse = _tool("calcurse")
    ics = tmp_path / "badminton.ics"
    ics.write_bytes(write_calendar([series()], name="Ø", now=NOW))
    data = tmp_path / "data"
    data.mkdir()
    # calcurse works in local wall time: the zone of the series, as a resident's machine has.
    _run([calcurse, "-D", str(data), "-i", str(ics)], tmp_path, "Europe/Copenhagen")
    fmt = "%(start:%Y-%m-%dT%H:%M)|%(end:%Y-%m-%dT%H:%M)|%m\\n"
    shown = _run(
        [calcurse, "-D", str(data), "--input-datefmt", "4", "-Q", "--from", "2026-09-01",
         "--days", "180", "--format-apt", fmt, "--format-recur-apt", fmt],
        tmp_path,
        "Europe/Copenhagen",
    )  # fmt: skip
    rows = [line.split("|") for line in shown.splitlines() if re.match(r"^\d{4}-", line)]
    return sorted((s, e, t) for s, e, t in rows)


def test_calcurse_shows_our_dates_but_for_its_known_gaps(tmp_path: Path) -> None:
    local = [  # EXPECTED in Copenhagen wall time, as calcurse prints it
        ("2026-10-04T19:00", "2026-10-04T21:00", "Badminton for voksne"),
        ("2026-10-18T19:00", "2026-10-18T21:00", "Badminton for voksne"),
        ("2026-10-28T20:00", "2026-10-28T22:00", "Badminton for voksne"),
        ("2026-11-01T19:00", "2026-11-01T21:00", "Badminton: juleturnering"),
        ("2026-11-08T19:00", "2026-11-08T21:00", "AFLYST: Badminton for voksne"),
        ("2026-11-15T19:00", "2026-11-15T21:00", "Badminton for voksne"),
        ("2026-11-20T10:00", "2026-11-20T12:00", "Badminton for voksne"),
        ("2026-11-22T19:00", "2026-11-22T21:00", "Badminton for voksne"),
    ]
    gaps = [
        # No RECURRENCE-ID: the changed dates' originals stay beside their overrides.
        ("2026-10-25T19:00", "2026-10-25T21:00", "Badminton for voksne"),
        ("2026-11-01T19:00", "2026-11-01T21:00", "Badminton for voksne"),
        ("2026-11-08T19:00", "2026-11-08T21:00", "Badminton for voksne"),
        # COUNT=8 counted after the EXDATE: one Sunday too many.
        ("2026-11-29T19:00", "2026-11-29T21:00", "Badminton for voksne"),
    ]
    no_rdate = ("2026-11-20T10:00", "2026-11-20T12:00", "Badminton for voksne")
    expected = sorted([row for row in local if row != no_rdate] + gaps)
    assert _calcurse_rows(tmp_path) == expected
