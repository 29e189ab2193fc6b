"""Real `klynge node serve` / `klynge aggregator serve` processes on loopback, for edge tests."""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from clock_support import service_env
from node_support import KLYNGE


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Running:
    """A service process and its base URL."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        """Return the service's base URL."""
        return f"http://127.0.0.1:{self.port}"


def _file_limit(soft: int) -> Callable[[], None]:
    def limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


@contextmanager
def service(kind: str, data_dir: Path, *, files: int | None = None) -> Iterator[Running]:
    """Run `klynge KIND serve DIR` on a free port (with a soft open-files limit, if given)."""
    port = free_port()
    proc = subprocess.Popen(
        [KLYNGE, kind, "serve", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=service_env(),
        preexec_fn=None if files is None else _file_limit(files),
    )
    try:
        yield Running(proc, port)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


async def wait_healthy(running: Running) -> None:
    """Return once /healthz answers 200; fail if the process stops or takes over ~30 s."""
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            assert running.proc.poll() is None, "the service stopped at start"
            try:
                async with session.get(f"{running.base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the service did not become healthy")


def run_serve(kind: str, data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `klynge KIND serve DIR` expecting it to stop by itself; return what it said."""
    return subprocess.run(
        [KLYNGE, kind, "serve", str(data_dir), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=service_env(),
        check=False,
    )
