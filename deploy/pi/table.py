"""Print `make pi-check`'s one table: each figure on the host and on arm64 emulated, and the ratio.

python3 deploy/pi/table.py OUT_DIR --install H A --cold H A --tests H A --debootstrap S
--whole S   (OUT_DIR holds host.json and arm64.json from deploy/pi/figures.py, and the
pytest output of both sides, host-tests.txt and arm-tests.txt)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

SUMMARY = re.compile(r"(\d+) passed(?:, (\d+) deselected)?")


def _passed(path: Path) -> str:
    """Return 'N passed' (and failures) from a pytest output file."""
    text = path.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    return lines[-1].strip("= ") if lines else "no summary"


def rows(host: dict[str, Any], arm: dict[str, Any], args: argparse.Namespace) -> list[tuple]:
    """Return (measure, unit, host figure, arm64 figure) for every row of the table."""
    hb, ab = host["bench"], arm["bench"]
    restart = [statistics.median(f["demo_starts"][1:] or f["demo_starts"]) for f in (host, arm)]
    return [
        ("install, deps from the registry (first run)", "s", *args.cold),
        ("install of the project, deps cached", "s", *args.install),
        ("unit tests, no browser", "s", *args.tests),
        ("start-up: klynge demo, first start", "s", host["demo_starts"][0], arm["demo_starts"][0]),
        ("start-up: klynge demo, restart (median)", "s", *restart),
        ("demo: cluster calendar filled after", "s", host["demo_fill"], arm["demo_fill"]),
        (
            "klynge feed check (a village's feed)",
            "s",
            host["feed_check"]["seconds"],
            arm["feed_check"]["seconds"],
        ),
        ("refresh, 15 x 50 entries: wall", "s", hb["full_wall"], ab["full_wall"]),
        ("refresh: CPU, serve + parse worker", "s", hb["full_cpu_all"], ab["full_cpu_all"]),
        ("one change: wall", "s", hb["one_wall"], ab["one_wall"]),
        ("one change: CPU, serve + worker", "s", hb["one_cpu_all"], ab["one_cpu_all"]),
        ("RSS of serve, built (VmRSS)", "MB", hb["rss"], ab["rss"]),
        ("RSS of serve + parse worker", "MB", hb["rss_all"], ab["rss_all"]),
    ]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="table.py")
    parser.add_argument("out", type=Path)
    for name in ("install", "cold", "tests"):
        parser.add_argument(f"--{name}", nargs=2, type=float, required=True)
    parser.add_argument("--debootstrap", type=float, required=True)
    parser.add_argument("--whole", type=float, required=True)
    args = parser.parse_args()
    host = json.loads((args.out / "host.json").read_text())
    arm = json.loads((args.out / "arm64.json").read_text())
    print(f"\npi-check: host {host['machine']} vs arm64 (Debian bookworm, Python 3.11.2) under "
          "qemu-user emulation")  # fmt: skip
    print(f"{'measure':<46} {'host':>9} {'arm64 emu':>10} {'ratio':>7}")
    for name, unit, h, a in rows(host, arm, args):
        ratio = f"{a / h:.1f}x" if h else "-"
        print(f"{name:<46} {h:>6.1f} {unit:<2} {a:>7.1f} {unit:<2} {ratio:>7}")
    print(f"unit tests: host {_passed(args.out / 'host-tests.txt')}; "
          f"arm64 {_passed(args.out / 'arm-tests.txt')}")  # fmt: skip
    print(f"entries served: host {host['bench']['entries']}, arm64 {arm['bench']['entries']}; "
          f"feed check: {arm['feed_check']['summary']}")  # fmt: skip
    print(f"arm64 demo starts: {', '.join(f'{s:.1f} s' for s in arm['demo_starts'])}")
    print(f"root built once by debootstrap in {args.debootstrap:.0f} s (cached); "
          f"this pi-check took {args.whole:.0f} s")  # fmt: skip
    print("The ratio is an UPPER BOUND on a real Pi's slowness: qemu-user translates every arm64 "
          "instruction\nin software on this host; a Pi runs them natively. Emulated RSS includes "
          "the emulator's own\nmemory, so it too is an upper bound.")  # fmt: skip


if __name__ == "__main__":
    main()
