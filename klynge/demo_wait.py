"""Waiting for the demo's services: no start limit, only progress and real failures.

A Pi 3 or an emulated arm64 takes over a minute to start four services (issue 18), and a
busy machine longer, so no fixed limit is right. The demo waits while each service makes
progress: its process is alive and uses CPU time, writes to its log, or starts listening.
It gives up only on a real failure: a service that exited (a port in use, bad settings: its
last log line says which), or one alive but frozen, with none of those signs, for STALL_LIMIT.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from klynge.errors import KlyngeError
from klynge.messages import Message, define

STOPPED = define("demo.stopped_at_start", "%(name)s stopped at start%(why)s (log: %(log)s)")
STALLED = define(
    "demo.stalled",
    "%(name)s has made no progress for %(seconds)s s (alive, but it used no CPU time, wrote "
    "nothing to its log and opened no port); see its log: %(log)s",
)
# A service that is alive but shows no sign of life this long is frozen (stopped, deadlocked):
# starting, even on a Pi Zero under load, uses CPU time all along.
STALL_LIMIT = 300.0
WAITING_NOTE = 15.0  # seconds between "still starting …" lines
POLL = 0.2
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Started:
    """One service being started: its name, URL, process, log and where this start's log begins."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    mark: int = 0
    signs: tuple[float, int, bool] = (-1.0, -1, False)  # CPU seconds, log size, listening
    moved: float = field(default_factory=time.monotonic)

    def cpu(self) -> float:
        """Return the CPU seconds the process has used (0 where /proc cannot tell)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / TICKS

    def serving(self) -> bool:
        """Tell whether this start's log says it serves its URL (not some other program)."""
        try:
            with self.log.open("rb") as f:
                f.seek(self.mark)
                return f"Serving on {self.url}/".encode() in f.read()
        except OSError:
            return False

    def observe(self, now: float) -> None:
        """Note the service's signs of life; any change counts as progress."""
        size = self.log.stat().st_size if self.log.exists() else 0
        signs = (self.cpu(), size, self.serving())
        if signs != self.signs:
            self.signs, self.moved = signs, now

    def state(self) -> str:
        """Say in words where the start of this service has got to."""
        cpu, _, listening = self.signs
        if listening:
            return f"{self.name} (listening, /healthz not answered yet)"
        return f"{self.name} (starting, {cpu:.1f} s CPU so far)"


def last_error(log: Path) -> str:
    """Return the last line a service wrote to its log, without the `klynge: error: ` prefix."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].removeprefix("klynge: error: ").strip() if lines else ""


def healthy(url: str) -> bool:
    """Tell whether `url`/healthz answers 2xx now."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def _check(svc: Started, now: float, stall: float) -> None:
    """Raise in words when the service exited or has been frozen for `stall` seconds."""
    if svc.proc.poll() is not None:
        reason = last_error(svc.log)
        why = f": {reason}" if reason else ""
        raise KlyngeError(Message(STOPPED, {"name": svc.name, "why": why, "log": str(svc.log)}))
    if now - svc.moved >= stall:
        params = {"name": svc.name, "seconds": f"{stall:.0f}", "log": str(svc.log)}
        raise KlyngeError(Message(STALLED, params))


def wait_healthy(
    services: list[Started],
    *,
    stall: float = STALL_LIMIT,
    note: float = WAITING_NOTE,
    say: Callable[[str], None] | None = None,
) -> float:
    """Wait until every service answers /healthz, noting progress; return the seconds taken."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    began = noted = time.monotonic()
    pending = list(services)
    while pending:
        now = time.monotonic()
        for svc in services:
            svc.observe(now)
            _check(svc, now, stall)
        # A port asked of the OS can be taken by another program before the service binds
        # it: only the service's own "Serving on" line proves that /healthz is its answer.
        pending = [svc for svc in pending if not (svc.serving() and healthy(svc.url))]
        if pending and now - noted >= note:
            noted = now
            states = ", ".join(svc.state() for svc in pending)
            say(f"still starting ({now - began:.0f} s): waiting for {states}")
        if pending:
            time.sleep(POLL)
    return time.monotonic() - began
