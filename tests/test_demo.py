"""`klynge demo` as a subprocess: four services up, the cluster calendar filled, clean Ctrl-C.

The demo runs on `--port 0`: the OS picks four free ports (any, not consecutive), the demo
prints them and remembers them, so nothing here depends on which ports are free.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clock_support import local_today, service_env

from klynge.demo_data import villages

# Generous bounds for a loaded machine; the demo itself waits while its services start.
BANNER_LIMIT = 300.0
EXIT_LIMIT = 5.0
AGGREGATOR_LINE = re.compile(r"Cluster calendar \(residents\):\s+(http://127\.0\.0\.1:\d+)/")
NODE_LINE = re.compile(r" node: (http://127\.0\.0\.1:\d+)/ ")


@dataclass(frozen=True)
class Running:
    """A demo process and the addresses its banner printed."""

    proc: subprocess.Popen[bytes]
    aggregator: str
    nodes: list[str]

    @property
    def ports(self) -> list[int]:
        """Return the aggregator's port and then the villages' ports."""
        return [int(url.rsplit(":", 1)[1]) for url in (self.aggregator, *self.nodes)]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def _demo(data: Path, port: int = 0) -> list[str]:
    return [sys.executable, "-m", "klynge.cli", "demo", "--port", str(port), "--data", str(data)]


def _wait_banner(proc: subprocess.Popen[bytes], output: Path) -> Running:
    """Poll the demo's output until it prints its addresses; fail if it stops first."""
    deadline = time.monotonic() + BANNER_LIMIT
    while time.monotonic() < deadline:
        text = output.read_text(errors="replace")
        aggregator, nodes = AGGREGATOR_LINE.search(text), NODE_LINE.findall(text)
        if aggregator and len(nodes) == 3:
            return Running(proc, aggregator[1], nodes)
        if proc.poll() is not None:
            raise AssertionError(f"the demo stopped at start:\n{text}")
        time.sleep(0.2)
    raise AssertionError(f"the demo printed no addresses within {BANNER_LIMIT:.0f} s")


@contextmanager
def _running(data: Path, run: str) -> Iterator[Running]:
    """Start `klynge demo --port 0`, yield it once it printed its addresses, kill it if left."""
    output = data.parent / f"demo-output-{run}.txt"
    env = service_env(PYTHONUNBUFFERED="1")
    with output.open("wb") as log:
        proc = subprocess.Popen(_demo(data), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)  # fmt: skip
    try:
        yield _wait_banner(proc, output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_for_titles(aggregator: str, titles: list[str]) -> str:
    deadline = time.monotonic() + 60
    ics = ""
    while time.monotonic() < deadline:
        ics = _get(f"{aggregator}/calendar.ics").decode("utf-8").replace("\r\n ", "")
        if all(t in ics for t in titles):
            return ics
        time.sleep(0.3)
    missing = [t for t in titles if t not in ics]
    raise AssertionError(f"the cluster calendar lacks {missing}")


def _uids(ics: str) -> set[str]:
    return {line for line in ics.split("\r\n") if line.startswith("UID:")}


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    children = _children(proc.pid)
    assert len(children) == 4, children
    proc.send_signal(signal.SIGINT)
    began = time.monotonic()
    proc.wait(timeout=EXIT_LIMIT + 5)
    while any(_alive(c) for c in children) and time.monotonic() - began < EXIT_LIMIT + 5:
        time.sleep(0.05)
    took = time.monotonic() - began
    assert not any(_alive(c) for c in children)
    assert took <= EXIT_LIMIT, f"the demo took {took:.1f} s to stop"
    assert proc.returncode == 0


def _count_events(demo: Running) -> int:
    """Count the entries in the three village feeds."""
    return sum(_get(f"{url}/feed.atom").count(b"<entry") for url in demo.nodes)


def _listening(port: int) -> socket.socket:
    """Listen on a port the way another program would (old TIME_WAIT connections allowed)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _one_error_line(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=service_env())  # fmt: skip
    assert done.returncode == 1, done.stderr
    # On a loaded machine the demo may first note that it is still waiting (klynge/demo.py,
    # every WAITING_NOTE seconds); the error itself is one line, and the last.
    *notes, line = done.stderr.strip().splitlines()
    assert all(note.startswith("still starting (") for note in notes), done.stderr
    return line


def test_demo_on_any_free_ports_fills_the_cluster_reuses_its_ports_and_stops(
    tmp_path: Path,
) -> None:
    data = tmp_path / "demo"
    # Every event of every village: nodes ping at once, so the cluster may read a village's
    # feed while the demo is still seeding it; a count taken once only the first events had
    # arrived would be short of the count after the restart (8 or 9 VEVENTs against 10).
    titles = [e["title"] for v in villages(local_today()) for e in v.events]

    with _running(data, "first") as demo:
        assert len(set(demo.ports)) == 4
        assert all(b"ok" in _get(f"{url}/healthz") for url in (demo.aggregator, *demo.nodes))
        ics = _wait_for_titles(demo.aggregator, titles)
        first_uids = ics.count("BEGIN:VEVENT")
        assert first_uids == len(titles) == len(_uids(ics))  # each event once, none twice
        first_entries = _count_events(demo)
        first_ports = demo.ports
        _interrupt(demo.proc)
    remembered = data / "0" / "ports.json"
    assert json.loads(remembered.read_text()) == first_ports

    with _listening(first_ports[1]):  # another program took the first village's port
        line = _one_error_line(_demo(data))
    slug = villages(local_today())[0].slug
    assert line == (
        f"klynge: error: port {first_ports[1]} on 127.0.0.1, remembered for {slug} in "
        f"{remembered}, is now in use by another program; stop it, or delete {data / '0'} "
        "for a fresh demo"
    )

    with _running(data, "second") as demo:
        assert demo.ports == first_ports
        # Seeding happens before the banner: a (wrong) second seeding would show by now.
        assert _count_events(demo) == first_entries
        ics = _wait_for_titles(demo.aggregator, titles)
        assert ics.count("BEGIN:VEVENT") == first_uids == len(_uids(ics))
        _interrupt(demo.proc)


def test_demo_on_a_taken_base_port_says_so_before_creating_anything(tmp_path: Path) -> None:
    with _listening(0) as taken:
        base = int(taken.getsockname()[1])
        line = _one_error_line(_demo(tmp_path, base))
    assert line == (
        f"klynge: error: port {base} on 127.0.0.1 (for aggregator) is already in use by another "
        "program; stop it, choose another --port, or use --port 0 for any free ports"
    )
    assert not (tmp_path / str(base)).exists()


def test_a_service_that_stops_at_start_is_named_with_its_reason_and_log(tmp_path: Path) -> None:
    root = tmp_path / "0"
    names = ["aggregator", *(v.slug for v in villages(local_today()))]
    for name in names:  # service folders without their settings: each one stops at start
        (root / name).mkdir(parents=True)
    line = _one_error_line(_demo(tmp_path))
    found = re.fullmatch(r"klynge: error: (\w+) stopped at start: (.+) \(log: (.+)\)", line)
    assert found, line
    name, reason, log = found[1], found[2], Path(found[3])
    assert name in names and log == root / "logs" / f"{name}.log" and log.is_file()
    role = "aggregator" if name == "aggregator" else "node"
    assert reason == (
        f"{root / name / f'{role}.toml'} not found; create it with: klynge {role} init "
        f"{root / name} --name NAME --url PUBLIC_URL"
    )
    assert reason in log.read_text()
