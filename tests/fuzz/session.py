"""`make fuzz`: run the fuzz tests with the long budget for a while, with fresh seeds each round.

Each round runs every tests/fuzz/test_fuzz_*.py file in its own pytest process under the
hypothesis profile "fuzz" (FUZZ_EXAMPLES examples per test, a random --hypothesis-seed), until
FUZZ_MINUTES have passed; a file is not started again when its last run would not fit in the
time left. Then it prints, per test, how many inputs ran (hypothesis' statistics, summed over
rounds) and which runs failed; their full output is in .fuzz/ (and hypothesis keeps each failing
example in .hypothesis/, replayed first by the next run).

    python tests/fuzz/session.py [--minutes 10] [--examples 300]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".fuzz"
HEADER = re.compile(r"^(tests/fuzz/\S+::\S+):$")
COUNTS = re.compile(r"- (\d+) passing, (\d+) failing, and (\d+) invalid test cases")


@dataclass
class Tally:
    """What one test ran over the session."""

    passing: int = 0
    failing: int = 0
    invalid: int = 0
    runs: int = 0
    failed_runs: list[str] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("FUZZ_MINUTES", 10)))
    parser.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", 300)))
    args = parser.parse_args()
    LOGS.mkdir(exist_ok=True)
    files = sorted((ROOT / "tests" / "fuzz").glob("test_fuzz_*.py"))
    tallies: dict[str, Tally] = defaultdict(Tally)
    took: dict[Path, float] = {}
    started = time.monotonic()
    deadline = started + args.minutes * 60
    round_no = 0
    while time.monotonic() < deadline:
        round_no += 1
        ran_any = False
        for path in files:
            if time.monotonic() + took.get(path, 0) > deadline:
                continue
            ran_any = True
            took[path] = run_file(path, round_no, args.examples, tallies)
        if not ran_any:
            break
    report(tallies, round_no, time.monotonic() - started)
    return 1 if any(t.failed_runs for t in tallies.values()) else 0


def run_file(path: Path, round_no: int, examples: int, tallies: dict[str, Tally]) -> float:
    """Run one fuzz file once; add its statistics to the tallies; return how long it took."""
    seed = random.randrange(2**32)
    env = {**os.environ, "HYPOTHESIS_PROFILE": "fuzz", "FUZZ_EXAMPLES": str(examples)}
    command = [sys.executable, "-m", "pytest", str(path.relative_to(ROOT)), "-m", "fuzz", "-q",
               "-p", "no:cacheprovider", "--hypothesis-show-statistics",
               f"--hypothesis-seed={seed}"]  # fmt: skip
    begun = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - begun
    log = LOGS / f"round{round_no}-{path.stem}-seed{seed}.log"
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    failed = set(re.findall(r"^FAILED (\S+)", done.stdout, re.M))
    add_statistics(done.stdout, tallies, failed, log)
    verdict = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode}, see {log})"
    print(f"round {round_no}: {path.name} seed {seed}: {seconds:.0f} s, {verdict}", flush=True)
    return seconds


def add_statistics(output: str, tallies: dict[str, Tally], failed: set[str], log: Path) -> None:
    test = ""
    for line in output.splitlines():
        header = HEADER.match(line.strip())
        if header:
            test = header.group(1)
            tallies[test].runs += 1
            if any(name.startswith(test) for name in failed):
                tallies[test].failed_runs.append(str(log.relative_to(ROOT)))
            continue
        counts = COUNTS.search(line)
        if counts and test:
            tally = tallies[test]
            tally.passing += int(counts.group(1))
            tally.failing += int(counts.group(2))
            tally.invalid += int(counts.group(3))


def report(tallies: dict[str, Tally], rounds: int, seconds: float) -> None:
    print(f"\nfuzz session: {seconds / 60:.1f} min, {rounds} round(s)")
    print(f"{'test':<80} {'runs':>4} {'inputs':>8} {'invalid':>8} {'failing':>8}")
    total = 0
    for name, tally in sorted(tallies.items()):
        inputs = tally.passing + tally.failing
        total += inputs
        short = name.removeprefix("tests/fuzz/")
        print(f"{short:<80} {tally.runs:>4} {inputs:>8} {tally.invalid:>8} {tally.failing:>8}")
        for log in tally.failed_runs:
            print(f"    failed: {log}")
    print(f"{'all':<80} {'':>4} {total:>8}")


if __name__ == "__main__":
    sys.exit(main())
