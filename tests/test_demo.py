"""`klynge demo` as a subprocess: four services up, the cluster calendar filled, clean Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from clock_support import local_today, service_env

from klynge.demo_data import villages

START_LIMIT = 20.0
EXIT_LIMIT = 5.0


def _free_base() -> int:
    """Return a base port whose four consecutive ports are free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base > 65000:
            continue
        socks = []
        try:
            for port in range(base, base + 4):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no four consecutive free ports on 127.0.0.1")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=3) as response:
        return bytes(response.read())


def _healthy(url: str) -> bool:
    try:
        return b"ok" in _get(f"{url}/healthz")
    except OSError:
        return False


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


def _start(data: Path, base: int) -> subprocess.Popen[bytes]:
    env = service_env(PYTHONUNBUFFERED="1")
    with (data / "demo-output.txt").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "klynge.cli", "demo", "--port", str(base), "--data", str(data)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )


def _wait_up(proc: subprocess.Popen[bytes], urls: list[str], data: Path) -> float:
    began = time.monotonic()
    while time.monotonic() - began < START_LIMIT + 10:
        if proc.poll() is not None:
            output = (data / "demo-output.txt").read_text(errors="replace")
            raise AssertionError(f"the demo stopped at start:\n{output}")
        if all(_healthy(u) for u in urls):
            return time.monotonic() - began
        time.sleep(0.2)
    raise AssertionError("the demo's services did not all answer /healthz")


def _titles_in_cluster(base: int) -> str:
    return _get(f"http://127.0.0.1:{base}/calendar.ics").decode("utf-8")


def _wait_for_titles(base: int, titles: list[str]) -> str:
    deadline = time.monotonic() + 20
    ics = ""
    while time.monotonic() < deadline:
        ics = _titles_in_cluster(base).replace("\r\n ", "")
        if all(t in ics for t in titles):
            return ics
        time.sleep(0.3)
    missing = [t for t in titles if t not in ics]
    raise AssertionError(f"the cluster calendar lacks {missing}")


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


def _count_events(base: int) -> int:
    """Count the entries in the three village feeds."""
    feeds = [_get(f"http://127.0.0.1:{base + i}/feed.atom") for i in (1, 2, 3)]
    return sum(feed.count(b"<entry") for feed in feeds)


def test_demo_starts_fills_the_cluster_and_stops_cleanly(tmp_path: Path) -> None:
    base = _free_base()
    urls = [f"http://127.0.0.1:{base + i}" for i in range(4)]
    demo = villages(local_today())
    # One event title from each village: its first event (not cancelled).
    titles = [v.events[0]["title"] for v in demo]

    proc = _start(tmp_path, base)
    try:
        took = _wait_up(proc, urls, tmp_path)
        assert took <= START_LIMIT, f"services took {took:.1f} s to answer /healthz"
        ics = _wait_for_titles(base, titles)
        first_uids = ics.count("BEGIN:VEVENT")
        first_entries = _count_events(base)
        _interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    proc = _start(tmp_path, base)
    try:
        _wait_up(proc, urls, tmp_path)
        ics = _wait_for_titles(base, titles)
        time.sleep(1.0)  # give any (wrong) re-seeding time to show up
        ics = _titles_in_cluster(base)
        assert ics.count("BEGIN:VEVENT") == first_uids
        assert _count_events(base) == first_entries
        _interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_on_a_taken_port_names_the_reason_and_the_real_log(tmp_path: Path) -> None:
    base = _free_base()
    with socket.socket() as taken:  # something else already listens on the first village's port
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "klynge.cli", "demo", "--port", str(base),
             "--data", str(tmp_path)],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    slug = villages(local_today())[0].slug
    log = tmp_path / str(base) / "logs" / f"{slug}.log"
    assert log.is_file()
    assert line == (
        f"klynge: error: {slug} stopped at start: port {base + 1} on 127.0.0.1 is already in use "
        f"by another program; stop it or choose another port with --port (log: {log})"
    )
