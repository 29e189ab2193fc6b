"""`klynge demo`: three fictional villages and their cluster aggregator on loopback.

The demo drives the real commands as separate processes (`klynge node serve`, `klynge
aggregator serve`), exactly the topology of docker-compose.yml, and seeds the villages through
the real JSON API, so the nodes ping the aggregator as they would in production. The data
directories are made by the real `init`/`user`/`token`/`source` commands run in-process
(klynge/demo_init.py); start-up waits while the services make progress (klynge/demo_wait.py).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from klynge.clock import ENV_NOW, Clock, clock_from_env
from klynge.demo_data import DEMO_PASSWORD, DemoVillage, villages
from klynge.demo_init import CLUSTER_NAME, init_aggregator, init_node
from klynge.demo_wait import Started, wait_healthy
from klynge.errors import KlyngeError
from klynge.model import DEFAULT_TIMEZONE, zone

STOP_TIMEOUT = 4.0
PORTS_FILE = "ports.json"  # --port 0: the four ports the OS gave the first start
EXAMPLE = (
    "examples:\n"
    "  klynge demo --port 8080        # then open http://127.0.0.1:8080/\n"
    "  klynge demo --port 0           # any four free ports; open the printed URL"
)


@dataclass(frozen=True)
class Service:
    """One process of the demo: its name, data directory, port and serve command."""

    name: str
    role: str  # "node" or "aggregator"
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        """Return the service's base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"


Nodes = list[tuple[Service, DemoVillage]]


def free_ports(count: int) -> list[int]:
    """Ask the OS for `count` free loopback ports, all held at once so that they differ."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def demo_ports(root: Path, base: int) -> list[int]:
    """Return BASE and the three ports after it; for 0, the ports remembered in ROOT (or new)."""
    if base:
        return [base + i for i in range(4)]
    remembered = root / PORTS_FILE
    if remembered.exists():
        return _read_ports(remembered, root)
    ports = free_ports(4)
    root.mkdir(parents=True, exist_ok=True)
    remembered.write_text(json.dumps(ports) + "\n")
    return ports


def _read_ports(remembered: Path, root: Path) -> list[int]:
    try:
        ports = json.loads(remembered.read_text())
    except ValueError:
        ports = None
    if isinstance(ports, list) and len(ports) == 4 and all(type(p) is int for p in ports):
        return ports
    raise KlyngeError(f"{remembered} is damaged: delete {root} to start a fresh demo")


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        # As the services do (aiohttp on POSIX): old TIME_WAIT connections do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def check_ports(services: list[Service], root: Path, base: int) -> None:
    """Raise a one-line error naming the first service whose port another program holds."""
    for svc in services:
        if not _taken(svc.port):
            continue
        if base:
            raise KlyngeError(
                f"port {svc.port} on 127.0.0.1 (for {svc.name}) is already in use by another "
                "program; stop it, choose another --port, or use --port 0 for any free ports"
            )
        raise KlyngeError(
            f"port {svc.port} on 127.0.0.1, remembered for {svc.name} in {root / PORTS_FILE}, "
            f"is now in use by another program; stop it, or delete {root} for a fresh demo"
        )


def _services(root: Path, ports: list[int]) -> tuple[Service, Nodes]:
    """Return the aggregator and the villages' nodes, each with its folder and port."""
    aggregator = Service("aggregator", "aggregator", root / "aggregator", ports[0])
    pairs = zip(villages(_clock().today(zone(DEFAULT_TIMEZONE))), ports[1:], strict=True)
    return aggregator, [(Service(v.slug, "node", root / v.slug, port), v) for v, port in pairs]


def _prepare(root: Path, aggregator: Service, nodes: Nodes) -> dict[str, str]:
    """Create the data directories on the first run; return the villages' API tokens."""
    tokens_file = root / "tokens.json"
    tokens: dict[str, str] = json.loads(tokens_file.read_text()) if tokens_file.exists() else {}
    root.mkdir(parents=True, exist_ok=True)
    for svc, village in nodes:
        if not svc.data_dir.exists():
            tokens[svc.name] = init_node(svc, village, aggregator)
            tokens_file.write_text(json.dumps(tokens, indent=2))
            tokens_file.chmod(0o600)
    if not aggregator.data_dir.exists():
        init_aggregator(aggregator, nodes)
    return tokens


@functools.cache
def _clock() -> Clock:
    """Return the demo's clock: the system's, or KLYNGE_NOW's (each child starts on it)."""
    return clock_from_env(os.environ)


def _start(svc: Service, logs: Path) -> Started:
    path = logs / f"{svc.name}.log"
    mark = path.stat().st_size if path.exists() else 0
    with path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "klynge.cli", svc.role, "serve", str(svc.data_dir),
             "--host", "127.0.0.1", "--port", str(svc.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, ENV_NOW: _clock().now().isoformat()},
        )  # fmt: skip
    return Started(svc.name, svc.url, proc, path, mark)


def _post(url: str, token: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")[:300]
        raise KlyngeError(f"seeding {url} failed with HTTP {e.code}: {detail}") from e


def _seed(root: Path, services: list[Service], tokens: dict[str, str]) -> None:
    """Post each village's month through its API, once: a marker file prevents duplicates."""
    by_slug = {v.slug: v for v in villages(_clock().today(zone(DEFAULT_TIMEZONE)))}
    for svc in services:
        marker = svc.data_dir / ".demo-seeded"
        village = by_slug.get(svc.name)
        if village is None or marker.exists() or svc.name not in tokens:
            continue
        for event in village.events:
            _post(f"{svc.url}/api/events", tokens[svc.name], event)
        for notice in village.notices:
            _post(f"{svc.url}/api/notices", tokens[svc.name], notice)
        marker.write_text("seeded\n")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop every child: SIGTERM, then SIGKILL for any still running after the grace time."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _banner(services: list[Service], root: Path) -> str:
    aggregator, *nodes = services
    by_slug = {v.slug: v for v in villages(_clock().today(zone(DEFAULT_TIMEZONE)))}
    lines = [
        "",
        f"Klynge demo is running: {CLUSTER_NAME}, three villages and one aggregator.",
        "",
        f"  Cluster calendar (residents):  {aggregator.url}/",
        f"  Printable poster:              {aggregator.url}/poster",
        f"  Subscribe:                     {aggregator.url}/subscribe",
        f"  Sources' health:               {aggregator.url}/status",
        "",
    ]
    for svc in nodes:
        village = by_slug[svc.name]
        lines.append(
            f"  {village.name:<11} node: {svc.url}/   login {svc.url}/login  "
            f"user {village.username!r} password {DEMO_PASSWORD!r}"
        )
    lines += ["", f"Data and logs: {root}/  (a second start reuses them)", "Ctrl-C stops all.", ""]
    return "\n".join(lines)


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run(root: Path, base: int) -> int:
    """Prepare, start, seed and supervise the demo until interrupted (BASE 0: any free ports)."""
    began = time.monotonic()
    aggregator, nodes = _services(root, demo_ports(root, base))
    services = [aggregator, *(svc for svc, _ in nodes)]
    check_ports(services, root, base)
    tokens = _prepare(root, aggregator, nodes)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        started = [_start(svc, logs) for svc in services]
        procs = [s.proc for s in started]
        names = ", ".join(svc.name for svc in services)
        print(f"Starting {names}; waiting for each to answer /healthz…", flush=True)
        took = wait_healthy(started)
        _seed(root, services, tokens)
        print(_banner(services, root), flush=True)
        print(f"Started in {time.monotonic() - began:.1f} s (services up in {took:.1f} s).",
              flush=True)  # fmt: skip
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.2)
        dead = [svc.name for svc, p in zip(services, procs, strict=True) if p.poll() is not None]
        raise KlyngeError(f"{', '.join(dead)} stopped; see {logs}/")
    except _Stop:
        print("\nStopping the demo…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(procs)


def main(argv: list[str]) -> int:
    """Run `klynge demo`."""
    parser = argparse.ArgumentParser(
        prog="klynge demo",
        description="Start three demo villages and their cluster aggregator on 127.0.0.1. "
        "The aggregator listens on PORT and the villages on the three ports after it; "
        "with --port 0 the OS picks four free ports, which later starts reuse.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="base port (default 8080); 0 for any free ports"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("KLYNGE_DEMO_DATA", "demo-data")),
        help="data directory (default ./demo-data); each --port value gets its own folder",
    )
    args = parser.parse_args(argv)
    if args.port != 0 and not 1024 <= args.port <= 65532:
        parser.error("--port must be 0 (any free ports) or between 1024 and 65532")
    return run(args.data.resolve() / str(args.port), args.port)
