"""Run `klynge feed check` on every file of feedparser's own test corpus; print the figures.

usage: python tests/corpus/run_feedparser_corpus.py PATH
PATH is feedparser's `tests/` folder (its sdist ships it:
`pip download --no-binary :all: --no-deps feedparser==VERSION`) or any folder of feeds.
Each file is checked in-process, as `klynge feed check FILE` runs; a run that raises past
the command's guard is a traceback, and the slowest run is reported. Exits 1 on a traceback
or a run over 10 s. tests/test_feedparser_corpus.py runs it on the vendored subset.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from klynge import feedcli

LIMIT_SECONDS = 10.0
SUFFIXES = {".xml", ".rdf", ".atom", ".rss", ".gz", ".z", ".bz2", ".dat"}


@dataclass
class Figures:
    """What a corpus run found: counts by outcome, the tracebacks and the slowest file."""

    files: int = 0
    read: int = 0
    refused: int = 0
    tracebacks: list[str] = field(default_factory=list)
    slowest: tuple[float, str] = (0.0, "")
    refusals: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        """Return the figures as one line."""
        seconds, name = self.slowest
        return (
            f"files={self.files} read={self.read} refused_in_words={self.refused} "
            f"tracebacks={len(self.tracebacks)} slowest={seconds:.2f}s ({name})"
        )


def feed_files(root: Path) -> list[Path]:
    """Return the corpus's feed files in a stable order (not the harness's own code)."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() not in {".py", ".txt"} and p.name != "LICENSE"
    )


def check(path: Path, figures: Figures) -> None:
    """Run `klynge feed check` on one file and count its outcome."""
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = feedcli.main(["check", str(path)])
    except BaseException:  # anything past the guard is the traceback the user would see
        figures.tracebacks.append(f"{path}\n{traceback.format_exc()}")
        code = -1
    elapsed = time.perf_counter() - started
    figures.files += 1
    figures.slowest = max(figures.slowest, (elapsed, str(path)))
    if code == -1:
        return
    if out.getvalue().startswith("feed:"):
        figures.read += 1
    else:
        figures.refused += 1
        first = err.getvalue().strip().splitlines()[:1] or ["(no words)"]
        key = first[0].split(":", 1)[-1].strip()[:110]
        figures.refusals[key] = figures.refusals.get(key, 0) + 1


def run(root: Path) -> Figures:
    """Check every file below `root`."""
    figures = Figures()
    for path in feed_files(root):
        check(path, figures)
    return figures


def main(argv: list[str]) -> int:
    """Run the corpus at argv[0]; print the figures and every traceback."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    figures = run(Path(argv[0]))
    for trace in figures.tracebacks:
        print(trace, file=sys.stderr)
    for reason, count in sorted(figures.refusals.items(), key=lambda kv: -kv[1]):
        print(f"  refused {count:4d}: {reason}")
    print(figures.line())
    return 1 if figures.tracebacks or figures.slowest[0] > LIMIT_SECONDS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
