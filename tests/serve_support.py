"""Run a real `klynge … serve --port 0` process and learn the port the OS gave it.

`serve` prints `Serving on http://HOST:PORT/` once it listens, so no test has to guess a free
port and race another program for it. Waits poll with generous bounds for a loaded machine.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clock_support import service_env
from patience import patient

START_LIMIT = patient(60.0)  # a bound on a loaded or emulated machine, not a timing
SERVING = re.compile(r"^Serving on (http://\S+):(\d+)/ ", re.MULTILINE)


@dataclass(frozen=True)
class Served:
    """A serving process, its base URL (no trailing slash) and the port it bound."""

    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def output(self) -> str:
        """Return what the process wrote so far (stdout and stderr)."""
        return self.log.read_text(errors="replace")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return int(response.status) == 200
    except OSError:
        return False


def wait_serving(proc: subprocess.Popen[bytes], log: Path, limit: float = START_LIMIT) -> Served:
    """Poll the log for the `Serving on` line, then /healthz; fail with the log if it stops."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if proc.poll() is not None:
            raise AssertionError(f"the service stopped at start ({proc.returncode}):\n{text}")
        found = SERVING.search(text)
        if found and _healthy(f"{found[1]}:{found[2]}"):
            return Served(proc, f"{found[1]}:{found[2]}", int(found[2]), log)
        time.sleep(0.1)
    raise AssertionError(f"the service was not healthy within {limit:.0f} s:\n{text}")


def start_serving(args: list[str], log: Path, env: dict[str, str] | None = None) -> Served:
    """Start a `serve` command (without --port) on port 0 and wait until it is healthy."""
    with log.open("wb") as out:
        proc = subprocess.Popen([*args, "--port", "0"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env or service_env())  # fmt: skip
    try:
        return wait_serving(proc, log)
    except BaseException:
        stop_process(proc)
        raise


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process (SIGTERM, then SIGKILL after 10 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def serving(args: list[str], log: Path) -> Iterator[Served]:
    """Serve on port 0 for the duration of a `with` block."""
    served = start_serving(args, log)
    try:
        yield served
    finally:
        stop_process(served.proc)
